"""Face crops cut on the device from the planes, equal to the host path's
(``streamer.stages.align.crop_faces``) within a grey level: the same boxes and transforms, the
region converted with OpenCV's integer maths (``colour``) and resampled as OpenCV does
(``resample``).

Example:
    >>> yuv = torch.full((360 * 3 // 2, 640), 128, dtype=torch.uint8)
    >>> planes = Planes.from_packed("i420", yuv)
    >>> crop_faces_on(planes, np.array([[40, 30, 90, 100]], np.float32), None, 64).shape
    torch.Size([1, 64, 64, 3])
"""

from __future__ import annotations

import numpy as np
import torch

from streamer.device.colour import Planes, region_rgb
from streamer.device.resample import resize, warp_affine
from streamer.stages.align import _clip, similarity_transform, source_box, square_box


def _region(planes: Planes, box: tuple[int, int, int, int]) -> tuple[torch.Tensor, int, int]:
    """RGB of the clipped box as the host path cuts it (I420 boxes widened to even
    coordinates), with the region's top-left corner."""
    w, h = planes.size_wh
    x0, y0, x1, y1 = box
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"empty region ({x0}, {y0}, {x1}, {y1}) in a {w}x{h} picture")
    if planes.fmt == "i420":
        x0, y0 = x0 & ~1, y0 & ~1
        x1, y1 = min(w, (x1 + 1) & ~1), min(h, (y1 + 1) & ~1)
    return region_rgb(planes, x0, y0, x1, y1), x0, y0


def aligned_crop_on(planes: Planes, kps: np.ndarray, size: int) -> torch.Tensor:
    """``streamer.stages.align.aligned_crop`` on the device."""
    m = similarity_transform(kps, size)
    region, rx0, ry0 = _region(planes, _clip(source_box(m, size), planes.size_wh))
    m_region = m.copy()
    m_region[:, 2] += m[:, :2] @ np.array([rx0, ry0], np.float64)
    return warp_affine(region, m_region, size)


def box_crop_on(planes: Planes, bbox_xyxy: np.ndarray, size: int, expand: float) -> torch.Tensor:
    """``streamer.stages.align.box_crop`` on the device."""
    region, _, _ = _region(planes, _clip(square_box(bbox_xyxy, expand), planes.size_wh))
    interp = "area" if region.shape[0] > size else "linear"
    return resize(region, size, size, interp)


def crop_faces_on(
    planes: Planes,
    bbox_xyxy: np.ndarray,
    kps: np.ndarray | None,
    size: int,
    align: str = "auto",
    expand: float = 1.25,
) -> torch.Tensor:
    """All faces of one frame, uint8 RGB [N, size, size, 3] on the planes' device
    (``streamer.stages.align.crop_faces``'s arguments and choices)."""
    n = len(bbox_xyxy)
    use_kps = kps is not None and align == "auto"
    out = torch.empty((n, size, size, 3), dtype=torch.uint8, device=planes.y.device)
    for i in range(n):
        if use_kps:
            assert kps is not None
            out[i] = aligned_crop_on(planes, kps[i], size)
        else:
            out[i] = box_crop_on(planes, bbox_xyxy[i], size, expand)
    return out
