"""The detector's picture made on the device from the planes: each plane scaled to the
detector's size (bilinear, antialiased, like swscale's BILINEAR downscale), then converted;
a full-size RGB frame never exists.

Example:
    >>> yuv = torch.full((1080 * 3 // 2, 1920), 128, dtype=torch.uint8)
    >>> detector_picture(Planes.from_packed("i420", yuv), (640, 360)).shape
    torch.Size([360, 640, 3])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from streamer.device.colour import Planes, yuv_to_rgb


def _scaled(plane: torch.Tensor, size_wh: tuple[int, int]) -> torch.Tensor:
    w, h = size_wh
    if tuple(plane.shape) == (h, w):
        return plane
    x = plane[None, None].float()
    y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return y[0, 0].round_().clamp_(0, 255).to(torch.uint8)


def detector_picture(planes: Planes, size_wh: tuple[int, int]) -> torch.Tensor:
    """BGR uint8 [h, w, 3] of the whole picture scaled to ``size_wh``, on the planes' device."""
    rgb = yuv_to_rgb(_scaled(planes.y, size_wh), _scaled(planes.u, size_wh), _scaled(planes.v, size_wh))
    return rgb.flip(-1).contiguous()
