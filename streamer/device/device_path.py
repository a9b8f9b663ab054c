"""``DeviceFramePath``: the ``device`` frame path (``streamer.device.path``). Each decode
thread uploads the frame's YUV planes to the engine's device (``PlaneUploader``); the
detector's picture (for a detector whose ``tensor_device`` is that device: the torch SCRFD)
and the face crops are made there in torch (``picture``, ``crops``), and crops go to the
engine as one device tensor. Frames that are not 4:2:0 take the host path.

Example:
    >>> path = DeviceFramePath((640, 640), torch.device("cpu"))
    >>> path.stack([torch.zeros((2, 64, 64, 3), dtype=torch.uint8)] * 3).shape
    torch.Size([6, 64, 64, 3])
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from engine.runtime import resolve_device
from streamer.base import FaceDetector, FramePath
from streamer.detect.frames import fit_size
from streamer.device.crops import crop_faces_on
from streamer.device.picture import detector_picture
from streamer.device.planes import PlaneUploader
from streamer.frames import Frame, FrameImage
from streamer.stages.align import crop_faces

log = logging.getLogger(__name__)


class DeviceFramePath(FramePath):
    """Planes, detector pictures and crops on ``device``."""

    mode = "device"

    def __init__(self, input_wh: tuple[int, int], device: torch.device, *, detector_picture: bool = False) -> None:
        self.input_wh = input_wh
        """The detector's input size: prepared pictures are scaled to fit inside it."""
        self.uploader = PlaneUploader(device)
        self.detector_picture = detector_picture
        """Make the detector's picture on the device too (else on the host, as ``host`` does)."""
        log.info("frame path: device (%s), detector picture on the device: %s", device, detector_picture)

    @classmethod
    def for_engine(cls, engine_device: str, detector: FaceDetector) -> DeviceFramePath:
        """Frames to the engine's device (``engine.device``); device pictures for ``detector``
        when its ``tensor_device`` is that same device."""
        device = resolve_device(engine_device)
        same = detector.tensor_device is not None and torch.device(detector.tensor_device) == device
        return cls(detector.input_size_wh, device, detector_picture=same)

    def prepare(self, frame: Frame) -> None:
        image = frame.image
        size = fit_size(image.size_wh, self.input_wh)
        planes = self.uploader.planes(image)
        if planes is not None and self.detector_picture:
            image.keep_device_bgr(size, lambda: detector_picture(planes, size))
            return
        image.prepare_bgr(size)

    def crop(
        self, image: FrameImage, bbox_xyxy: np.ndarray, kps: np.ndarray | None, size: int, align: str, expand: float
    ) -> torch.Tensor:
        """uint8 RGB [N, size, size, 3] on the device (cut on the host for frames that are not 4:2:0)."""
        planes = self.uploader.planes(image)
        if planes is None:
            host = crop_faces(image, bbox_xyxy, kps, size, align, expand)
            return torch.from_numpy(host).to(self.uploader.device)
        return crop_faces_on(planes, bbox_xyxy, kps, size, align, expand)

    def stack(self, batches: list[Any]) -> torch.Tensor:
        if not batches:
            return torch.zeros((0, 1, 1, 3), dtype=torch.uint8, device=self.uploader.device)
        return torch.cat(batches)
