"""Pipeline counters and per-stage timings, their typed snapshot, and the periodic stats line.

Each counter is written by one thread only (the stage that owns it), so no locks; readers
take approximate snapshots. ``StatsSnapshot`` is what ``Pipeline.snapshot()`` and
``Pipeline.run()`` return, ``streamer bench`` summarises and the stats line prints.

Example:
    >>> stats = PipelineStats()
    >>> with stats.time("detect", items=2):
    ...     pass
    >>> snap = stats.snapshot()
    >>> snap.stages["detect"].calls, snap.stages["detect"].items
    (1, 2)
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from streamer.values import SourceStats


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

    @property
    def mean_ms(self) -> float:
        return 1000 * self.total_s / max(1, self.calls)

    @property
    def per_item_ms(self) -> float:
        return 1000 * self.total_s / max(1, self.items)


@dataclass
class StreamStats:
    """Counters of one stream, written by the detection and scoring threads."""

    frames: int = 0
    """Frames detected, tracked and published."""
    faces: int = 0
    """Face observations published (tracked faces summed over frames)."""
    scored: int = 0
    """Crops scored by the engine."""
    errors: int = 0
    """Frames (or crops) skipped because a stage raised (or the engine returned non-finite scores)."""
    abstained: int = 0
    """Face observations published as abstentions (too small, not frontal, blurred)."""
    frames_failed: int = 0
    """Frames never published because detection, tracking or publishing raised (among ``errors``)."""
    started: bool = False
    """The source opened and reported its stream ("started")."""
    outcome: str | None = None
    """The terminal event published: "ended" or "failed" (None while running)."""
    last_event: str | None = None
    """Kind of the latest event of the stream's source ("started", "reconnecting", ...)."""
    reason: str | None = None
    """Why it ended or failed."""

    @property
    def ended(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True)
class RescoreSummary:
    """Seconds between consecutive scorings of the same track."""

    count: int
    mean_s: float | None
    p95_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class StreamSnapshot:
    """One stream's counters and its source's, at one moment."""

    stats: StreamStats
    source: SourceStats | None
    """None when the source could not even be created."""
    queue_depth: int = 0


@dataclass(frozen=True)
class StatsSnapshot:
    """The pipeline at one moment: totals, per stream, per stage, drops and queue depths."""

    elapsed_s: float
    ticks: int
    streams: dict[str, StreamSnapshot]
    stages: dict[str, StageTime]
    rescore: RescoreSummary
    drops: dict[str, int]
    """Per place: ``source`` (stale frames), ``score`` (frames never scored: a newer one
    replaced them), ``publish`` (messages the publisher dropped), ``preview``."""
    queues: dict[str, int]
    published: int
    abstentions: dict[str, int] = field(default_factory=dict)
    """Abstentions published, by reason (too_small, not_frontal, blurred)."""
    relinks: int = 0
    """Tracks that continued one that had just ended."""

    @property
    def frames(self) -> int:
        return sum(s.stats.frames for s in self.streams.values())

    @property
    def faces(self) -> int:
        return sum(s.stats.faces for s in self.streams.values())

    @property
    def scored(self) -> int:
        return sum(s.stats.scored for s in self.streams.values())

    @property
    def errors(self) -> int:
        return sum(s.stats.errors for s in self.streams.values())


class LatencyLog:
    """Frame-to-publish latency of every processed frame: seconds from decode
    (``Frame.wall_time_s``) to the hand-over of its faces message to the publisher, with the
    publish time; written by the detection thread only (through the ``Emitter``).

    Example:
        >>> log = LatencyLog()
        >>> for i in range(100):
        ...     log.add("cam0", 1000.0 + i, i / 1000)
        >>> log.percentiles_ms(since_s=1050.0)["p50"]
        74.5
    """

    def __init__(self, maxlen: int = 200_000) -> None:
        self.maxlen = maxlen
        self.per_stream: dict[str, deque[tuple[float, float]]] = {}

    def add(self, stream_id: str, published_s: float, latency_s: float) -> None:
        log = self.per_stream.get(stream_id)
        if log is None:
            log = self.per_stream[stream_id] = deque(maxlen=self.maxlen)
        log.append((published_s, latency_s))

    def values(self, stream_id: str | None = None, since_s: float = 0.0) -> np.ndarray:
        """Latencies in seconds published at or after ``since_s`` (one stream, or all)."""
        ids = [stream_id] if stream_id is not None else list(self.per_stream)
        vals = [lat for sid in ids for t, lat in list(self.per_stream.get(sid, ())) if t >= since_s]
        return np.asarray(vals, np.float64)

    def percentiles_ms(self, stream_id: str | None = None, since_s: float = 0.0) -> dict[str, float | None]:
        """p50 / p95 / p99 / max in milliseconds (None without samples)."""
        v = self.values(stream_id, since_s)
        if v.size == 0:
            return {"p50": None, "p95": None, "p99": None, "max": None}
        p = np.percentile(v * 1000.0, [50, 95, 99, 100])
        return {k: round(float(x), 2) for k, x in zip(("p50", "p95", "p99", "max"), p, strict=True)}


