"""insightface SCRFD through onnxruntime: boxes, scores and 5 keypoints per face.

``detector.model`` names a pack (``buffalo_l``, ``buffalo_s``: its detection model,
downloaded by insightface on first use into ``<root>/models/<pack>/``) or a local SCRFD
``.onnx`` loaded with ``insightface.model_zoo.get_model``. The picture handed to ``detect``
is already scaled to fit ``input_size`` by the pipeline, so SCRFD's own letterbox is
(almost) the identity and no full-resolution conversion is ever made.

Example (plain text)::

    det = ScrfdDetector(DetectorSettings(model="buffalo_s", input_size=640))
    dets = det.detect(small_bgr)     # dets.kps: float32 [N, 5, 2]
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np

from configs.core.errors import MissingDependency, ModelError
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.detect.runtime import onnx_providers
from streamer.values import Detections

log = logging.getLogger(__name__)


def local_onnx(settings: DetectorSettings) -> Path | None:
    """The SCRFD .onnx file ``detector.model`` names, or None when it names a pack."""
    if not settings.model.endswith(".onnx"):
        return None
    path = Path(settings.model).expanduser()
    if not path.is_file():
        raise ModelError(f"detector.model: no SCRFD ONNX file at {path}")
    return path


DOWNLOAD_HOST = "github.com"
"""Where insightface downloads its packs from (its GitHub releases)."""


def reachable(host: str, timeout_s: float) -> bool:
    """Whether ``host``:443 accepts a TCP connection within ``timeout_s`` (name lookup
    included: it runs on a thread that is abandoned when late)."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, name="scrfd-probe", daemon=True)
    t.start()
    t.join(timeout_s)
    return bool(ok)


def scrfd_source(settings: DetectorSettings, timeout_s: float = 1.5) -> tuple[str | None, str]:
    """Where SCRFD's weights would come from for ``detector.name=auto``: ``"local"`` (a local
    .onnx, or the pack's folder holds its .onnx files), ``"download"`` (insightface will fetch
    the pack: its host answered within ``timeout_s``; 0 = do not ask), or None; and why, for
    the log.

    A ``detector.model`` .onnx that does not exist is an error (``ModelError``), not a reason
    to fall back: the configuration names a file.
    """
    import importlib.util

    if importlib.util.find_spec("insightface") is None:
        return None, "insightface is not installed"
    path = local_onnx(settings)
    if path is not None:
        return "local", f"detector.model is {path}"
    folder = Path(settings.root).expanduser() / "models" / settings.model
    if any(folder.glob("*.onnx")):
        return "local", f"pack {settings.model} is in {folder}"
    missing = f"pack {settings.model} is not in {folder}"
    if timeout_s <= 0:
        return None, f"{missing} (no download tried)"
    if reachable(DOWNLOAD_HOST, timeout_s):
        return "download", f"{missing}; {DOWNLOAD_HOST} answers, insightface downloads it"
    return None, f"{missing} and {DOWNLOAD_HOST} did not answer within {timeout_s:g} s"


def load_scrfd(settings: DetectorSettings) -> Any:
    """The insightface SCRFD model object ``settings.model`` names."""
    try:
        from insightface.app import FaceAnalysis
        from insightface.model_zoo import get_model
    except ImportError as e:
        raise MissingDependency(
            "detector.name=insightface needs the 'insightface' package: pip install insightface"
        ) from e
    providers = onnx_providers(settings.device, "SCRFD")
    path = local_onnx(settings)
    if path is not None:
        model = get_model(str(path), providers=providers)
        if model is None or getattr(model, "taskname", None) != "detection":
            raise ModelError(f"detector.model: {path} is not an SCRFD detection model for insightface")
        return model
    root = Path(settings.root).expanduser()
    try:
        app = FaceAnalysis(name=settings.model, root=str(root), allowed_modules=["detection"], providers=providers)
    except Exception as e:  # insightface raises bare errors (ConnectionError, AssertionError, ...)
        raise ModelError(
            f"cannot load insightface pack {settings.model!r}: {e}. Without network, place the pack's "
            f"detection .onnx in {root / 'models' / settings.model}/ or set detector.model to a local "
            "SCRFD .onnx, or use detector.name=retinaface (no download)"
        ) from e
    return app.models["detection"]


class ScrfdDetector(FaceDetector):
    """SCRFD faces with 5 keypoints (eyes, nose, mouth corners)."""

    name = "insightface"

    def __init__(self, settings: DetectorSettings, model: Any = None) -> None:
        self.settings = settings
        self.model = model if model is not None else load_scrfd(settings)
        size = settings.input_size
        static = getattr(self.model, "static_input_size", None)
        self.input_size_wh = tuple(static) if static else (size, size)
        self.model.prepare(
            -1 if onnx_providers(settings.device, "SCRFD")[0] == "CPUExecutionProvider" else 0,
            input_size=self.input_size_wh,
            det_thresh=settings.score_threshold,
            nms_thresh=settings.nms_threshold,
        )
        log.info("SCRFD detector %s, input %dx%d", settings.model, *self.input_size_wh)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        det, kps = self.model.detect(image_bgr, input_size=self.input_size_wh)
        if det is None or len(det) == 0:
            return Detections.empty(with_kps=True)
        det = np.asarray(det, np.float32)
        kps_arr = None if kps is None else np.asarray(kps, np.float32).reshape(-1, 5, 2)
        return Detections(np.ascontiguousarray(det[:, :4]), np.ascontiguousarray(det[:, 4]), kps_arr)
