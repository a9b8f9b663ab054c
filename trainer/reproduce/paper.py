"""``trainer reproduce``: a head on the paper's benchmarks, with the paper's protocol and
prompts, beside its Table 2 and the authors' own log.

Protocol (docs/training.md): per benchmark its class set (basic7 / basic8 / mafw11) and the
prompt set (``a_photo_of_a_face`` unless given: the authors' log section closest to Table 2);
images scored one by one, videos by 16 frames at segment centres, projected, averaged over
time and normalised; DFEW and MAFW averaged over their 5 test folds, as the reference did.
Pixels reach the engine as the reference loaded them (``trainer.eval.resize: pil``).
Benchmarks not found under the data root are reported absent, never scored as zero.

Example (plain text)::

    cfg = reproduce_settings("default", ["engine.head=expclip-l14"])
    result = reproduce(cfg, "/data", "repro/")
    print(format_table(result, load_published()))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from configs import Settings, load_settings
from configs.core.errors import ConfigError
from configs.loader import ConfigSource
from engine.head import RELEASED_HEADS
from engine.prompts import reference_data
from trainer.evaluate.zeroshot import eval_engines, score_samples
from trainer.reproduce.datasets import BENCHMARKS, BENCHMARKS_BY_KEY, Absent, Benchmark, locate
from trainer.reproduce.results import BACKBONE_ROWS, Pair

log = logging.getLogger(__name__)

PAPER_PROMPTS = "a_photo_of_a_face"
"""Default prompt set: of the authors' five log sections, the closest to Table 2."""


@dataclass(frozen=True)
class BenchmarkResult:
    """One benchmark's outcome: (UAR, WAR) per engine (``head``, ``clip``), mean over folds."""

    benchmark: Benchmark
    status: Literal["done", "absent"]
    ours: dict[str, Pair] = field(default_factory=dict)
    folds: list[dict[str, Pair]] = field(default_factory=list)
    samples: int = 0
    skipped: int = 0
    layout: str = ""
    where: str = ""
    looked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` ran and found, in Table 2's column order."""

    head: str
    backbone: str
    prompts: str
    resize: str
    paper_row: str | None
    results: list[BenchmarkResult]


def reproduce_settings(config: ConfigSource = None, overrides: Sequence[str] = ()) -> Settings:
    """Settings for a reproduction: the paper's prompt set unless overridden, and the OpenAI
    backbone a released head belongs to (``engine.head: expclip-b32`` -> ViT-B-32)."""
    pre = [f"engine.prompts.set={PAPER_PROMPTS}"]
    cfg = load_settings(config, [*pre, *overrides])
    released = RELEASED_HEADS.get(cfg.engine.head)
    if released is not None and cfg.engine.model.name != released.backbone:
        log.info(
            "head %s belongs to %s (%s weights): using that backbone",
            cfg.engine.head,
            released.backbone,
            released.pretrained,
        )
        model = [f"engine.model.name={released.backbone}", f"engine.model.pretrained={released.pretrained}"]
        cfg = load_settings(config, [*pre, *overrides, *model, "engine.model.config_file=null"])
    return cfg


def default_paper_row(cfg: Settings) -> str | None:
    """The Table 2 row to compare with: a released head's own, else the one of its backbone."""
    if cfg.engine.head in RELEASED_HEADS:
        return cfg.engine.head
    return BACKBONE_ROWS.get(cfg.engine.model.name)


def _with_classes(cfg: Settings, classes: str) -> Settings:
    prompts = cfg.engine.prompts.model_dump() | {"classes": classes}
    return cfg.replace(engine=cfg.engine.model_dump() | {"prompts": prompts})


def _mean(pairs: list[Pair]) -> Pair:
    return (sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs))


def reproduce(
    cfg: Settings,
    data_root: str | Path,
    out: str | Path,
    benchmarks: Sequence[str] | None = None,
    paper_row: str | None = None,
) -> Reproduction:
    """Evaluate the configured head (and plain CLIP unless ``trainer.eval.baseline`` is off) on
    every benchmark found under ``data_root``; per-fold reports and confusion matrices go to
    ``out/<benchmark>/``, the summary to ``out/reproduce.json``."""
    keys = list(benchmarks) if benchmarks else [b.key for b in BENCHMARKS]
    unknown = [k for k in keys if k not in BENCHMARKS_BY_KEY]
    if unknown:
        raise ConfigError(f"--datasets: unknown {unknown}; allowed: {', '.join(BENCHMARKS_BY_KEY)}")
    root, out = Path(data_root).expanduser(), Path(out).expanduser()
    if not root.is_dir():
        raise ConfigError(f"--data: no such folder {root}")
    class_sets = reference_data(cfg.engine.prompts.file)["class_sets"]
    results: dict[str, BenchmarkResult] = {}
    chosen = [BENCHMARKS_BY_KEY[k] for k in keys]
    for classes in dict.fromkeys(b.classes for b in chosen):  # one pair of engines per class set
        group = [b for b in chosen if b.classes == classes]
        found = {b.key: locate(b, root, class_sets[classes]) for b in group}
        present = [b for b in group if not isinstance(found[b.key], Absent)]
        for b in group:
            if isinstance(a := found[b.key], Absent):
                results[b.key] = BenchmarkResult(b, "absent", looked=a.looked)
                log.info("%s: absent (looked in %s)", b.title, "; ".join(a.looked))
        if not present:
            continue
        sub = _with_classes(cfg, classes)
        engines = eval_engines(sub)
        for b in present:
            loc = found[b.key]
            assert not isinstance(loc, Absent)
            per_fold, samples, skipped = [], 0, 0
            for k, fold in enumerate(loc.folds, start=1):
                where = out / b.key / (f"fold-{k}" if len(loc.folds) > 1 else "")
                meta = {"dataset": b.title, "layout": loc.layout, "root": loc.where, "fold": k}
                if fold.clips is not None:
                    r = score_samples(engines, sub, where, clips=fold.clips, meta=meta)
                else:
                    r = score_samples(engines, sub, where, images=(fold.paths, fold.labels), meta=meta)
                per_fold.append({n: (m["uar"], m["war"]) for n, m in r["models"].items()})
                samples += r["samples"]
                skipped += len(r["skipped"])
            ours = {n: _mean([f[n] for f in per_fold]) for n in per_fold[0]}
            results[b.key] = BenchmarkResult(b, "done", ours, per_fold, samples, skipped, loc.layout, loc.where)
        del engines
    rep = Reproduction(
        head=cfg.engine.head,
        backbone=cfg.engine.model.name,
        prompts=cfg.engine.prompts.set,
        resize=cfg.trainer.eval.resize,
        paper_row=paper_row if paper_row is not None else default_paper_row(cfg),
        results=[results[b.key] for b in chosen],
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "reproduce.json").write_text(json.dumps(_jsonable(rep), indent=2))
    return rep


def _jsonable(rep: Reproduction) -> dict[str, Any]:
    data = asdict(rep)
    for r in data["results"]:
        r["benchmark"] = r["benchmark"]["key"]
    return data
