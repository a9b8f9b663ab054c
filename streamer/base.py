"""The streamer's stage interfaces and the typed values that travel between stages.

Each stage is one small ABC with one verb (STYLE.md #1): ``FaceDetector.detect``,
``Tracker.update``, ``Publisher.send``. Values are frozen dataclasses that check their own
shapes (STYLE.md #2).

Example:
    >>> dets = Detections(np.array([[10, 10, 50, 60]], np.float32), np.array([0.9], np.float32))
    >>> len(dets), dets.kps is None
    (1, True)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _check(name: str, arr: np.ndarray, shape: tuple[int | None, ...], dtype: Any) -> None:
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape, strict=True))
    if not ok or arr.dtype != dtype:
        want = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name}: expected {np.dtype(dtype)} {want}, got {arr.dtype} {list(arr.shape)}")


@dataclass(frozen=True)
class Detections:
    """Faces found in one picture, in full-frame pixel coordinates."""

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
    """float32 [N, 5, 2] or None."""

    def __post_init__(self) -> None:
        _check("Tracks.track_ids", self.track_ids, (None,), np.int64)
        n = self.track_ids.shape[0]
        _check("Tracks.bbox_xyxy", self.bbox_xyxy, (n, 4), np.float32)
        _check("Tracks.det_scores", self.det_scores, (n,), np.float32)
        _check("Tracks.ages", self.ages, (n,), np.int64)
        if self.kps is not None:
            _check("Tracks.kps", self.kps, (n, 5, 2), np.float32)

    def __len__(self) -> int:
        return self.track_ids.shape[0]

    @classmethod
    def empty(cls) -> Tracks:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class TrackEvent:
    """A track started (first confirmed) or ended (lost longer than the buffer, or stream end)."""

    stream_id: str
    track_id: int
    kind: str
    """``"started"`` or ``"ended"``."""
    frame_index: int
    age: int = 0
    """Frames the track lived (for ``ended``)."""

    def __post_init__(self) -> None:
        if self.kind not in ("started", "ended"):
            raise ValueError(f"TrackEvent.kind must be 'started' or 'ended', got {self.kind!r}")


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
    scored_at_s: float = field(default=0.0)
    """Monotonic time of scoring."""

    def __post_init__(self) -> None:
        if self.probs.ndim != 1 or self.smoothed_probs.shape != self.probs.shape:
            raise ValueError(
                f"FaceResult: probs {self.probs.shape} and smoothed_probs {self.smoothed_probs.shape} must be [C]"
            )


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
    def end(self, frame_index: int) -> list[TrackEvent]:
        """End every live track (end of stream)."""


class Publisher(ABC):
    """Sends messages to subscribers without ever blocking the caller."""

    @abstractmethod
    def send(self, topic: str, msg: dict[str, Any]) -> bool:
        """Queue or send ``msg`` under ``topic``; False when it was dropped (counted)."""

    @abstractmethod
    def close(self) -> None:
        """Flush what can be flushed and release the socket."""
