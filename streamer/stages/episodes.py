"""Expression episodes: "track 7 was surprised from 12.4 s to 13.9 s, peak 0.82".

Per track, a hysteresis on the smoothed top class: class C opens an episode once it is the
top class with probability at or above ``p_on`` continuously for ``t_on_s`` (media time);
the episode's onset is when that run began. It closes once C's probability stays below
``p_off`` for ``t_off_s``; its offset is when it first dropped. One episode per track at a
time; a flicker shorter than ``t_on_s`` opens nothing. An episode still open when its track
or stream ends (or the engine's classes change) is closed with that reason. Classes in
``ignore`` (``neutral`` by default) never open one. Owned by the detection thread.

Example:
    >>> from configs.analytics import EpisodeSettings
    >>> ep = EpisodeTracker(EpisodeSettings(t_on_s=0.5, t_off_s=0.5), ["happiness", "neutral"])
    >>> key = ("cam0", 7)
    >>> [e.kind for t in (0.0, 0.3, 0.6) for e in ep.observe(key, t, np.array([0.9, 0.1]))]
    ['started']
    >>> [e.kind for t in (0.9, 1.2, 1.5) for e in ep.observe(key, t, np.array([0.2, 0.8]))]
    ['ended']
    >>> e = ep.last_ended
    >>> e.label, e.onset_s, e.offset_s, e.peak_score, e.reason
    ('happiness', 0.0, 0.9, 0.9, 'dropped')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from configs.analytics import EpisodeSettings
from streamer.values import TrackKey

EPS = 1e-6
"""Seconds: media times are floats (0.7 - 0.2 < 0.5 in binary)."""

EndReason = Literal["dropped", "track_ended", "stream_ended", "engine_changed"]


@dataclass(frozen=True)
class EpisodeEvent:
    """An episode started or ended on one track."""

    kind: Literal["started", "ended"]
    stream_id: str
    track_id: int
    episode_id: int
    """Counts episodes per stream from 1."""
    label: str
    onset_s: float
    """Media time (pts) the class began to hold (wall time when the stream has no pts)."""
    peak_score: float
    peak_time_s: float
    mean_probs: list[float]
    """Mean of the smoothed probabilities observed from onset (to offset once ended)."""
    observations: int
    offset_s: float | None = None
    """When the class dropped below ``p_off`` (or the last observation, for other reasons)."""
    reason: EndReason | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.offset_s is None else round(self.offset_s - self.onset_s, 6)


@dataclass
class _Episode:
    label: int
    onset_s: float
    episode_id: int = 0
    peak: float = 0.0
    peak_t: float = 0.0
    sums: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n: int = 0
    below_since: float | None = None
    last_t: float = 0.0
    open: bool = False

    def add(self, t: float, probs: np.ndarray) -> None:
        p = float(probs[self.label])
        if p > self.peak or self.n == 0:
            self.peak, self.peak_t = p, t
        self.sums = probs.astype(np.float64) if self.n == 0 else self.sums + probs
        self.n += 1
        self.last_t = t


class EpisodeTracker:
    """Episode state of every track, keyed by ``TrackKey``; freed when tracks end."""

    def __init__(self, settings: EpisodeSettings, classes: Sequence[str]) -> None:
        self.settings = settings
        self.classes = list(classes)
        self._ignored = {i for i, c in enumerate(self.classes) if c in set(settings.ignore)}
        self._state: dict[TrackKey, _Episode] = {}
        self._counters: dict[str, int] = {}
        self.last_ended: EpisodeEvent | None = None

    def __len__(self) -> int:
        return len(self._state)

    def observe(self, key: TrackKey, t_s: float, smoothed: np.ndarray) -> list[EpisodeEvent]:
        """Feed one new smoothed observation of a track; returns the events it causes."""
        if not self.settings.enabled:
            return []
        probs = np.asarray(smoothed, np.float64)
        ep = self._state.get(key)
        if ep is not None and ep.open:
            return self._observe_open(key, ep, t_s, probs)
        top = int(probs.argmax())
        if top in self._ignored or probs[top] < self.settings.p_on:
            self._state.pop(key, None)  # a flicker that did not hold
            return []
        if ep is None or ep.label != top:
            ep = self._state[key] = _Episode(top, t_s)
        ep.add(t_s, probs)
        if t_s - ep.onset_s < self.settings.t_on_s - EPS:
            return []
        ep.open = True
        ep.episode_id = self._counters[key[0]] = self._counters.get(key[0], 0) + 1
        return [self._event("started", key, ep)]

    def _observe_open(self, key: TrackKey, ep: _Episode, t_s: float, probs: np.ndarray) -> list[EpisodeEvent]:
        if probs[ep.label] >= self.settings.p_off:
            ep.below_since = None
            ep.add(t_s, probs)
            return []
        if ep.below_since is None:
            ep.below_since = t_s
        if t_s - ep.below_since < self.settings.t_off_s - EPS:
            ep.last_t = t_s
            return []
        return [self._close(key, "dropped", ep.below_since)]

    def open_episode(self, key: TrackKey) -> EpisodeEvent | None:
        """The track's open episode as a ``started`` event (for the state snapshot), or None."""
        ep = self._state.get(key)
        return self._event("started", key, ep) if ep is not None and ep.open else None

    def end_track(self, key: TrackKey, reason: EndReason = "track_ended") -> list[EpisodeEvent]:
        """The track ended: close its open episode and free its state."""
        ep = self._state.get(key)
        if ep is None or not ep.open:
            self._state.pop(key, None)
            return []
        return [self._close(key, reason, ep.last_t)]

    def end_stream(self, stream_id: str, reason: EndReason = "stream_ended") -> list[EpisodeEvent]:
        events = [e for key in [k for k in self._state if k[0] == stream_id] for e in self.end_track(key, reason)]
        self._counters.pop(stream_id, None)
        return events

    def end_all(self, reason: EndReason) -> list[EpisodeEvent]:
        """Close every open episode (the engine's classes changed)."""
        return [e for key in list(self._state) for e in self.end_track(key, reason)]

    def _close(self, key: TrackKey, reason: EndReason, offset_s: float) -> EpisodeEvent:
        ep = self._state.pop(key)
        event = self._event("ended", key, ep, offset_s=offset_s, reason=reason)
        self.last_ended = event
        return event

    def _event(self, kind, key: TrackKey, ep: _Episode, offset_s=None, reason=None) -> EpisodeEvent:
        mean = (ep.sums / max(1, ep.n)).round(4).tolist()
        return EpisodeEvent(
            kind,
            key[0],
            key[1],
            ep.episode_id,
            self.classes[ep.label],
            round(ep.onset_s, 6),
            round(ep.peak, 4),
            round(ep.peak_t, 6),
            mean,
            ep.n,
            None if offset_s is None else round(offset_s, 6),
            reason,
        )
