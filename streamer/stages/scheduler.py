"""Which tracks the engine scores in a tick: each at most ``max_hz`` times a second, new
tracks first, then the longest-waiting ones, at most ``max_batch`` per tick.

Owned by the scoring thread. Expressions change slower than frames (docs/design.md), so a slow
engine (CPU) scores fewer crops per second instead of delaying detection and tracking.

Example:
    >>> sch = ScoringScheduler(max_hz=2.0, max_batch=64)
    >>> sch.select([("cam0", 1), ("cam0", 2)], now_s=0.0)
    [('cam0', 1), ('cam0', 2)]
    >>> sch.select([("cam0", 1)], now_s=0.1)      # scored 0.1 s ago: not due
    []
"""

from __future__ import annotations

from collections.abc import Sequence

from streamer.values import TrackKey


class ScoringScheduler:
    """Rate-limits re-scoring per track; remembers when each track was last scored."""

    def __init__(self, max_hz: float, max_batch: int) -> None:
        if max_hz <= 0 or max_batch < 1:
            raise ValueError(f"max_hz must be > 0 and max_batch >= 1, got {max_hz}, {max_batch}")
        self.period_s = 1.0 / max_hz
        self.max_batch = max_batch
        self._last: dict[TrackKey, float] = {}

    def __len__(self) -> int:
        return len(self._last)

    def select(self, candidates: Sequence[TrackKey], now_s: float) -> list[TrackKey]:
        """The candidates to score now, in priority order, and mark them as scored at ``now_s``.

        Never-scored tracks come first (in the given order), then due tracks by how long
        they have waited. Candidates beyond ``max_batch`` wait for a later tick.
        """
        new: list[TrackKey] = []
        due: list[tuple[float, TrackKey]] = []
        for key in candidates:
            last = self._last.get(key)
            if last is None:
                new.append(key)
            elif now_s - last >= self.period_s:
                due.append((last, key))
        due.sort(key=lambda item: item[0])
        chosen = (new + [k for _, k in due])[: self.max_batch]
        for key in chosen:
            self._last[key] = now_s
        return chosen

    def forget(self, key: TrackKey) -> None:
        """A track ended."""
        self._last.pop(key, None)

    def forget_stream(self, stream_id: str) -> None:
        """A stream ended: drop all its tracks."""
        for key in [k for k in self._last if k[0] == stream_id]:
            del self._last[key]
