"""One measured pipeline run: N streams of one source for a fixed time, everything counted
over a window that starts after a warm-up (first batches, compilation, CUDA graphs).

Counts over the WHOLE run satisfy ``published = decoded - dropped(source) - discarded(stop)
- failed`` per stream (every decoded frame is accounted for); rates, latencies, stage times
and CPU are taken over the window. A run is "real time" when, over the window, every stream
publishes at least 97 % of the source's frame rate, drops (source queue + failed frames)
stay under 1 %, the frame-to-publish p99 is under the limit, and latency does not grow (the
median of the last third of the window exceeds the first third's by less than a quarter of
the limit).

Example (plain text: builds a pipeline)::

    run = run_streams(settings, uri, 4, engine=eng, detector=det, seconds=10, warmup_s=3, fps=30,
                      max_latency_ms=200)
    run["realtime"]["ok"], run["total"]["latency_ms"]["p99"]
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from configs import Settings
from streamer.base import ExpressionScorer, FaceDetector, Publisher
from streamer.benchmark.probes import CpuSample, GpuProbe, cpu_report, cpu_sample, gpu_memory
from streamer.pipeline import NullPublisher, Pipeline, StreamSpec
from streamer.pipeline.stats import StatsSnapshot

log = logging.getLogger(__name__)

MIN_FPS_SHARE = 0.97
MAX_DROP_SHARE = 0.01

STAGES = {
    "decode": "decode (PyAV, source threads)",
    "prepare": "colour conversion/resize/upload (source threads)",
    "convert": "colour conversion/resize (detection thread)",
    "detect": "detect (full frames, batched)",
    "detect_roi": "detect (regions around tracks)",
    "track": "track",
    "publish": "publish (build + hand over)",
    "crop": "crop/align (scoring thread)",
    "engine": "engine (one batch per tick)",
    "smooth": "smooth",
}


class _Window:
    """The start and end of the measured window: snapshots, CPU samples and times."""

    def __init__(self) -> None:
        self.a: tuple[StatsSnapshot, CpuSample, float] | None = None
        self.b: tuple[StatsSnapshot, CpuSample, float] | None = None


def _counts(snap: StatsSnapshot) -> dict[str, dict[str, float]]:
    out = {}
    for sid, s in snap.streams.items():
        src = s.source
        out[sid] = {
            "decoded": src.frames_decoded if src else 0,
            "dropped": src.frames_dropped if src else 0,
            "discarded": src.frames_discarded if src else 0,
            "decode_s": src.decode_s if src else 0.0,
            "prepare_s": src.prepare_s if src else 0.0,
            "published": s.stats.frames,
            "failed": s.stats.frames_failed,
            "faces": s.stats.faces,
            "scored": s.stats.scored,
        }
    return out


def _delta(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {sid: {k: v - a.get(sid, {}).get(k, 0) for k, v in vals.items()} for sid, vals in b.items()}


def _stages(a: StatsSnapshot, b: StatsSnapshot, srcs: dict[str, dict[str, float]], wall: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("decode", "prepare"):
        total = sum(v[f"{key}_s"] for v in srcs.values())
        n = sum(v["decoded"] for v in srcs.values())
        out[key] = {"what": STAGES[key], "calls": int(n), "total_s": round(total, 3), "mean_ms": _ms(total, n)}
    for name, st in b.stages.items():
        prev = a.stages.get(name)
        calls = st.calls - (prev.calls if prev else 0)
        items = st.items - (prev.items if prev else 0)
        total = st.total_s - (prev.total_s if prev else 0.0)
        out[name] = {
            "what": STAGES.get(name, name),
            "calls": calls,
            "items": items,
            "total_s": round(total, 3),
            "mean_ms": _ms(total, calls),
            "per_item_ms": _ms(total, items),
        }
    for v in out.values():
        v["busy_share"] = round(v["total_s"] / max(1e-9, wall), 3)
    return out


def _ms(total_s: float, n: float) -> float:
    return round(1000 * total_s / n, 3) if n else 0.0


def _lag_growth_ms(latency: Any, since_s: float, until_s: float) -> float | None:
    """Median latency of the window's last third minus its first third's (ms)."""
    pts = [(t, lat) for log_ in latency.per_stream.values() for t, lat in list(log_) if since_s <= t <= until_s]
    if len(pts) < 6:
        return None
    third = (until_s - since_s) / 3
    first = [lat for t, lat in pts if t < since_s + third]
    last = [lat for t, lat in pts if t >= until_s - third]
    if not first or not last:
        return None
    return round(1000 * (float(np.median(last)) - float(np.median(first))), 2)


def run_streams(
    settings: Settings,
    uri: str,
    streams: int,
    *,
    engine: ExpressionScorer,
    detector: FaceDetector,
    seconds: float,
    warmup_s: float,
    fps: float | None,
    max_latency_ms: float,
    publisher: Publisher | None = None,
) -> dict[str, Any]:
    """Run ``streams`` copies of ``uri`` (looping when ``seconds`` > 0) and report."""
    loop = seconds > 0
    settings = settings.replace(sources=settings.sources.replace(loop=loop))
    specs = [StreamSpec(f"s{i:02d}", uri) for i in range(streams)]
    pub = publisher or NullPublisher()
    pipe = Pipeline(settings, specs, pub, engine=engine, detector=detector)
    stop = threading.Event()
    win = _Window()
    done = threading.Event()
    dev = getattr(engine, "device", None)
    gpu = GpuProbe() if getattr(dev, "type", None) == "cuda" else None

    def probe() -> None:
        if done.wait(warmup_s):
            return
        win.a = (pipe.snapshot(), cpu_sample(), time.time())
        if gpu is not None:
            gpu.start()
        end = time.monotonic() + seconds if loop else float("inf")
        while not done.is_set() and time.monotonic() < end:
            win.b = (pipe.snapshot(), cpu_sample(), time.time())
            done.wait(min(0.5, max(0.0, end - time.monotonic())))
        win.b = win.b if done.is_set() else (pipe.snapshot(), cpu_sample(), time.time())
        stop.set()

    prober = threading.Thread(target=probe, name="bench-probe", daemon=True)
    prober.start()
    try:
        final = pipe.run(stop)
    finally:
        done.set()
        prober.join()
    gpu_report = gpu.stop() if gpu is not None else None
    if not loop and win.a is not None and win.b is not None:
        # Played once: the window ends with the run. Threads are gone by now, so CPU per thread
        # is the last sample taken while they ran.
        win.b = (final, win.b[1], time.time())
    if win.a is None or win.b is None:  # the run ended within its warm-up: the whole run is the window
        t0 = time.time() - final.elapsed_s
        empty = pipe.stats.snapshot()
        win.a = (_zeroed(empty), cpu_sample(), t0)
        win.b = (final, cpu_sample(), time.time())
    return _report(pipe, final, win, streams, fps, max_latency_ms, gpu_report, dev)


def _zeroed(snap: StatsSnapshot) -> StatsSnapshot:
    return StatsSnapshot(0.0, 0, {}, {}, snap.rescore, {}, {}, 0)


def _report(
    pipe: Any,
    final: StatsSnapshot,
    win: _Window,
    streams: int,
    fps: float | None,
    max_latency_ms: float,
    gpu_report: dict[str, Any] | None,
    device: Any,
) -> dict[str, Any]:
    assert win.a is not None and win.b is not None
    (sa, ca, ta), (sb, cb, tb) = win.a, win.b
    wall = max(1e-9, tb - ta)
    whole = _counts(final)
    window = _delta(_counts(sa), _counts(sb))
    lat = pipe.stats.latency
    per_stream = {}
    for sid, c in whole.items():
        w = window.get(sid, {})
        per_stream[sid] = {
            "frames": {k: int(c[k]) for k in ("decoded", "published", "dropped", "discarded", "failed")},
            "fps": round(w.get("published", 0) / wall, 2),
            "faces_per_s": round(w.get("faces", 0) / wall, 1),
            "crops_scored_per_s": round(w.get("scored", 0) / wall, 2),
            "latency_ms": lat.percentiles_ms(sid, since_s=ta),
            "outcome": final.streams[sid].stats.outcome,
        }
    tot_w = {k: sum(w.get(k, 0) for w in window.values()) for k in ("published", "decoded", "dropped", "failed")}
    tot_w.update({k: sum(w.get(k, 0) for w in window.values()) for k in ("faces", "scored")})
    lat_all = lat.percentiles_ms(since_s=ta)
    growth = _lag_growth_ms(lat, ta, tb)
    drops_share = (tot_w["dropped"] + tot_w["failed"]) / max(1, tot_w["decoded"])
    min_fps = min((s["fps"] for s in per_stream.values()), default=0.0)
    reasons = []
    if fps and min_fps < MIN_FPS_SHARE * fps:
        reasons.append(f"slowest stream {min_fps} fps < {MIN_FPS_SHARE:.0%} of {fps:g}")
    if drops_share >= MAX_DROP_SHARE:
        reasons.append(f"drops {drops_share:.1%} >= {MAX_DROP_SHARE:.0%}")
    if lat_all["p99"] is None or lat_all["p99"] > max_latency_ms:
        reasons.append(f"p99 {lat_all['p99']} ms > {max_latency_ms:g} ms")
    if growth is not None and growth > max_latency_ms / 4:
        reasons.append(f"latency grows by {growth} ms over the window")
    frames_whole = {k: int(sum(c[k] for c in whole.values())) for k in per_stream[next(iter(per_stream))]["frames"]}
    return {
        "streams": streams,
        "window_s": round(wall, 3),
        "total": {
            "frames": frames_whole,
            "fps": round(tot_w["published"] / wall, 2),
            "fps_per_stream_min": min_fps,
            "faces_per_frame": round(tot_w["faces"] / max(1, tot_w["published"]), 2),
            "faces_per_s": round(tot_w["faces"] / wall, 1),
            "crops_scored_per_s": round(tot_w["scored"] / wall, 2),
            "latency_ms": lat_all,
            "lag_growth_ms": growth,
            "drops_share": round(drops_share, 5),
        },
        "drops_by_stage": {
            "source_queue": frames_whole["dropped"],
            "stopped_at_end": frames_whole["discarded"],
            "failed_frames": frames_whole["failed"],
            "unscored_replaced": int(final.drops.get("score", 0)),
            "publisher": int(final.drops.get("publish", 0)),
        },
        "stages": _stages(sa, sb, window, wall),
        "cpu_per_thread": cpu_report(ca, cb),
        "gpu": None if gpu_report is None else {**gpu_report, **gpu_memory(device)},
        "per_stream": per_stream,
        "realtime": {"ok": not reasons, "reasons": reasons},
    }
