"""Face crops checked and turned into model input on the host, with numpy and Pillow (no torch).

``engine.preprocess`` does the same on torch tensors (on the engine's device); this module
is what the torch-free scorer (``engine.onnx_scorer``) runs. Both modes are those of
``engine.preprocess``:

* ``expclip``: ``Resize((S, S))`` ignoring the aspect ratio, then [0, 1], no mean/std;
* ``clip``: shortest side to S (bicubic), centre crop S x S, [0, 1], CLIP mean/std.

Crops already S x S (what the streamer cuts: ``crop_size``) are not resampled, so both paths
give the same input. Other sizes are resized by Pillow, as the reference resized its 8-bit
images; torchvision's antialiased tensor resize (the torch path) stays within a few 8-bit
levels of it (tests/engine/test_onnx_scorer.py).

Example:
    >>> spec = PreprocessSpec("expclip", 224, (0.0,) * 3, (1.0,) * 3)
    >>> host_pixels(np.full((2, 224, 224, 3), 255, np.uint8), spec).shape
    (2, 3, 224, 224)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

PreprocessMode = Literal["expclip", "clip"]


@dataclass(frozen=True)
class PreprocessSpec:
    """What the image tower expects."""

    mode: PreprocessMode
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.mode not in ("expclip", "clip"):
            raise ValueError(f"preprocess mode must be 'expclip' or 'clip', got {self.mode!r}")


def _check_crop(crop: np.ndarray, i: int) -> None:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        got = f"{type(crop).__name__} {getattr(crop, 'dtype', '')} {getattr(crop, 'shape', '')}"
        raise ValueError(f"crop {i}: expected a uint8 RGB array [H, W, 3], got {got}")
    if crop.shape[0] < 2 or crop.shape[1] < 2:
        raise ValueError(f"crop {i}: too small ({crop.shape[0]}x{crop.shape[1]})")


def crop_groups(crops: np.ndarray | Sequence[np.ndarray]) -> list[tuple[list[int], np.ndarray]]:
    """Group crops by shape so each group is one [n, H, W, 3] array."""
    if isinstance(crops, np.ndarray):
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
            raise ValueError(f"crops: expected uint8 [N, H, W, 3], got {crops.dtype} {crops.shape}")
        return [(list(range(len(crops))), crops)]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, c in enumerate(crops):
        _check_crop(c, i)
        by_shape.setdefault(c.shape, []).append(i)
    return [(idx, np.stack([crops[i] for i in idx])) for idx in by_shape.values()]


def _resized(crop: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """One uint8 crop resampled as the mode says (Pillow), S x S."""
    from PIL import Image  # only crops of another size than S x S need it

    s = spec.image_size
    img = Image.fromarray(crop)
    if spec.mode == "expclip":
        return np.asarray(img.resize((s, s), Image.Resampling.BILINEAR))
    h, w = crop.shape[:2]
    # torchvision's sizes: the long side truncated, the crop's offset rounded
    nh, nw = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
    out = np.asarray(img.resize((nw, nh), Image.Resampling.BICUBIC))
    top, left = round((nh - s) / 2.0), round((nw - s) / 2.0)
    return out[top : top + s, left : left + s]


def host_pixels(crops: np.ndarray | Sequence[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """uint8 RGB crops (one [N, H, W, 3] array or a list of [H, W, 3] of any sizes) -> float32
    model input [N, 3, S, S], in input order."""
    s = spec.image_size
    groups = crop_groups(crops)
    n = sum(len(idx) for idx, _ in groups)
    out = np.empty((n, 3, s, s), np.float32)
    for idx, arr in groups:
        if arr.shape[1:3] != (s, s):
            arr = np.stack([_resized(c, spec) for c in arr])
        x = arr.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        if spec.mode == "clip":
            mean = np.asarray(spec.mean, np.float32)[:, None, None]
            std = np.asarray(spec.std, np.float32)[:, None, None]
            x = (x - mean) / std
        out[idx] = x
    return out
