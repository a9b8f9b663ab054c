"""Every value that crosses a stage boundary in the streamer: frozen dataclasses that check
their own shapes (``Detections``, ``Tracks``, ``TrackEvent``, ``StreamEvent``,
``FaceResult``, ``Abstention``) and the counters stages keep (``SourceStats``,
``PublisherStats``). Per-track state everywhere is keyed by one ``TrackKey``:
``(stream_id, track_id)``. The interfaces between stages are in ``streamer/base.py``.

Example:
    >>> dets = Detections(np.array([[10, 10, 50, 60]], np.float32), np.array([0.9], np.float32))
    >>> len(dets), dets.kps is None
    (1, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from engine.smoothing import TrackKey as TrackKey  # re-exported: the one per-track key


def _check(name: str, arr: np.ndarray, shape: tuple[int | None, ...], dtype: Any) -> None:
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape, strict=True))
    if not ok or arr.dtype != dtype:
        want = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name}: expected {np.dtype(dtype)} {want}, got {arr.dtype} {list(arr.shape)}")


# ---------------------------------------------------------------- values
@dataclass(frozen=True)
class Detections:
    """Faces found in one picture, in that picture's pixel coordinates."""

    bbox_xyxy: np.ndarray
    """float32 [N, 4]."""
    scores: np.ndarray
    """float32 [N]: detector confidence."""
    kps: np.ndarray | None = None
    """float32 [N, 5, 2]: eyes, nose, mouth corners (None when the detector gives none)."""

    def __post_init__(self) -> None:
        _check("Detections.bbox_xyxy", self.bbox_xyxy, (None, 4), np.float32)
        n = self.bbox_xyxy.shape[0]
        _check("Detections.scores", self.scores, (n,), np.float32)
        if self.kps is not None:
            _check("Detections.kps", self.kps, (n, 5, 2), np.float32)

    def __len__(self) -> int:
        return self.bbox_xyxy.shape[0]

    @classmethod
    def empty(cls, with_kps: bool = False) -> Detections:
        kps = np.zeros((0, 5, 2), np.float32) if with_kps else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), kps)

    def select(self, mask: np.ndarray) -> Detections:
        """The detections where ``mask`` (bool [N] or indices) selects."""
        kps = None if self.kps is None else self.kps[mask]
        return Detections(self.bbox_xyxy[mask], self.scores[mask], kps)


@dataclass(frozen=True)
class Tracks:
    """Confirmed tracks observed in one frame (tracks missed this frame are not listed)."""

    track_ids: np.ndarray
    """int64 [N]: per-stream track ids, stable while the face stays in view."""
    bbox_xyxy: np.ndarray
    """float32 [N, 4]: the matched detection boxes."""
    det_scores: np.ndarray
    """float32 [N]."""
    ages: np.ndarray
    """int64 [N]: frames since each track started."""
    kps: np.ndarray | None = None
    """float32 [N, 5, 2] or None (zeros for predicted tracks)."""
    predicted: np.ndarray | None = None
    """bool [N]: True for a track the detector missed in this frame, at its predicted box
    (``tracker.coast_s``); None = all matched."""

    def __post_init__(self) -> None:
        _check("Tracks.track_ids", self.track_ids, (None,), np.int64)
        n = self.track_ids.shape[0]
        _check("Tracks.bbox_xyxy", self.bbox_xyxy, (n, 4), np.float32)
        _check("Tracks.det_scores", self.det_scores, (n,), np.float32)
        _check("Tracks.ages", self.ages, (n,), np.int64)
        if self.kps is not None:
            _check("Tracks.kps", self.kps, (n, 5, 2), np.float32)
        if self.predicted is not None:
            _check("Tracks.predicted", self.predicted, (n,), np.bool_)

    def select(self, mask: np.ndarray) -> Tracks:
        """The tracks where ``mask`` (bool [N] or indices) selects."""
        kps = None if self.kps is None else self.kps[mask]
        pred = None if self.predicted is None else self.predicted[mask]
        return Tracks(self.track_ids[mask], self.bbox_xyxy[mask], self.det_scores[mask], self.ages[mask], kps, pred)

    @property
    def matched(self) -> np.ndarray:
        """bool [N]: tracks with a detection in this frame."""
        return np.ones(len(self), bool) if self.predicted is None else ~self.predicted

    def __len__(self) -> int:
        return self.track_ids.shape[0]

    @classmethod
    def empty(cls) -> Tracks:
        z = np.zeros(0, np.int64)
        return cls(z, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), z.copy())


