"""Face detectors, chosen by name (STYLE.md #6): ``insightface`` (SCRFD via onnxruntime) and
``haar`` (OpenCV's bundled frontal-face cascade, for machines without the models).

Detectors see a picture scaled to fit ``detector.input_size`` (``fit_size``); the pipeline
maps boxes back to full-frame pixels with ``Detections`` scaled by ``scale_detections``.

Example:
    >>> det = create_detector(DetectorSettings(name="haar"))
    >>> w, h = fit_size((1280, 720), det.input_size_wh)
    >>> dets = det.detect(frame.image.to_bgr((w, h)))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from streamer.base import Detections, FaceDetector
from streamer.config import DetectorSettings


def fit_size(frame_wh: tuple[int, int], box_wh: tuple[int, int]) -> tuple[int, int]:
    """Largest even size with the frame's aspect ratio inside ``box_wh`` (never upscales)."""
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
    keep = side >= min_face_px
    return Detections(boxes, dets.scores, kps).select(keep)


def _haar(settings: DetectorSettings) -> FaceDetector:
    from streamer.detect.haar import HaarDetector

    return HaarDetector(settings)


def _insightface(settings: DetectorSettings) -> FaceDetector:
    if settings.runtime == "torch":
        from streamer.detect.scrfd_torch import TorchScrfdDetector

        return TorchScrfdDetector(settings)
    from streamer.detect.scrfd import ScrfdDetector

    return ScrfdDetector(settings)


DETECTORS: dict[str, Callable[[DetectorSettings], FaceDetector]] = {"haar": _haar, "insightface": _insightface}


def create_detector(settings: DetectorSettings) -> FaceDetector:
    """Build the detector ``settings.name`` names."""
    try:
        factory = DETECTORS[settings.name]
    except KeyError as e:
        raise ValueError(f"unknown detector {settings.name!r}; allowed: {', '.join(DETECTORS)}") from e
    return factory(settings)


__all__ = ["DETECTORS", "create_detector", "fit_size", "scale_detections"]
