"""Face detectors, chosen by name: ``insightface`` (SCRFD, through onnxruntime or torch) and
``haar`` (OpenCV's bundled frontal-face cascade, for machines without the models).

``detect_frames`` (``streamer.detect.frames``) is how frames meet a detector: scaled to fit
``detector.input_size``, detected (batched), mapped back to frame pixels.

Example:
    >>> det = create_detector(DetectorSettings(name="haar"))
    >>> det.input_size_wh
    (640, 640)
"""

from __future__ import annotations

from collections.abc import Callable

from configs.core.errors import ConfigError
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.detect.frames import FrameError, detect_frames, fit_size, scale_detections


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
        raise ConfigError(f"detector.name: unknown detector {settings.name!r}; allowed: {', '.join(DETECTORS)}") from e
    return factory(settings)


__all__ = ["DETECTORS", "FrameError", "create_detector", "detect_frames", "fit_size", "scale_detections"]
