"""The frame paths (``streamer.base.FramePath``): where decoded pictures become what detection
and scoring need. ``pipeline.frames`` names one, and ``frame_path_for`` builds it once per
pipeline:

* ``inline`` (``InlineFramePath``) — the detection thread converts each frame for the
  detector itself (one swscale pass per frame on that ONE thread; the behaviour before frame
  paths existed);
* ``host`` (``HostFramePath``) — each source's decode thread makes the detector's picture as
  it queues the frame (``FrameImage.prepare_bgr``), so colour conversion runs on as many
  threads as there are streams; crops are cut on the host (``streamer.stages.align``);
* ``device`` (``streamer.device.device_path.DeviceFramePath``) — each decode thread uploads
  the frame's YUV planes to the engine's device; the detector's picture (for a detector whose
  ``tensor_device`` is that device) and the face crops are made there in torch, and crops go
  to the engine as a device tensor. Frames that are not 4:2:0 take the host path.

Example:
    >>> path = HostFramePath(input_wh=(640, 640))
    >>> path.mode, path.stack([np.zeros((2, 64, 64, 3), np.uint8)] * 3).shape
    ('host', (6, 64, 64, 3))
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from streamer.base import FaceDetector, FramePath
from streamer.detect.frames import fit_size
from streamer.frames import Frame, FrameImage
from streamer.stages.align import crop_faces

FrameMode = Literal["inline", "host", "device"]
FRAME_MODES: tuple[FrameMode, ...] = ("inline", "host", "device")


class HostFramePath(FramePath):
    """The decode thread makes the detector's picture (BGR numpy) as it queues the frame;
    crops are cut on the host."""

    mode = "host"

    def __init__(self, input_wh: tuple[int, int]) -> None:
        self.input_wh = input_wh
        """The detector's input size: prepared pictures are scaled to fit inside it."""

    def prepare(self, frame: Frame) -> None:
        image = frame.image
        image.prepare_bgr(fit_size(image.size_wh, self.input_wh))

    def crop(
        self, image: FrameImage, bbox_xyxy: np.ndarray, kps: np.ndarray | None, size: int, align: str, expand: float
    ) -> np.ndarray:
        return crop_faces(image, bbox_xyxy, kps, size, align, expand)

    def stack(self, batches: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(batches) if batches else np.zeros((0, 1, 1, 3), np.uint8)


class InlineFramePath(HostFramePath):
    """Nothing is prepared ahead: the detection thread converts each frame itself. Crops are
    cut on the host."""

    mode = "inline"

    def prepare(self, frame: Frame) -> None:
        pass


def frame_path_for(mode: FrameMode, engine_device: str, detector: FaceDetector) -> FramePath:
    """The pipeline's frame path: on the device path the frames go to the engine's device,
    and the detector gets device pictures when its ``tensor_device`` is that same device."""
    if mode == "inline":
        return InlineFramePath(detector.input_size_wh)
    if mode == "host":
        return HostFramePath(detector.input_size_wh)
    if mode == "device":
        from streamer.device.device_path import DeviceFramePath  # torch loads only for this path

        return DeviceFramePath.for_engine(engine_device, detector)
    raise ValueError(f"frame path {mode!r}; allowed: {', '.join(FRAME_MODES)}")
