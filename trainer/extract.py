"""``trainer extract``: compute frozen CLIP features and teacher features once, on disk.

Inputs are image folders (recursive; ImageFolder layouts accepted, labels ignored) and/or
videos (faces harvested first, see ``trainer.harvest``). Files are identified by the hash
of their bytes: duplicates are skipped, and inputs already in a finished shard are not
recomputed. Unreadable images are skipped, counted and listed (``skipped-r*.json``).
Under torchrun each rank takes every world-th pending input and writes its own shards.

Teacher targets follow ``trainer.teacher.targets``: ``reference`` stores K stochastic draws
per face (the authors' dropout-on targets, one per epoch; K = ``trainer.teacher.draws`` or
the number of epochs), ``clean`` one dropout-free target. Images reach the CLIP input size
by the reference's PIL resize (``trainer.extract.resize: pil``) when the CLIP preprocessing
is the reference's ``expclip``; the teacher sees the same resized crops, as it did there.

Example (plain text)::

    cfg = load_settings("train-offline")
    stats = extract_features(cfg, images=["faces/"], out="feats/")
    stats.computed, stats.images_per_s, stats.draws, stats.store_bytes
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from configs import Settings
from configs.core.errors import ConfigError
from engine import ExpressionEngine
from trainer.distributed import DistContext, init_distributed
from trainer.harvest import harvest_videos
from trainer.images import Item, UnreadableImage, list_images, read_rgb, unique_items
from trainer.store import FeatureStore
from trainer.teacher import Teacher, derive_seed, load_teacher

log = logging.getLogger(__name__)


@dataclass
class ExtractStats:
    """What one extraction run did (this rank's share for the per-rank counts)."""

    found: int = 0
    duplicates: int = 0
    done_before: int = 0
    """Inputs skipped because a finished shard already holds them (resumption)."""
    computed: int = 0
    """Inputs whose CLIP and teacher features this run computed."""
    shards_written: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    harvested_faces: int = 0
    targets: str = "clean"
    """``reference`` (stochastic draws) or ``clean`` teacher targets."""
    draws: int = 1
    """Teacher targets stored per face."""
    clip_seconds: float = 0.0
    teacher_seconds: float = 0.0
    store_bytes: int = 0
    """Size of the store's shard files after the run (all ranks)."""

    @property
    def images_per_s(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def extraction_engine(cfg: Settings, device: str | None = None) -> ExpressionEngine:
    """The engine whose frozen CLIP features are stored: no head, training preprocessing
    pinned (``auto`` means the reference's ``expclip``)."""
    pre = cfg.engine.preprocess if cfg.engine.preprocess != "auto" else "expclip"
    changes: dict[str, Any] = {"head": "none", "preprocess": pre}
    if device is not None:
        changes["device"] = device
    head_log = logging.getLogger("engine.head")
    level = head_log.level
    head_log.setLevel(logging.ERROR)  # "running plain CLIP zero-shot" does not apply here
    try:
        return ExpressionEngine(cfg.engine.replace(**changes))
    finally:
        head_log.setLevel(level)


def target_draws(cfg: Settings) -> int:
    """Teacher targets stored per face: ``trainer.teacher.draws`` (default: the number of
    epochs) for reference targets, 1 for clean ones."""
    t = cfg.trainer.teacher
    return 1 if t.targets == "clean" else (t.draws or cfg.trainer.fit.epochs)


def resize_size(cfg: Settings, engine: ExpressionEngine) -> int | None:
    """The side to PIL-resize decoded images to (the reference's path), or None for the
    engine's own tensor resize (``resize: tensor``, or a preprocessing other than expclip)."""
    if cfg.trainer.extract.resize == "pil" and engine.preprocess_mode == "expclip":
        return engine.preprocess_spec.image_size
    return None


def store_identity(engine: ExpressionEngine, teacher: Teacher, cfg: Settings) -> dict[str, Any]:
    """What made the features; a store only ever holds pairs from one identity."""
    size = resize_size(cfg, engine)
    return {
        "model": engine.model_name,
        "weights": engine.weights_id,
        "preprocess": engine.preprocess_mode,
        "image_size": engine.preprocess_spec.image_size,
        "clip_dim": engine.embed_dim,
        "logit_scale": engine.logit_scale,
        "resize": "pil" if size else "tensor",
        **teacher.describe(),
        "teacher_targets": cfg.trainer.teacher.targets,
        "teacher_draws": target_draws(cfg),
    }


def _decode(item: Item, size: int | None) -> np.ndarray | UnreadableImage:
    try:
        return read_rgb(item.path, size)
    except UnreadableImage as e:
        return e


def _decoded_batches(
    items: Sequence[Item], batch: int, workers: int, size: int | None = None
) -> Iterator[tuple[list[Item], list[np.ndarray | UnreadableImage]]]:
    """Batches of decoded (and, with ``size``, PIL-resized) images, the next batch decoding
    in threads while this one runs."""
    chunks = [list(items[i : i + batch]) for i in range(0, len(items), batch)]
    if workers == 0:
        for c in chunks:
            yield c, [_decode(it, size) for it in c]
        return
    with ThreadPoolExecutor(workers) as pool:
        ahead: list[Future] = [pool.submit(lambda c=c: [_decode(it, size) for it in c]) for c in chunks[:2]]
        for k, c in enumerate(chunks):
            result = ahead[k].result()
            if k + 2 < len(chunks):
                nxt = chunks[k + 2]
                ahead.append(pool.submit(lambda c=nxt: [_decode(it, size) for it in c]))
            ahead[k] = None  # type: ignore[call-overload]  # free decoded pixels
            yield c, result


def extract_features(
    cfg: Settings,
    images: Sequence[str | Path] = (),
    out: str | Path = "feats",
    videos: Sequence[str | Path] = (),
    progress: bool = False,
    engine: ExpressionEngine | None = None,
    teacher: Teacher | None = None,
    ctx: DistContext | None = None,
) -> ExtractStats:
    """Extract (CLIP, teacher) feature pairs of every new input into the store at ``out``."""

    ctx = ctx or init_distributed(cfg.engine.device)
    st = cfg.trainer.extract
    out = Path(out).expanduser()
    stats = ExtractStats()
    roots = [Path(p) for p in images]
    if videos:
        if ctx.is_main:
            h = harvest_videos(videos, out / "harvest", cfg, progress=progress)
            stats.harvested_faces = h.faces
            stats.unreadable.extend(h.failed)
        ctx.barrier()
        roots.append(out / "harvest")
    if not roots:
        raise ConfigError("extract: give at least one image folder or video")

    paths = list_images(roots, st.extensions)
    stats.found = len(paths)
    items, stats.duplicates, bad = unique_items(paths, progress=progress and ctx.is_main)
    stats.unreadable.extend(bad)

    dev = str(ctx.device) if ctx.world > 1 else None
    engine = engine or extraction_engine(cfg, dev)
    teacher = teacher or load_teacher(cfg.trainer.teacher, engine.device, Path(cfg.engine.cache_dir).expanduser())
    identity = store_identity(engine, teacher, cfg)
    stats.targets, stats.draws = cfg.trainer.teacher.targets, target_draws(cfg)
    size = resize_size(cfg, engine)
    if ctx.is_main:
        FeatureStore.create(out, identity)
    ctx.barrier()
    store = FeatureStore.create(out, identity)
    done = store.done_hashes()
    ctx.barrier()  # every rank has read the finished shards before any rank writes more
    pending = [it for it in items if it.sha256 not in done]
    stats.done_before = len(items) - len(pending)
    mine = pending[ctx.rank :: ctx.world]
    index = store.next_index(ctx.rank)

    buf_clip: list[np.ndarray] = []
    buf_teacher: list[np.ndarray] = []
    buf_items: list[Item] = []

    def flush(n: int) -> None:
        nonlocal index, buf_clip, buf_teacher, buf_items
        clip, teach = np.concatenate(buf_clip), np.concatenate(buf_teacher)
        its = buf_items[:n]
        store.write_shard(ctx.rank, index, clip[:n], teach[:n], [i.sha256 for i in its], [i.path for i in its])
        index += 1
        stats.shards_written += 1
        buf_clip, buf_teacher, buf_items = [clip[n:]], [teach[n:]], buf_items[n:]

    t0 = time.perf_counter()
    bar = tqdm(total=len(mine), desc="extracting", unit="img", disable=not (progress and ctx.is_main))
    try:
        for batch, decoded in _decoded_batches(mine, st.batch_size, st.workers, size):
            ok_items = [it for it, im in zip(batch, decoded, strict=True) if isinstance(im, np.ndarray)]
            crops = [im for im in decoded if isinstance(im, np.ndarray)]
            stats.unreadable.extend((e.path, e.reason) for e in decoded if isinstance(e, UnreadableImage))
            if crops:
                t_clip = time.perf_counter()
                buf_clip.append(engine.clip_image_features(crops))
                t_teacher = time.perf_counter()
                buf_teacher.append(_targets(teacher, crops, ok_items[0].sha256, cfg))
                stats.clip_seconds += t_teacher - t_clip
                stats.teacher_seconds += time.perf_counter() - t_teacher
                buf_items.extend(ok_items)
                stats.computed += len(crops)
            while len(buf_items) >= st.shard_size:
                flush(st.shard_size)
            bar.update(len(batch))
        if buf_items:
            flush(len(buf_items))
    finally:
        bar.close()
        stats.seconds = time.perf_counter() - t0
        store.write_skipped(ctx.rank, stats.unreadable)
    ctx.barrier()
    stats.store_bytes = store.nbytes()
    return stats


def _targets(teacher: Teacher, crops: list[np.ndarray], first_hash: str, cfg: Settings) -> np.ndarray:
    """Teacher targets of one batch: [n, T] clean, or [n, K, T] stochastic draws seeded by
    ``trainer.teacher.draw_seed`` and the batch's first content hash (reproducible runs)."""
    t = cfg.trainer.teacher
    if t.targets == "clean":
        return teacher.features(crops)
    draws = teacher.draws(crops, derive_seed(t.draw_seed, first_hash), target_draws(cfg))
    return np.ascontiguousarray(draws.transpose(1, 0, 2))
