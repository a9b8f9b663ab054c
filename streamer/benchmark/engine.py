"""Engine benchmark: faces/s and latency per model x backend x batch size.

Every run also measures the baseline — plain open_clip eager (``encode_image`` + head +
normalise + logits, same device and precision) — so speed-ups are always against a number
taken on the same machine in the same process.

Rows report two latencies:
* ``model_ms``: preprocessed pixels already on the device -> logits + features
  (what the backend itself costs);
* ``e2e_ms``: uint8 RGB 224x224 crops in host memory -> ``EngineOutput`` (upload,
  preprocessing, model, softmax, copy back): what a caller of ``ExpressionEngine.score`` sees.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from configs.engine import EngineSettings
from engine.backends import BackendError
from engine.engine import ExpressionEngine

log = logging.getLogger(__name__)

TINY = "ExpStream-Tiny"


@dataclass(frozen=True)
class BenchRow:
    model: str
    backend: str
    batch: int
    device: str
    precision: str
    model_ms: float
    """Median latency of pixels -> logits/features."""
    model_ms_p90: float
    faces_per_s: float
    """batch / model_ms."""
    e2e_ms: float | None
    """Median latency of uint8 crops -> EngineOutput (None for the baseline)."""
    e2e_faces_per_s: float | None
    max_prob_diff: float | None = None
    """fp8 only: max |prob - prob of open_clip eager| over the batch."""
    top1_agreement: float | None = None
    """fp8 only: fraction of crops whose top class equals open_clip eager's."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int, max_s: float) -> list[float]:
    """Wall-clock milliseconds of ``fn`` per call after ``warmup`` calls (synchronised on CUDA)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    deadline = time.perf_counter() + max_s
    while len(times) < iters and (len(times) < 3 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _p(times: list[float], q: float) -> float:
    s = sorted(times)
    return s[min(len(s) - 1, int(q * len(s)))]


def baseline_fn(engine: ExpressionEngine, pixels: torch.Tensor) -> Callable[[], Any]:
    """Plain open_clip eager, the reference maths (docs/design.md) without the engine's backends."""
    model = engine.clip_model
    head = engine.head
    emb = engine.class_embeddings
    scale = engine.logit_scale
    x = pixels.to(engine.dtype)

    @torch.inference_mode()
    def run() -> torch.Tensor:
        f = model.encode_image(x).float()
        if head is not None:
            f = head(f)
        f = F.normalize(f, dim=-1)
        return scale * f @ emb.T

    return run


def fp8_agreement(engine: ExpressionEngine, pixels: torch.Tensor) -> dict[str, float]:
    """How far fp8 scores are from open_clip eager at the engine's activation dtype."""
    with torch.inference_mode():
        ref = torch.softmax(baseline_fn(engine, pixels)(), dim=-1)
        out = torch.softmax(engine.score_pixels(pixels)[0], dim=-1)
    return {
        "max_prob_diff": float((out - ref).abs().max()),
        "top1_agreement": float((out.argmax(-1) == ref.argmax(-1)).float().mean()),
    }


def engine_settings_for(model: str, backend: str, base: EngineSettings) -> EngineSettings:
    """``base`` with random weights of ``model`` on ``backend`` (speed does not depend on the
    weights' values); the tiny test model keeps its config file."""
    model_settings = base.model.replace(
        name=model, pretrained=None, config_file=base.model.config_file if model == TINY else None
    )
    return base.replace(backend=backend, model=model_settings)


def bench_model(
    engine: ExpressionEngine,
    batches: list[int],
    warmup: int,
    iters: int,
    max_s: float,
    with_baseline: bool,
) -> list[BenchRow]:
    """Rows for one built engine (and the open_clip baseline) over ``batches``."""
    rows = []
    dev = engine.device
    prec = "fp8" if engine.settings.precision == "fp8" else str(engine.dtype).removeprefix("torch.")
    s = engine.preprocess_spec.image_size
    rng = np.random.default_rng(0)
    for b in batches:
        crops = rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8)
        pixels = engine.preprocess(crops)
        if with_baseline:
            t = time_call(baseline_fn(engine, pixels), dev, warmup, iters, max_s)
            med = statistics.median(t)
            rows.append(
                BenchRow(
                    engine.model_name, "openclip-eager", b, str(dev), prec, med, _p(t, 0.9), b / med * 1e3, None, None
                )
            )
        agreement: dict[str, float] = {}
        if engine.settings.precision == "fp8":
            agreement = fp8_agreement(engine, pixels)
        t = time_call(lambda px=pixels: engine.score_pixels(px), dev, warmup, iters, max_s)
        t_e2e = time_call(lambda c=crops: engine.score(c), dev, max(1, warmup // 2), iters, max_s)
        med, med_e2e = statistics.median(t), statistics.median(t_e2e)
        rows.append(
            BenchRow(
                engine.model_name,
                engine.backend.name,
                b,
                str(dev),
                prec,
                med,
                _p(t, 0.9),
                b / med * 1e3,
                med_e2e,
                b / med_e2e * 1e3,
                **agreement,
            )
        )
        log.info(
            "%s %s batch %d: %.2f ms (%.0f faces/s), e2e %.2f ms",
            engine.model_name,
            engine.backend.name,
            b,
            med,
            b / med * 1e3,
            med_e2e,
        )
    return rows


def run_bench(
    models: list[str],
    backends: list[str],
    batches: list[int],
    base: EngineSettings,
    warmup: int = 3,
    iters: int = 20,
    max_s: float = 10.0,
) -> tuple[list[BenchRow], list[dict[str, str]]]:
    """Benchmark every model x backend; returns rows and the (model, backend, reason) skips."""
    rows: list[BenchRow] = []
    skipped: list[dict[str, str]] = []
    for model in models:
        for i, backend in enumerate(backends):
            settings = engine_settings_for(model, backend, base)
            try:
                engine = ExpressionEngine(settings)
            except BackendError as e:
                log.warning("skipping %s/%s: %s", model, backend, e)
                skipped.append({"model": model, "backend": backend, "reason": str(e)})
                continue
            rows += bench_model(engine, batches, warmup, iters, max_s, with_baseline=(i == 0))
            del engine
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return rows, skipped


def environment() -> dict[str, Any]:
    """Machine facts recorded beside the figures."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def format_table(rows: list[BenchRow]) -> str:
    """A Markdown table of the rows."""
    head = "| model | backend | batch | device | precision | model ms (p50) | faces/s | e2e ms | e2e faces/s |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        e2e = f"{r.e2e_ms:.2f}" if r.e2e_ms is not None else "-"
        e2e_fps = f"{r.e2e_faces_per_s:,.0f}" if r.e2e_faces_per_s is not None else "-"
        lines.append(
            f"| {r.model} | {r.backend} | {r.batch} | {r.device} | {r.precision} | {r.model_ms:.2f} | "
            f"{r.faces_per_s:,.0f} | {e2e} | {e2e_fps} |"
        )
    for r in rows:
        if r.top1_agreement is not None:
            lines.append(
                f"\n{r.model} fp8 batch {r.batch} vs open_clip eager: max |prob diff| {r.max_prob_diff:.4f}, "
                f"top-1 agreement {r.top1_agreement:.1%}"
            )
    return "\n".join(lines)


def rows_as_dicts(rows: list[BenchRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
