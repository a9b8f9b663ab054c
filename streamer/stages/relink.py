"""Re-linking: a face the detector lost for longer than the tracker waits comes back as a
new track; when the new track's first projected engine feature agrees with that of a track
of the same stream that ended at most ``tracker.relink_s`` ago (cosine >=
``tracker.relink_min_similarity``), the new track continues the old one: its smoothing state
is carried over and it is published with ``relinked_from``. Owned by the scoring thread.

Example:
    >>> from configs.streamer import TrackerSettings
    >>> rl = Relinker(TrackerSettings(relink_s=2.0, relink_min_similarity=0.9), clock=lambda: 10.0)
    >>> face = np.array([1.0, 0.0, 0.2], np.float32)
    >>> rl.observe(("cam0", 3), face)
    >>> rl.ended(("cam0", 3), state="smoothing state of track 3")
    >>> rl.match(("cam0", 9), face * 2)        # same direction: the same face
    (3, 'smoothing state of track 3')
    >>> rl.match(("cam0", 10), face) is None   # consumed: one track continues another once
    True
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from configs.streamer import TrackerSettings
from streamer.values import TrackKey

MAX_ENDED = 1024
"""Ended tracks kept for re-linking at most (the oldest go first)."""


def _unit(feature: np.ndarray) -> np.ndarray:
    f = np.asarray(feature, np.float32)
    return (f / max(float(np.linalg.norm(f)), 1e-12)).astype(np.float16)


class Relinker:
    """The latest feature of every live track, and recently ended tracks waiting for a match."""

    def __init__(self, settings: TrackerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = settings.relink_s
        self.min_similarity = settings.relink_min_similarity
        self.enabled = settings.relink_s > 0
        self._clock = clock
        self._live: dict[TrackKey, np.ndarray] = {}
        self._ended: OrderedDict[TrackKey, tuple[float, np.ndarray, object]] = OrderedDict()

    def observe(self, key: TrackKey, feature: np.ndarray) -> None:
        if self.enabled:
            self._live[key] = _unit(feature)

    def ended(self, key: TrackKey, state: object) -> None:
        """A track ended; ``state`` is its smoothing state (carried over on a match)."""
        feature = self._live.pop(key, None)
        if feature is None or not self.enabled:
            return
        self._ended[key] = (self._clock(), feature, state)
        while len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)

    def match(self, key: TrackKey, feature: np.ndarray) -> tuple[int, object] | None:
        """The ended track of ``key``'s stream that ``feature`` continues (its id and state),
        consumed; None when none is recent and similar enough."""
        now = self._clock()
        for old in [k for k, (t, _, _) in self._ended.items() if now - t > self.window_s]:
            del self._ended[old]
        f = _unit(feature).astype(np.float32)
        best, best_sim = None, self.min_similarity
        for old, (_, g, _) in self._ended.items():
            if old[0] == key[0] and old != key:
                sim = float(f @ g.astype(np.float32))
                if sim >= best_sim:
                    best, best_sim = old, sim
        if best is None:
            return None
        _, _, state = self._ended.pop(best)
        return best[1], state

    def forget_stream(self, stream_id: str) -> None:
        for store in (self._live, self._ended):
            for key in [k for k in store if k[0] == stream_id]:
                del store[key]

    def clear(self) -> None:
        self._live.clear()
        self._ended.clear()

    def __len__(self) -> int:
        return len(self._live) + len(self._ended)
