"""``trainer eval``: zero-shot UAR/WAR of the head and of plain CLIP, in one run, through
the engine (images: ``ExpressionEngine.score``, the streamer's code path; videos: the
engine's frozen CLIP features -> its head -> mean over 16 frames -> L2-normalise -> the
engine's class embeddings, the paper's video protocol: docs/training.md).

Pixels reach an engine with ``expclip`` preprocessing the way the reference loaded them
(``trainer.eval.resize: pil``): each image or frame decoded by PIL, converted to RGB and
resized with PIL bilinear to the input size, so the engine only scales to [0, 1]; that is
bit for bit torchvision's ``Resize((224, 224))`` + ``ToTensor()`` of a PIL image, and the
reference video loader's PIL resize. ``resize: tensor`` leaves the resize to the engine.

Example (plain text)::

    report = evaluate(cfg, images="RAFDB/test", layout="raf-db", out="eval/")
    report["models"]["head"]["uar"], report["models"]["clip"]["uar"]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F

from configs import Settings
from configs.core.errors import ConfigError
from engine import ExpressionEngine
from engine.scoring import scores_from_features
from trainer.evaluate.datasets import VideoClip, image_folder, read_video_list, segment_indices
from trainer.evaluate.metrics import confusion_matrix, per_class_recall, plot_confusion, uar_war
from trainer.images import DEFAULT_EXTENSIONS, UnreadableImage, list_images, pil_resize, read_rgb

log = logging.getLogger(__name__)


def eval_engines(cfg: Settings, head: str | None = None) -> dict[str, ExpressionEngine]:
    """``head``: the configured (or given) head; ``clip``: the same engine with no head."""
    settings = cfg.engine if head is None else cfg.engine.replace(head=head)
    engines = {"head": ExpressionEngine(settings)}
    if engines["head"].head is None:
        return {"clip": engines["head"]}
    if cfg.trainer.eval.baseline:
        engines["clip"] = ExpressionEngine(settings.replace(head="none"))
    return engines


def engine_inputs(engine: ExpressionEngine, crops: list[np.ndarray], resize: str = "pil") -> list[np.ndarray]:
    """The decoded crops as ``engine`` is fed them: PIL-resized to its input size (the
    reference's loading) for ``expclip`` preprocessing with ``resize: pil``, else unchanged."""
    if resize != "pil" or engine.preprocess_mode != "expclip":
        return crops
    s = engine.preprocess_spec.image_size
    return [c if c.shape[:2] == (s, s) else pil_resize(c, s) for c in crops]


def predict_images(
    engines: Mapping[str, ExpressionEngine], paths: Sequence[Path], batch: int, resize: str = "pil"
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Predicted class index per path and engine (-1 where unreadable); each image is
    decoded once and scored by every engine."""
    preds = {n: np.full(len(paths), -1, np.int64) for n in engines}
    bad: list[tuple[str, str]] = []
    for i in range(0, len(paths), batch):
        crops, idx = [], []
        for j, p in enumerate(paths[i : i + batch], start=i):
            try:
                crops.append(read_rgb(p))
                idx.append(j)
            except UnreadableImage as e:
                bad.append((e.path, e.reason))
        if crops:
            for name, engine in engines.items():
                preds[name][idx] = engine.score(engine_inputs(engine, crops, resize)).logits.argmax(axis=1)
    return preds, bad


def clip_frames(clip: VideoClip, num_segments: int) -> list[np.ndarray]:
    """The reference's 16 frames of a clip: a folder of frame images (sorted by name) or a
    video file decoded with PyAV."""
    idx = segment_indices(clip.num_frames, num_segments)
    if clip.path.is_dir():
        files = list_images([clip.path], DEFAULT_EXTENSIONS)
        if not files:
            raise UnreadableImage(clip.path, "no frame images in the folder")
        return [read_rgb(files[min(i, len(files) - 1)]) for i in idx]

    want = set(idx)
    got: dict[int, np.ndarray] = {}
    try:
        with av.open(str(clip.path)) as c:
            for k, frame in enumerate(c.decode(video=0)):
                if k in want:
                    got[k] = frame.to_ndarray(format="rgb24")
                if k >= max(want):
                    break
    except (av.error.FFmpegError, OSError) as e:
        raise UnreadableImage(clip.path, f"{type(e).__name__}: {e}") from e
    if not got:
        raise UnreadableImage(clip.path, "no frames decoded")
    last = got[max(got)]
    return [got.get(i, last) for i in idx]


@torch.inference_mode()
def video_logits(engine: ExpressionEngine, frames: list[np.ndarray], num_segments: int) -> np.ndarray:
    """Logits [n_clips, C] of clips given as consecutive groups of ``num_segments`` frames."""
    feats = torch.from_numpy(engine.clip_image_features(frames)).to(engine.device)
    if engine.head is not None:
        feats = engine.head(feats)
    clip_feats = F.normalize(feats.reshape(-1, num_segments, feats.shape[-1]).mean(dim=1), dim=-1)
    return scores_from_features(clip_feats, engine.class_embeddings, engine.logit_scale).cpu().numpy()


def predict_videos(
    engines: Mapping[str, ExpressionEngine],
    clips: Sequence[VideoClip],
    num_segments: int,
    batch_clips: int,
    resize: str = "pil",
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Predicted class index per clip and engine (-1 where unreadable)."""
    preds = {n: np.full(len(clips), -1, np.int64) for n in engines}
    bad: list[tuple[str, str]] = []
    for i in range(0, len(clips), batch_clips):
        frames: list[np.ndarray] = []
        idx = []
        for j, c in enumerate(clips[i : i + batch_clips], start=i):
            try:
                frames.extend(clip_frames(c, num_segments))
                idx.append(j)
            except UnreadableImage as e:
                bad.append((e.path, e.reason))
        if idx:
            for name, engine in engines.items():
                inputs = engine_inputs(engine, frames, resize)
                preds[name][idx] = video_logits(engine, inputs, num_segments).argmax(axis=1)
    return preds, bad


def _model_report(
    name: str, engine: ExpressionEngine, labels: np.ndarray, preds: np.ndarray, out: Path
) -> dict[str, Any]:
    ok = preds >= 0
    classes = engine.classes
    cm = confusion_matrix(labels[ok], preds[ok], len(classes))
    uar, war = uar_war(cm)
    png = plot_confusion(cm, classes, out / f"confusion-{name}.png", f"{name}: UAR {uar:.2f} / WAR {war:.2f}")
    return {
        "uar": uar,
        "war": war,
        "per_class_recall": dict(
            zip(
                classes,
                [None if np.isnan(r) else float(r) for r in per_class_recall(cm)],
                strict=True,
            )
        ),
        "confusion": cm.tolist(),
        "png": png.name,
        "engine": engine.describe(),
    }


def score_samples(
    engines: Mapping[str, ExpressionEngine],
    cfg: Settings,
    out: str | Path,
    images: tuple[Sequence[Path], Sequence[int]] | None = None,
    clips: Sequence[VideoClip] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score labelled ``images`` (paths, labels) or video ``clips`` with every engine, the
    paper's way; write ``report.json`` and a confusion-matrix PNG per model into ``out``."""
    if (images is None) == (clips is None):
        raise ConfigError("score_samples: give exactly one of images or clips")
    first = next(iter(engines.values()))
    ev = cfg.trainer.eval
    out = Path(out).expanduser()
    report: dict[str, Any] = {"classes": first.classes, "prompts": first.prompts.name, "resize": ev.resize}
    report.update(meta or {})
    report["models"] = {}
    if images is not None:
        paths, labels_in = images
        labels = np.asarray(labels_in, np.int64)
        report["kind"] = "images"
        preds, bad = predict_images(engines, paths, ev.batch_size, ev.resize)
    else:
        assert clips is not None
        labels = np.asarray([c.label for c in clips], np.int64)
        report.update(kind="videos", num_segments=ev.num_segments)
        batch_clips = max(1, ev.batch_size // ev.num_segments)
        preds, bad = predict_videos(engines, clips, ev.num_segments, batch_clips, ev.resize)
    out.mkdir(parents=True, exist_ok=True)
    report["samples"] = int(len(labels) - len(bad))
    report["skipped"] = [{"path": p, "reason": r} for p, r in bad]
    for name, engine in engines.items():
        report["models"][name] = _model_report(name, engine, labels, preds[name], out)
        m = report["models"][name]
        log.info("%s: UAR %.2f WAR %.2f on %d samples", name, m["uar"], m["war"], report["samples"])
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def evaluate(
    cfg: Settings,
    out: str | Path,
    images: str | Path | None = None,
    video_list: str | Path | None = None,
    layout: str = "auto",
    class_map: Mapping[str, str] | None = None,
    video_root: str | Path | None = None,
    head: str | None = None,
    engines: dict[str, ExpressionEngine] | None = None,
) -> dict[str, Any]:
    """Evaluate on one labelled image folder or one video list; write ``report.json`` and a
    confusion-matrix PNG per model into ``out``; return the report."""
    if (images is None) == (video_list is None):
        raise ConfigError("evaluate: give exactly one of images or video_list")
    engines = engines or eval_engines(cfg, head)
    classes = next(iter(engines.values())).classes
    if images is not None:
        ds = image_folder(images, classes, layout, class_map, cfg.trainer.extract.extensions)
        meta = {"dataset": str(images), "layout": layout, "mapping": ds.mapping}
        return score_samples(engines, cfg, out, images=(ds.paths, ds.labels), meta=meta)
    clips = read_video_list(video_list, len(classes), video_root)  # type: ignore[arg-type]
    return score_samples(engines, cfg, out, clips=clips, meta={"dataset": str(video_list)})
