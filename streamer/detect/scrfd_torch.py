"""SCRFD in torch: the network converted from insightface's ONNX with onnx2torch, batched
across streams, decoded (anchors, distance-to-box, keypoints, NMS) on the same device.

This is the GPU path: the GPU machines this targets have an onnxruntime without the CUDA
provider, and one batched call per tick serves every stream. Decoding follows insightface's
SCRFD exactly (docs/design.md): anchor row r of stride s -> cell ``divmod(r // A, W // s)``,
centre ``(x * s, y * s)``; box ``centre -/+ d * s``; keypoint ``centre + k * s``; all divided
by the letterbox scale; score threshold, then NMS per picture.

Example (plain text)::

    det = TorchScrfdDetector(DetectorSettings(runtime="torch", model="buffalo_l"))
    per_stream = det.detect_batch([small_bgr_cam0, small_bgr_cam1])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
import torchvision

from configs.core.errors import ModelError
from configs.streamer import DetectorSettings
from streamer.base import FaceDetector
from streamer.detect.runtime import onnx_to_torch, torch_device
from streamer.detect.scrfd import load_scrfd, local_onnx
from streamer.values import Detections

log = logging.getLogger(__name__)

STRIDES_BY_OUTPUTS = {6: ((8, 16, 32), False), 9: ((8, 16, 32), True), 10: ((8, 16, 32, 64, 128), False)}
STRIDES_BY_OUTPUTS[15] = ((8, 16, 32, 64, 128), True)


def onnx_path_for(settings: DetectorSettings) -> Path:
    """The SCRFD .onnx file: ``detector.model`` itself, or the pack's detection model
    (insightface downloads the pack on first use)."""
    path = local_onnx(settings)
    if path is not None:
        return path
    cpu = settings.model_copy(update={"device": "cpu"})
    return Path(load_scrfd(cpu).model_file)


class TorchScrfdDetector(FaceDetector):
    """SCRFD faces with 5 keypoints, run by torch in batches."""

    name = "insightface"

    def __init__(self, settings: DetectorSettings, onnx_path: str | Path | None = None) -> None:
        convert = onnx_to_torch()
        self.settings = settings
        self.device = torch_device(settings.device)
        self.tensor_device = str(self.device)
        """``detect_batch`` also takes torch uint8 BGR pictures already on ``self.device``
        (the device frame path's), letterboxed there without a trip through host memory."""
        path = Path(onnx_path) if onnx_path else onnx_path_for(settings)
        graph = onnx.load(str(path))
        n_out = len(graph.graph.output)
        if n_out not in STRIDES_BY_OUTPUTS:
            raise ModelError(f"{path}: {n_out} outputs; an SCRFD model has 6, 9, 10 or 15")
        self.strides, self.use_kps = STRIDES_BY_OUTPUTS[n_out]
        self.fmc = len(self.strides)
        self.anchors = 2 if self.fmc == 3 else 1
        self.net = convert(graph).eval().requires_grad_(False).to(self.device)
        size = settings.input_size
        self.input_size_wh = (size, size)
        self._centres: dict[tuple[int, int, int], torch.Tensor] = {}
        log.info("SCRFD (torch, %s) %s, input %dx%d", self.device, path.name, size, size)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_batch([image_bgr])[0]

    @torch.inference_mode()
    def detect_batch(self, images_bgr: Sequence[np.ndarray | torch.Tensor]) -> list[Detections]:
        if not images_bgr:
            return []
        blob, scales = self._letterbox(images_bgr)
        x = blob if isinstance(blob, torch.Tensor) else torch.from_numpy(blob).to(self.device)
        x = (x.permute(0, 3, 1, 2).flip(1).float() - 127.5) / 128.0  # BGR -> RGB, as blobFromImage
        outs = self.net(x)
        outs = list(outs) if isinstance(outs, list | tuple) else [outs]
        return self._decode(outs, len(images_bgr), x.shape[2], x.shape[3], scales)

    def _letterbox(self, images: Sequence[np.ndarray | torch.Tensor]) -> tuple[np.ndarray | torch.Tensor, list[float]]:
        """Each picture scaled to fit the square input (aspect kept), top-left, zero padded;
        on the device when any picture is a tensor already there."""
        w, h = self.input_size_wh
        on_device = any(isinstance(img, torch.Tensor) for img in images)
        blob: np.ndarray | torch.Tensor
        if on_device:
            blob = torch.zeros((len(images), h, w, 3), dtype=torch.uint8, device=self.device)
        else:
            blob = np.zeros((len(images), h, w, 3), np.uint8)
        scales = []
        for i, img in enumerate(images):
            # insightface's SCRFD.detect letterbox, to the pixel
            im_ratio = img.shape[0] / img.shape[1]
            if im_ratio > h / w:
                nh, nw = h, int(h / im_ratio)
            else:
                nw, nh = w, int(w * im_ratio)
            nw, nh = max(1, nw), max(1, nh)
            if on_device:
                blob[i, :nh, :nw] = _resized_tensor(img, nw, nh, self.device)
            else:
                blob[i, :nh, :nw] = img if (nw, nh) == (img.shape[1], img.shape[0]) else cv2.resize(img, (nw, nh))
            scales.append(nh / img.shape[0])
        return blob, scales

    def _centres_for(self, stride: int, h: int, w: int) -> torch.Tensor:
        key = (stride, h, w)
        if key not in self._centres:
            ys, xs = torch.meshgrid(torch.arange(h // stride), torch.arange(w // stride), indexing="ij")
            c = torch.stack([xs, ys], dim=-1).reshape(-1, 2).float() * stride
            self._centres[key] = c.repeat_interleave(self.anchors, dim=0).to(self.device)
        return self._centres[key]

    def _per_image(self, t: torch.Tensor, batch: int, rows: int) -> torch.Tensor:
        """[B, n, k], [B * n, k] or (batch 1) [n, k] -> [B, n, k]."""
        if t.ndim == 3:
            return t
        if t.shape[0] == batch * rows:
            return t.reshape(batch, rows, -1)
        raise ValueError(f"SCRFD output of shape {tuple(t.shape)} does not hold {batch} picture(s) of {rows} anchors")

    def _decode(self, outs: list[torch.Tensor], batch: int, h: int, w: int, scales: list[float]) -> list[Detections]:
        boxes, scores, kps, owner = [], [], [], []
        for i, s in enumerate(self.strides):
            centres = self._centres_for(s, h, w)
            rows = centres.shape[0]
            sc = self._per_image(outs[i], batch, rows)[..., 0].float()
            bb = self._per_image(outs[i + self.fmc], batch, rows).float() * s
            keep = sc >= self.settings.score_threshold  # [B, n]
            b_idx, a_idx = keep.nonzero(as_tuple=True)
            c = centres[a_idx]
            d = bb[b_idx, a_idx]
            boxes.append(torch.cat([c - d[:, :2], c + d[:, 2:]], dim=1))
            scores.append(sc[b_idx, a_idx])
            owner.append(b_idx)
            if self.use_kps:
                k = self._per_image(outs[i + 2 * self.fmc], batch, rows).float()[b_idx, a_idx] * s
                kps.append(c[:, None, :] + k.reshape(-1, 5, 2))
        all_boxes, all_scores, all_owner = torch.cat(boxes), torch.cat(scores), torch.cat(owner)
        all_kps = torch.cat(kps) if self.use_kps else None
        keep = torchvision.ops.batched_nms(all_boxes, all_scores, all_owner, self.settings.nms_threshold)
        results = []
        for b in range(batch):
            sel = keep[all_owner[keep] == b]
            inv = 1.0 / scales[b]
            bx = (all_boxes[sel] * inv).cpu().numpy().astype(np.float32)
            kp = None if all_kps is None else (all_kps[sel] * inv).cpu().numpy().astype(np.float32)
            results.append(Detections(bx, all_scores[sel].cpu().numpy().astype(np.float32), kp))
        return results


def _resized_tensor(img: np.ndarray | torch.Tensor, w: int, h: int, device: torch.device) -> torch.Tensor:
    """uint8 [H, W, 3] on ``device`` at (w, h) (bilinear, as cv2.resize's default)."""
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    t = t.to(device)
    if tuple(t.shape[:2]) == (h, w):
        return t
    x = t.permute(2, 0, 1)[None].float()
    y = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return y[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)