@dataclass(frozen=True)
class TrackEvent:
    """A track started (first confirmed), ended (lost longer than the buffer, or stream end),
    or was re-linked to a track that ended just before (``relinked_from``)."""

    stream_id: str
    track_id: int
    kind: Literal["started", "ended", "relinked"]
    frame_index: int
    age: int = 0
    """Frames the track lived (for ``ended``)."""
    relinked_from: int | None = None
    """For ``relinked``: the ended track this one continues."""

    def __post_init__(self) -> None:
        if self.kind not in ("started", "ended", "relinked"):
            raise ValueError(f"TrackEvent.kind must be 'started', 'ended' or 'relinked', got {self.kind!r}")
        if (self.kind == "relinked") != (self.relinked_from is not None):
            raise ValueError("TrackEvent: relinked_from is set exactly for kind 'relinked'")


STREAM_EVENT_KINDS = ("started", "reconnecting", "resumed", "discontinuity", "ended", "failed")


@dataclass(frozen=True)
class StreamEvent:
    """A change in a stream's life, as a source reports it."""

    stream_id: str
    kind: Literal["started", "reconnecting", "resumed", "discontinuity", "ended", "failed"]
    wall_time_s: float
    """``time.time()`` when the source observed it."""
    reason: str | None = None
    """Human-readable cause; always set for "reconnecting", "discontinuity" and "failed"."""
    details: dict = field(default_factory=dict)
    """JSON-able extras, e.g. ``{"attempt": 2, "delay_s": 1.3, "uri": "rtsp://..."}``."""

    def __post_init__(self) -> None:
        if self.kind not in STREAM_EVENT_KINDS:
            raise ValueError(f"StreamEvent.kind must be one of {STREAM_EVENT_KINDS}, got {self.kind!r}")
        if self.kind in ("failed", "reconnecting", "discontinuity") and not self.reason:
            raise ValueError(f"a {self.kind!r} StreamEvent needs a reason")

    @property
    def terminal(self) -> bool:
        """``ended`` or ``failed``: the stream's last event."""
        return self.kind in ("ended", "failed")


EventCallback = Callable[[StreamEvent], None]


@dataclass(frozen=True)
class FaceResult:
    """Latest expression scores of one track (written by the scoring thread)."""

    probs: np.ndarray
    """float32 [C]: raw probabilities of the latest scored crop."""
    smoothed_probs: np.ndarray
    """float32 [C]: the engine smoother's output."""
    label: str
    """Top class of the smoothed probabilities."""
    score: float
    """Smoothed probability of ``label``."""
    frame_index: int
    """Frame the crop was taken from."""
    scored_at_s: float = 0.0
    """``time.monotonic()`` of scoring."""
    frame_time_s: float = 0.0
    """Media time of that frame (its pts; its decode wall time when it has none)."""
    generation: int = 0
    """Which engine produced it (counts engine changes); other generations are never published."""
    relinked_from: int | None = None
    """The ended track whose smoothed state this one continued."""

    def __post_init__(self) -> None:
        if self.probs.ndim != 1 or self.smoothed_probs.shape != self.probs.shape:
            got = f"{self.probs.shape} and {self.smoothed_probs.shape}"
            raise ValueError(f"FaceResult: probs and smoothed_probs must both be [C], got {got}")


@dataclass(frozen=True)
class Abstention:
    """A face published without a label and not scored: ``too_small``, ``not_frontal`` or
    ``blurred`` (docs/streamer.md)."""

    reason: str
    frame_index: int
    scored_at_s: float = 0.0
    generation: int = 0


# ---------------------------------------------------------------- counters
@dataclass
class SourceStats:
    """Counters of one source; written by its thread only, safe to read from any thread."""

    frames_decoded: int = 0
    """Frames the decoder produced (delivered or dropped)."""
    frames_dropped: int = 0
    """Frames discarded because the queue was full (live sources and realtime files)."""
    reconnects: int = 0
    """Reconnect attempts made (one per "reconnecting" event)."""
    decode_errors: int = 0
    """Packets the decoder rejected (skipped; the stream goes on)."""
    discontinuities: int = 0
    """Timestamp jumps (forward beyond ``sources.discontinuity_s``, or backward) in files."""
    last_error: str | None = None
    """The latest open, read or decode error, as text."""
    last_frame_wall_s: float | None = None
    """``time.time()`` of the latest decoded frame."""
    frames_discarded: int = 0
    """Frames decoded after ``stop()`` closed the queue (never delivered)."""
    decode_s: float = 0.0
    """Seconds spent in the decoder (``packet.decode``) on the source's thread."""
    prepare_s: float = 0.0
    """Seconds spent preparing frames for the next stages on the source's thread (frame path)."""


@dataclass
class PublisherStats:
    """Counters of a publisher; written by its own thread(s)."""

    sent: int = 0
    dropped_queue: int = 0
    """Messages refused by ``send`` because the publisher's queue was full."""
    dropped_socket: int = 0
    """Messages the socket would not take without blocking, or that could not be encoded."""

    @property
    def dropped(self) -> int:
        """All messages dropped on this side (subscribers past their high-water mark lose
        messages inside ZeroMQ; they see those as ``seq`` gaps)."""
        return self.dropped_queue + self.dropped_socket
