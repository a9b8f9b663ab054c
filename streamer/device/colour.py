"""YUV 4:2:0 -> RGB in torch, bit-exact with OpenCV's ``COLOR_YUV2RGB_I420`` (the host path's
conversion, ``streamer.frames.FrameImage.region_rgb``): BT.601 limited range, 20-bit fixed
point, nearest chroma (each 2x2 block shares its U and V sample).

Only the pixels a stage needs are converted: a face region (``region_rgb``), or a whole
picture already scaled down (``streamer.device.picture``).

Example:
    >>> yuv = torch.full((6, 4), 128, dtype=torch.uint8)      # I420, 4x4, mid grey
    >>> region_rgb(Planes.from_packed("i420", yuv), 0, 0, 4, 4)[0, 0].tolist()
    [130, 130, 130]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# OpenCV's ITU-R BT.601 constants (imgproc/src/color_yuv.simd.hpp), scaled by 2^20.
_SHIFT = 20
_CY, _CUB, _CUG, _CVG, _CVR = 1220542, 2116026, -409993, -852492, 1673527


@dataclass(frozen=True)
class Planes:
    """One 4:2:0 picture as three uint8 planes on one device (views, no copies)."""

    y: torch.Tensor
    """[H, W]."""
    u: torch.Tensor
    """[H / 2, W / 2]."""
    v: torch.Tensor
    """[H / 2, W / 2]."""
    fmt: str = "i420"
    """The decoder's layout they came from: ``i420`` (yuv420p, yuvj420p) or ``nv12``."""

    def __post_init__(self) -> None:
        h, w = self.y.shape
        for name, p in (("u", self.u), ("v", self.v)):
            if tuple(p.shape) != (h // 2, w // 2) or p.dtype != torch.uint8:
                raise ValueError(f"Planes.{name}: expected uint8 [{h // 2}, {w // 2}], got {p.dtype} {tuple(p.shape)}")

    @property
    def size_wh(self) -> tuple[int, int]:
        return int(self.y.shape[1]), int(self.y.shape[0])

    @classmethod
    def from_packed(cls, fmt: str, packed: torch.Tensor) -> Planes:
        """Split a decoder's packed picture, uint8 [H * 3/2, W]: ``i420`` (Y, U, V planes) or
        ``nv12`` (Y, then U and V interleaved)."""
        rows, w = packed.shape
        h = rows * 2 // 3
        y = packed[:h]
        if fmt == "nv12":
            uv = packed[h:].reshape(h // 2, w // 2, 2)
            return cls(y, uv[..., 0], uv[..., 1], fmt)
        if fmt != "i420":
            raise ValueError(f"unknown packed format {fmt!r}; allowed: i420, nv12")
        chroma = packed[h:].reshape(-1)
        n = (h // 2) * (w // 2)
        return cls(y, chroma[:n].view(h // 2, w // 2), chroma[n : 2 * n].view(h // 2, w // 2), fmt)


def yuv_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-pixel Y, U, V (uint8, same shape) -> RGB uint8 [..., 3], OpenCV's fixed point."""
    yy = (y.to(torch.int32) - 16).clamp_(min=0) * _CY
    uu = u.to(torch.int32) - 128
    vv = v.to(torch.int32) - 128
    half = 1 << (_SHIFT - 1)
    r = (yy + _CVR * vv + half) >> _SHIFT
    g = (yy + _CVG * vv + _CUG * uu + half) >> _SHIFT
    b = (yy + _CUB * uu + half) >> _SHIFT
    return torch.stack([r, g, b], dim=-1).clamp_(0, 255).to(torch.uint8)


def region_rgb(planes: Planes, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    """RGB uint8 [y1 - y0, x1 - x0, 3] of the box, chroma taken nearest (any box parity)."""
    dev = planes.y.device
    ys = torch.arange(y0, y1, device=dev) // 2
    xs = torch.arange(x0, x1, device=dev) // 2
    u = planes.u.index_select(0, ys).index_select(1, xs)
    v = planes.v.index_select(0, ys).index_select(1, xs)
    return yuv_to_rgb(planes.y[y0:y1, x0:x1], u, v)
