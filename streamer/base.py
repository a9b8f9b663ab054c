"""Every interface between stages in the streamer: small ABCs with one verb
(``FaceDetector.detect``, ``Tracker.update``, ``Source.read``, ``FramePath.prepare``,
``Publisher.send``); what the pipeline needs of the engine is the ``ExpressionScorer``
protocol. The values they exchange are in ``streamer/values.py``; docs/design.md shows where
each runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from configs.engine import EngineSettings
from engine.smoothing import Smoother
from streamer.frames import Frame, FrameImage
from streamer.values import Detections, PublisherStats, SourceStats, TrackEvent, Tracks

if TYPE_CHECKING:  # only an annotation: the contracts load without torch
    from engine.output import EngineOutput


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
    tensor_device: str | None = None
    """The torch device (e.g. ``"cuda:0"``) whose uint8 BGR [h, w, 3] tensors ``detect`` and
    ``detect_batch`` also take, besides numpy pictures; None: numpy pictures only. The device
    frame path hands such a detector the pictures it made on that device."""

    @abstractmethod
    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Faces in ``image_bgr`` (uint8 [H, W, 3]; a tensor on ``tensor_device`` where that is
        set) in that picture's coordinates."""

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


class FramePath(ABC):
    """Where decoded frames become what detection and scoring need, chosen once per pipeline
    (``pipeline.frames``; ``streamer.device.path``): ``prepare`` runs on each source's decode
    thread, ``crop`` and ``stack`` on the scoring thread."""

    mode: str
    """``inline``, ``host`` or ``device``."""

    @abstractmethod
    def prepare(self, frame: Frame) -> None:
        """Called on the source's decode thread for each frame before it is queued."""

    @abstractmethod
    def crop(
        self, image: FrameImage, bbox_xyxy: np.ndarray, kps: np.ndarray | None, size: int, align: str, expand: float
    ) -> Any:
        """The faces' crops: uint8 RGB [N, size, size, 3], numpy or a tensor on the device."""

    @abstractmethod
    def stack(self, batches: list[Any]) -> Any:
        """One engine batch from the per-frame crops of ``crop``."""


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
