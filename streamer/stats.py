"""Pipeline counters and per-stage timings, and the periodic stats line.

Each counter is written by one thread only (the stage that owns it), so no locks; readers
take approximate snapshots.

Example:
    >>> stats = PipelineStats()
    >>> with stats.time("detect"):
    ...     dets = detector.detect(img)
    >>> stats.snapshot()["stages_ms"]["detect"]["mean_ms"]
    12.3
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageTime:
    """Total time and call count of one stage (``items`` = frames or crops handled)."""

    calls: int = 0
    items: int = 0
    total_s: float = 0.0

    def add(self, seconds: float, items: int = 1) -> None:
        self.calls += 1
        self.items += items
        self.total_s += seconds


@dataclass
class StreamStats:
    """Counters of one stream."""

    frames: int = 0
    """Frames detected, tracked and published."""
    faces: int = 0
    """Face observations published (tracked faces summed over frames)."""
    scored: int = 0
    """Crops scored by the engine."""
    errors: int = 0
    """Frames skipped because a stage raised."""
    started_s: float = field(default_factory=time.monotonic)
    ended: bool = False


class PipelineStats:
    """Everything the stats line and ``streamer bench`` report."""

    def __init__(self) -> None:
        self.stages: dict[str, StageTime] = defaultdict(StageTime)
        self.streams: dict[str, StreamStats] = {}
        self.score_jobs_replaced = 0
        """Frames whose faces were never scored because a newer frame replaced them (drop-to-latest)."""
        self.ticks = 0
        self.started_s = time.monotonic()
        self.rescore_gaps_s: deque[float] = deque(maxlen=100_000)
        """Seconds between consecutive scorings of the same track (scoring thread)."""

    def stream(self, stream_id: str) -> StreamStats:
        st = self.streams.get(stream_id)
        if st is None:
            st = self.streams[stream_id] = StreamStats()
        return st

    @contextmanager
    def time(self, stage: str, items: int = 1) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage].add(time.perf_counter() - t0, items)

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A JSON-able view: totals, per-stream counts and per-stage mean times."""
        elapsed = max(1e-9, time.monotonic() - self.started_s)
        stages = {
            name: {
                "calls": s.calls,
                "items": s.items,
                "total_s": round(s.total_s, 4),
                "mean_ms": round(1000 * s.total_s / max(1, s.calls), 3),
                "per_item_ms": round(1000 * s.total_s / max(1, s.items), 3),
            }
            for name, s in sorted(self.stages.items())
        }
        streams = {
            sid: {"frames": s.frames, "faces": s.faces, "scored": s.scored, "errors": s.errors, "ended": s.ended}
            for sid, s in sorted(self.streams.items())
        }
        gaps = sorted(self.rescore_gaps_s)
        rescore = {
            "count": len(gaps),
            "mean_s": round(sum(gaps) / len(gaps), 4) if gaps else None,
            "p95_s": round(gaps[int(0.95 * (len(gaps) - 1))], 4) if gaps else None,
            "max_s": round(gaps[-1], 4) if gaps else None,
        }
        out = {
            "elapsed_s": round(elapsed, 3),
            "rescore_interval": rescore,
            "ticks": self.ticks,
            "score_jobs_replaced": self.score_jobs_replaced,
            "streams": streams,
            "stages_ms": stages,
        }
        out.update(extra or {})
        return out


class RateMeter:
    """Turns cumulative counters into per-second rates between two stats lines."""

    def __init__(self, start_s: float | None = None) -> None:
        self.start_s = time.monotonic() if start_s is None else start_s
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, key: str, value: float, now_s: float | None = None) -> float:
        """Per-second change of ``value`` since the previous call for ``key`` (or since start)."""
        now_s = time.monotonic() if now_s is None else now_s
        prev = self._last.get(key, (self.start_s, 0.0))
        self._last[key] = (now_s, value)
        if now_s <= prev[0]:
            return 0.0
        return (value - prev[1]) / (now_s - prev[0])


def stats_line(snap: dict[str, Any], meter: RateMeter) -> str:
    """``stats: cam0 29.8 fps 4.0 faces/f | faces/s 119 scored/s 8.0 | drops src 0 score 3 pub 0 | queues ...``"""
    parts = []
    faces_total = scored_total = 0
    for sid, s in snap["streams"].items():
        fps = meter.rate(f"fps.{sid}", s["frames"])
        parts.append(f"{sid} {fps:.1f} fps")
        faces_total += s["faces"]
        scored_total += s["scored"]
    drops = snap.get("drops", {})
    queues = snap.get("queues", {})
    return (
        "stats: "
        + (", ".join(parts) or "no streams")
        + f" | faces/s {meter.rate('faces', faces_total):.1f} scored/s {meter.rate('scored', scored_total):.1f}"
        + " | drops "
        + " ".join(f"{k} {v}" for k, v in drops.items())
        + " | queues "
        + " ".join(f"{k} {v}" for k, v in queues.items())
    )