class PipelineStats:
    """Everything the stats line and ``streamer bench`` report."""

    def __init__(self) -> None:
        self.stages: dict[str, StageTime] = defaultdict(StageTime)
        self.streams: dict[str, StreamStats] = {}
        self.score_jobs_replaced = 0
        """Frames whose faces were never scored because a newer frame replaced them (drop-to-latest)."""
        self.ticks = 0
        self.started_s = time.monotonic()
        self.rescore_gaps_s: deque[float] = deque(maxlen=10_000)
        """Seconds between consecutive scorings of the same track (scoring thread): the latest
        10 000, enough for percentiles (100 000 floats were the largest Python-side growth of
        a long run, ~3 MiB before the cap; tests/streamer/test_soak.py)."""
        self.abstentions: Counter[str] = Counter()
        """Abstentions published, by reason."""
        self.relinks = 0
        """Tracks that continued a track that had just ended (scoring thread)."""
        self.latency = LatencyLog()
        """Frame-to-publish latency per processed frame (detection thread, via the emitter)."""
        self.observers: list[Callable[[str, float, int], None]] = []
        """Called with ``(stage, seconds, items)`` after each timed stage (metrics histograms)."""

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
            seconds = time.perf_counter() - t0
            self.stages[stage].add(seconds, items)
            for observe in self.observers:
                observe(stage, seconds, items)

    def rescore(self) -> RescoreSummary:
        gaps = sorted(self.rescore_gaps_s)
        if not gaps:
            return RescoreSummary(0, None, None, None)
        return RescoreSummary(
            len(gaps), round(sum(gaps) / len(gaps), 4), round(gaps[int(0.95 * (len(gaps) - 1))], 4), round(gaps[-1], 4)
        )

    def snapshot(
        self,
        sources: dict[str, Any] | None = None,
        drops: dict[str, int] | None = None,
        queues: dict[str, int] | None = None,
        published: int = 0,
    ) -> StatsSnapshot:
        """A copy of the counters; ``sources`` maps stream ids to ``streamer.base.Source``."""
        sources = sources or {}
        streams = {
            sid: StreamSnapshot(
                StreamStats(**asdict(st)),
                SourceStats(**asdict(sources[sid].stats)) if sid in sources else None,
                sources[sid].queue_depth if sid in sources else 0,
            )
            for sid, st in sorted(self.streams.items())
        }
        return StatsSnapshot(
            elapsed_s=round(max(1e-9, time.monotonic() - self.started_s), 3),
            ticks=self.ticks,
            streams=streams,
            stages={name: StageTime(**asdict(s)) for name, s in sorted(self.stages.items())},
            rescore=self.rescore(),
            drops=dict(drops or {}),
            queues=dict(queues or {}),
            published=published,
            abstentions=dict(self.abstentions),
            relinks=self.relinks,
        )


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


def stats_line(snap: StatsSnapshot, meter: RateMeter) -> str:
    """``stats: cam0 29.8 fps | faces/s 119.0 scored/s 8.0 | drops source 0 score 3 ... | queues ...``"""
    parts = [f"{sid} {meter.rate(f'fps.{sid}', s.stats.frames):.1f} fps" for sid, s in snap.streams.items()]
    return (
        "stats: "
        + (", ".join(parts) or "no streams")
        + f" | faces/s {meter.rate('faces', snap.faces):.1f} scored/s {meter.rate('scored', snap.scored):.1f}"
        + " | drops "
        + " ".join(f"{k} {v}" for k, v in snap.drops.items())
        + " | queues "
        + " ".join(f"{k} {v}" for k, v in snap.queues.items())
    )
