"""Resizing and affine warps in torch that reproduce OpenCV's uint8 results (to a grey level),
so face crops cut on the device equal the host path's (``streamer.stages.align``).

* ``resize``: ``cv2.resize`` as ``streamer.stages.align.box_crop`` calls it (``INTER_LINEAR`` with
  11-bit weights, ``INTER_AREA`` with exact area weights, and OpenCV's "area" coordinates
  when INTER_AREA upscales an axis); separable, so two small matrix products per crop.
* ``warp_affine``: ``cv2.warpAffine`` with ``INTER_LINEAR`` and a black border: source
  positions in 1/32 pixel steps with OpenCV's 10-bit rounding, 15-bit bilinear weights.

Example:
    >>> img = torch.arange(16, dtype=torch.uint8).reshape(4, 4, 1).expand(4, 4, 3)
    >>> resize(img, 2, 2, "area")[..., 0].tolist()
    [[3, 5], [11, 13]]
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

Interp = Literal["linear", "area"]

_COEF = 2048  # INTER_RESIZE_COEF_SCALE
_INTER_BITS, _AB_BITS = 5, 10


def _linear_weights(src: int, dst: int, area_coords: bool) -> np.ndarray:
    """[dst, src] weights of cv2.resize's linear pass along one axis (11-bit fixed point)."""
    w = np.zeros((dst, src), np.float32)
    inv = dst / src
    scale = 1.0 / inv  # as OpenCV computes it (src / dst can differ in the last bit)
    for d in range(dst):
        if area_coords:
            s = math.floor(d * scale)
            f = float(np.float32((d + 1) - (s + 1) * inv))
            f = 0.0 if f <= 0 else f - math.floor(f)
        else:
            f = float(np.float32((d + 0.5) * scale - 0.5))
            s = math.floor(f)
            f -= s
        if s < 0:
            s, f = 0, 0.0
        if s >= src - 1:
            s, f = src - 1, 0.0
        a0 = round(float(np.float32(1.0 - f)) * _COEF)
        w[d, s] += a0 / _COEF
        if s + 1 < src:
            w[d, s + 1] += (_COEF - a0) / _COEF
    return w


def _area_weights(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights of cv2.resize's INTER_AREA for a downscale (computeResizeAreaTab)."""
    w = np.zeros((dst, src), np.float32)
    scale = 1.0 / (dst / src)
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        if s1 - f1 > 1e-3:
            w[d, s1 - 1] += (s1 - f1) / cell
        for s in range(s1, s2):
            w[d, s] += 1.0 / cell
        if f2 - s2 > 1e-3:
            w[d, s2] += min(min(f2 - s2, 1.0), cell) / cell
    return w


def resize_weights(src_wh: tuple[int, int], dst_wh: tuple[int, int], interp: Interp) -> tuple[np.ndarray, np.ndarray]:
    """(wx [dst_w, src_w], wy [dst_h, src_h]) of ``cv2.resize(src, dst_wh, interp)``."""
    (sw, sh), (dw, dh) = src_wh, dst_wh
    if interp == "area" and sw >= dw and sh >= dh:
        return _area_weights(sw, dw), _area_weights(sh, dh)
    area_coords = interp == "area"
    return _linear_weights(sw, dw, area_coords), _linear_weights(sh, dh, area_coords)


def resize(img: torch.Tensor, width: int, height: int, interp: Interp) -> torch.Tensor:
    """uint8 [H, W, C] -> uint8 [height, width, C], as ``cv2.resize`` would."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    wx, wy = resize_weights((w, h), (width, height), interp)
    dev = img.device
    x = img.permute(2, 0, 1).float()  # [C, H, W]
    out = torch.from_numpy(wy).to(dev) @ x @ torch.from_numpy(wx).to(dev).T
    return (out + 0.5).floor_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)  # OpenCV rounds half up


def _invert_affine(m: np.ndarray) -> np.ndarray:
    """cv2.invertAffineTransform, in the same order of operations."""
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22, a12, a21 = m[1, 1] * d, m[0, 0] * d, -m[0, 1] * d, -m[1, 0] * d
    b1 = -a11 * m[0, 2] - a12 * m[1, 2]
    b2 = -a21 * m[0, 2] - a22 * m[1, 2]
    return np.array([[a11, a12, b1], [a21, a22, b2]], np.float64)


def warp_affine(img: torch.Tensor, m: np.ndarray, size: int) -> torch.Tensor:
    """``cv2.warpAffine(img, m, (size, size), flags=INTER_LINEAR, borderValue=0)`` for uint8
    [H, W, C] ``img``; ``m`` maps source pixels to destination pixels (2x3)."""
    dev = img.device
    h, w, c = img.shape
    im = _invert_affine(np.asarray(m, np.float64))
    scale = 1 << _AB_BITS
    rnd = scale // (1 << _INTER_BITS) // 2
    idx = torch.arange(size, device=dev, dtype=torch.float64)
    # OpenCV rounds each term to 1/1024 pixel (cvRound: half to even), then shifts to 1/32.
    adelta = torch.round(im[0, 0] * idx * scale).long()
    bdelta = torch.round(im[1, 0] * idx * scale).long()
    x0 = torch.round((im[0, 1] * idx + im[0, 2]) * scale).long() + rnd
    y0 = torch.round((im[1, 1] * idx + im[1, 2]) * scale).long() + rnd
    shift = _AB_BITS - _INTER_BITS
    fx_all = (x0[:, None] + adelta[None, :]) >> shift  # [rows (dst y), cols (dst x)]
    fy_all = (y0[:, None] + bdelta[None, :]) >> shift
    ix, iy = fx_all >> _INTER_BITS, fy_all >> _INTER_BITS
    ax, ay = fx_all & 31, fy_all & 31
    flat = img.reshape(h * w, c).to(torch.int32)
    acc = torch.zeros((size, size, c), dtype=torch.int32, device=dev)
    for dy, wy in ((0, 32 - ay), (1, ay)):
        for dx, wx in ((0, 32 - ax), (1, ax)):
            sx, sy = ix + dx, iy + dy
            inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
            pix = flat[(sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1)).reshape(-1)].reshape(size, size, c)
            acc += pix * (wy * wx * 32 * inside).to(torch.int32)[..., None]
    return ((acc + (1 << 14)) >> 15).clamp_(0, 255).to(torch.uint8)
