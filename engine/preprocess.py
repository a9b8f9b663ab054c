"""Batched preprocessing of uint8 RGB face crops on the engine's device.

Two modes:

* ``expclip`` — the reference: ``Resize((S, S))`` ignoring the aspect ratio, then
  ``ToTensor()`` (RGB in [0, 1]) with NO mean/std normalisation. The released heads were
  trained and evaluated this way. The reference resized 8-bit PIL images, so the result is
  rounded back to 8-bit levels before scaling, as ``ToTensor`` of a PIL image would see it.
* ``clip`` — open_clip's standard transform: shortest side to S (bicubic), centre crop
  S x S, [0, 1], CLIP mean/std normalisation.

Resizing uses antialiased interpolation on tensors (torchvision), which differs from PIL's
resampling by at most a few 8-bit levels on natural images (docs/engine.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from engine.crops import PreprocessSpec, crop_groups


def _transform(x: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """[n, 3, H, W] float in 0..255 -> model input [n, 3, S, S]."""
    s = spec.image_size
    if spec.mode == "expclip":
        if x.shape[-2:] != (s, s):
            x = TF.resize(x, [s, s], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
            x = x.round_().clamp_(0, 255)
        return x / 255.0
    x = TF.resize(x, s, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    x = x.round_().clamp_(0, 255)
    x = TF.center_crop(x, [s, s])
    return TF.normalize(x / 255.0, list(spec.mean), list(spec.std))


def preprocess(
    crops: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    spec: PreprocessSpec,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 RGB crops (one [N, H, W, 3] array or tensor — a tensor may already be on
    ``device``: the streamer's device frame path — or a list of [H, W, 3] of any sizes) ->
    model input [N, 3, S, S] on ``device`` in ``dtype``, in input order.

    Example:
        >>> spec = PreprocessSpec("expclip", 224, (0.0,) * 3, (1.0,) * 3)
        >>> preprocess(np.zeros((2, 112, 112, 3), np.uint8), spec).shape
        torch.Size([2, 3, 224, 224])
    """
    if isinstance(crops, torch.Tensor):
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != torch.uint8:
            raise ValueError(f"crops: expected uint8 [N, H, W, 3], got {crops.dtype} {tuple(crops.shape)}")
        x = crops.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        return _transform(x, spec).to(dtype)
    groups = crop_groups(crops)
    n = sum(len(idx) for idx, _ in groups)
    s = spec.image_size
    out = torch.empty((n, 3, s, s), device=device, dtype=dtype)
    for idx, arr in groups:
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:  # torch.from_numpy warns on read-only buffers
            arr = arr.copy()
        x = torch.from_numpy(arr).to(device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float()
        y = _transform(x, spec).to(dtype)
        if len(idx) == n:
            out.copy_(y)
        else:
            out[torch.as_tensor(idx, device=device)] = y
    return out
