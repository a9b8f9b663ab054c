"""The frame path: where decoded pictures become what detection and scoring need.

``pipeline.frames`` picks it:

* ``inline`` — the detection thread converts each frame for the detector itself (one
  swscale pass per frame on that ONE thread; the behaviour before frame paths existed);
* ``host`` — each source's decode thread makes the detector's picture as it queues the frame
  (``FrameImage.prepare_bgr``), so colour conversion runs on as many threads as there are
  streams; crops are cut on the host (``streamer.stages.align``);
* ``device`` — each decode thread uploads the frame's YUV planes to the engine's device
  (``PlaneUploader``); the detector's picture (for detectors that take tensors: the torch
  SCRFD) and the face crops are made there in torch (``picture``, ``crops``), and crops go to
  the engine as a device tensor. Frames that are not 4:2:0 take the host path.

Example:
    >>> path = FramePath("host", input_wh=(640, 640))
    >>> path.crop_on_device
    False
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from streamer.base import FaceDetector
from streamer.detect.frames import fit_size
from streamer.frames import Frame, FrameImage
from streamer.stages.align import crop_faces

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

FrameMode = Literal["inline", "host", "device"]


class FramePath:
    """Prepares frames in the decode threads and cuts crops for the scoring thread."""

    def __init__(
        self,
        mode: FrameMode,
        input_wh: tuple[int, int],
        *,
        device: torch.device | str = "cpu",
        tensor_detector: bool = False,
    ) -> None:
        if mode not in ("inline", "host", "device"):
            raise ValueError(f"frame path {mode!r}; allowed: inline, host, device")
        self.mode = mode
        self.input_wh = input_wh
        self.tensor_detector = tensor_detector and mode == "device"
        self.uploader: Any = None
        if mode == "device":
            import torch

            from streamer.device.planes import PlaneUploader

            self.uploader = PlaneUploader(torch.device(device))
            log.info("frame path: device (%s), detector picture on the device: %s", device, self.tensor_detector)

    @property
    def crop_on_device(self) -> bool:
        return self.mode == "device"

    def prepare(self, frame: Frame) -> None:
        """Called on the source's decode thread for each frame before it is queued."""
        if self.mode == "inline":
            return
        image = frame.image
        size = fit_size(image.size_wh, self.input_wh)
        if self.mode == "device":
            planes = self.uploader.planes(image)
            if planes is not None and self.tensor_detector:
                from streamer.device.picture import detector_picture

                image.keep_device_bgr(size, lambda: detector_picture(planes, size))
                return
        image.prepare_bgr(size)

    def crop(
        self, image: FrameImage, bbox_xyxy: np.ndarray, kps: np.ndarray | None, size: int, align: str, expand: float
    ) -> np.ndarray | torch.Tensor:
        """The faces' crops: uint8 RGB [N, size, size, 3], a device tensor on the device path."""
        if self.mode != "device":
            return crop_faces(image, bbox_xyxy, kps, size, align, expand)
        import torch

        from streamer.device.crops import crop_faces_on

        planes = self.uploader.planes(image)
        if planes is None:
            host = crop_faces(image, bbox_xyxy, kps, size, align, expand)
            return torch.from_numpy(host).to(self.uploader.device)
        return crop_faces_on(planes, bbox_xyxy, kps, size, align, expand)


def frame_path_for(mode: FrameMode, engine_device: str, detector: FaceDetector) -> FramePath:
    """The pipeline's frame path: on the device path the frames go to the engine's device,
    and the detector gets device pictures when it takes tensors on that same device."""
    import torch

    from engine.runtime import resolve_device

    device = resolve_device(engine_device) if mode == "device" else torch.device("cpu")
    tensors = detector.tensor_device is not None and torch.device(detector.tensor_device) == device
    return FramePath(mode, detector.input_size_wh, device=device, tensor_detector=tensors)


def stack_crops(batches: list[Any]) -> Any:
    """One batch from per-frame crops (numpy arrays, or tensors on the device path)."""
    if batches and not isinstance(batches[0], np.ndarray):
        import torch

        return torch.cat(batches)
    return np.concatenate(batches) if batches else np.zeros((0, 1, 1, 3), np.uint8)
