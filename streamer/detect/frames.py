"""The one way ExpStream finds faces in decoded frames: the pipeline's detection thread and
the trainer's face harvesting both call ``detect_frames``.

Each picture is scaled to fit the detector's input (one swscale pass from the decoder's YUV,
never a full-size RGB copy), detected whole (all pictures in one batched call) or only in
regions around given boxes (``detector.full_frame_every`` > 1), mapped back to frame pixels,
and faces below ``detector.min_face_px`` are dropped. A picture that cannot be converted, or a
batch the detector rejects, yields a ``FrameError`` in its place: one bad frame never costs
the others theirs.

Example (plain text: needs decoded frames)::

    results = detect_frames(detector, [frame.image for frame in frames], settings.detector)
    for frame, found in zip(frames, results):
        if isinstance(found, FrameError):
            log.warning("%s: %s failed: %s", frame.stream_id, found.stage, found.error)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.detect.roi import detect_in_regions
from streamer.frames import FrameImage
from streamer.values import Detections

Timer = Callable[[str, int], AbstractContextManager[None]]


def _untimed(stage: str, items: int) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass(frozen=True)
class FrameError:
    """Why a picture got no detections: the stage that failed and its exception."""

    stage: str
    """``convert`` (scaling/colour conversion) or ``detect``."""
    error: Exception


def fit_size(frame_wh: tuple[int, int], box_wh: tuple[int, int]) -> tuple[int, int]:
    """Largest even size with the frame's aspect ratio inside ``box_wh`` (never upscales).

    Example:
        >>> fit_size((1280, 720), (640, 640))
        (640, 360)
    """
    w, h = frame_wh
    s = min(box_wh[0] / w, box_wh[1] / h, 1.0)
    return max(2, int(w * s) & ~1), max(2, int(h * s) & ~1)


def scale_detections(dets: Detections, sx: float, sy: float, min_face_px: float = 0.0) -> Detections:
    """Map detections from detector pixels to frame pixels and drop faces below ``min_face_px``."""
    if len(dets) == 0:
        return dets
    scale = np.array([sx, sy, sx, sy], np.float32)
    boxes = dets.bbox_xyxy * scale
    kps = None if dets.kps is None else dets.kps * np.array([sx, sy], np.float32)
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return Detections(boxes, dets.scores, kps).select(side >= min_face_px)


def _picture(detector: FaceDetector, image: FrameImage, size_wh: tuple[int, int]) -> Any:
    """The detector's picture: the device path's tensor when the detector takes tensors and
    one was made (``streamer.device.path``), else BGR numpy (prepared or converted now)."""
    if detector.tensor_device is not None:
        ready = image.device_bgr(size_wh)
        if ready is not None:
            return ready
    return image.to_bgr(size_wh)


def _numpy(picture: Any) -> np.ndarray:
    return picture if isinstance(picture, np.ndarray) else picture.cpu().numpy()


def detect_frames(
    detector: FaceDetector,
    images: Sequence[FrameImage],
    settings: DetectorSettings,
    search_boxes: Sequence[np.ndarray | None] | None = None,
    timer: Timer = _untimed,
) -> list[Detections | FrameError]:
    """Faces of each picture, in its full-frame pixels.

    Args:
        detector: Any ``FaceDetector``; pictures with no search boxes go to ONE
            ``detect_batch`` call.
        images: The decoded pictures.
        settings: The ``detector`` section (``min_face_px``, region sizes, NMS threshold).
        search_boxes: Per picture, None for a full-frame pass or float32 [K, 4] frame-pixel
            boxes to search around (predicted track boxes) instead of the whole picture; with
            K = 0 the picture is neither converted nor searched.
        timer: ``timer(stage, items)`` gives a context manager timing ``convert``,
            ``detect`` (full pictures) and ``detect_roi`` (regions), e.g. ``PipelineStats.time``.

    Detectors with a ``tensor_device`` get the device path's pictures (torch uint8 BGR
    [h, w, 3] on that device) where the decode thread made them.
    """
    n = len(images)
    boxes = list(search_boxes) if search_boxes is not None else [None] * n
    out: list[Detections | FrameError | None] = [None] * n
    smalls: list[Any] = [None] * n
    with timer("convert", n):
        for i, image in enumerate(images):
            if boxes[i] is not None and len(boxes[i]) == 0:  # no tracks to look around: no faces
                out[i] = Detections.empty()
                continue
            try:
                smalls[i] = _picture(detector, image, fit_size(image.size_wh, detector.input_size_wh))
            except Exception as e:  # a broken frame is skipped, the others go on
                out[i] = FrameError("convert", e)
    full = [i for i in range(n) if out[i] is None and boxes[i] is None]
    if full:
        try:
            with timer("detect", len(full)):
                found = detector.detect_batch([smalls[i] for i in full])
        except Exception as e:  # the detector rejected this batch: its frames get no faces
            found = [FrameError("detect", e)] * len(full)
        for i, d in zip(full, found, strict=True):
            out[i] = d
    for i in range(n):
        if out[i] is None:
            small, frame_boxes = smalls[i], boxes[i]
            assert small is not None and frame_boxes is not None
            scale = np.array([small.shape[1] / images[i].size_wh[0], small.shape[0] / images[i].size_wh[1]] * 2)
            try:
                with timer("detect_roi", 1):
                    out[i] = detect_in_regions(
                        detector,
                        _numpy(small),
                        frame_boxes * scale.astype(np.float32),
                        settings.roi_expand,
                        settings.nms_threshold,
                        settings.roi_max_px,
                    )
            except Exception as e:
                out[i] = FrameError("detect", e)
    results: list[Detections | FrameError] = []
    for image, small, d in zip(images, smalls, out, strict=True):
        if isinstance(d, Detections) and small is not None:
            sx, sy = image.size_wh[0] / small.shape[1], image.size_wh[1] / small.shape[0]
            d = scale_detections(d, sx, sy, settings.min_face_px)
        assert d is not None
        results.append(d)
    return results
