"""Every value and interface that crosses a stage boundary in the streamer.

Stages are small ABCs with one verb (``FaceDetector.detect``, ``Tracker.update``,
``Source.read``, ``Publisher.send``); what the pipeline needs of the engine is the
``ExpressionScorer`` protocol. Values are frozen dataclasses that check their own shapes.
Per-track state everywhere is keyed by one ``TrackKey``: ``(stream_id, track_id)``.
docs/design.md shows where each runs.

Example:
    >>> dets = Detections(np.array([[10, 10, 50, 60]], np.float32), np.array([0.9], np.float32))
    >>> len(dets), dets.kps is None
    (1, True)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from configs.engine import EngineSettings
from engine.output import EngineOutput
from engine.smoothing import Smoother
from engine.smoothing import TrackKey as TrackKey  # re-exported: the one per-track key
from streamer.frames import Frame as Frame  # re-exported: decoded frames cross every stage


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


# ---------------------------------------------------------------- interfaces
class ExpressionScorer(Protocol):
    """What the pipeline needs of the expression engine (``engine.ExpressionEngine``)."""

    fingerprint: str
    """Identifies model, weights, head, prompts and preprocessing (published with results)."""

    @property
    def classes(self) -> list[str]: ...

    @property
    def crop_size(self) -> int: ...

    def score(self, crops: Any) -> EngineOutput:
        """uint8 RGB crops [N, S, S, 3] (numpy, or a torch tensor on the device frame path)
        -> scores against ``classes``."""
        ...

    def make_smoother(self) -> Smoother: ...

    def describe(self) -> dict[str, Any]: ...

    def derive(self, settings: EngineSettings) -> ExpressionScorer:
        """A new engine for changed settings (prompts, head), built while this one scores."""
        ...

    @property
    def settings(self) -> EngineSettings: ...


class FaceDetector(ABC):
    """Finds faces in BGR pictures. Owned by one thread."""

    name: str = "base"
    input_size_wh: tuple[int, int]
    """Largest picture ``detect`` wants; callers scale frames to fit inside it."""

    @abstractmethod
    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Faces in ``image_bgr`` (uint8 [H, W, 3]) in that picture's coordinates."""

    def detect_batch(self, images_bgr: Sequence[np.ndarray]) -> list[Detections]:
        """Faces in several pictures (one per stream of a tick). Batched detectors override."""
        return [self.detect(img) for img in images_bgr]


class Tracker(ABC):
    """Associates one stream's detections over time. Owned by one thread."""

    @abstractmethod
    def update(self, dets: Detections, frame_index: int) -> tuple[Tracks, list[TrackEvent]]:
        """Feed one frame's detections; return confirmed tracks and lifecycle events."""

    @abstractmethod
    def predicted_boxes(self) -> np.ndarray:
        """Where each kept track is expected next, float32 [N, 4] (where to look for faces)."""

    @abstractmethod
    def end(self, frame_index: int) -> list[TrackEvent]:
        """End every live track (end of stream)."""


class Source(ABC):
    """One video stream: decoded frames on demand, lifecycle events to its callback.

    Lifecycle: ``start()`` -> ``read()`` until ``done`` -> ``stop()``. Every source emits
    exactly one terminal ``StreamEvent`` ("ended" or "failed") and never raises into the
    reader's thread once started.
    """

    stream_id: str
    uri: str
    live: bool
    stats: SourceStats

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None when none arrived within ``timeout`` seconds."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once the stream has ended or failed AND every queued frame was read."""

    @property
    @abstractmethod
    def queue_depth(self) -> int: ...

    @abstractmethod
    def stop(self, reason: str = "stopped") -> None:
        """Stop decoding (emits "ended" with ``reason`` unless already terminal). Idempotent."""


class Publisher(ABC):
    """Sends messages to subscribers without ever blocking the caller."""

    stats: PublisherStats

    @abstractmethod
    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        """Queue or send ``msg`` under ``topic``; False when it was dropped (counted)."""

    @property
    def queue_depth(self) -> int:
        """Messages accepted by ``send`` and not yet sent."""
        return 0

    @abstractmethod
    def close(self) -> None:
        """Flush what can be flushed and release the socket."""
