"""``trainer bench-fit``: time the head fit on synthetic stored pairs.

The pairs are random (seeded), so the numbers measure cost, not learning: the fit's cost
depends only on N, D, T, batch and epochs, because the frozen encoders ran once at
extraction instead of every epoch as in the reference loop.

Example:
    >>> r = bench_fit(FitSettings(epochs=1, batch_size=64, device="cpu"), pairs=256, dim=32, out_dim=64)
    >>> r["pairs"], len(r["seconds_per_epoch"])
    (256, 1)
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch
import torch.nn.functional as F

from configs.trainer import FitSettings
from trainer.fit import fit_head


def synthetic_pairs(pairs: int, dim: int, out_dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random CLIP-like features [N, D] and unit teacher features [N, T]."""
    gen = torch.Generator().manual_seed(seed)
    clip = torch.randn(pairs, dim, generator=gen)
    teacher = F.normalize(torch.randn(pairs, out_dim, generator=gen), dim=-1)
    return clip, teacher


def bench_fit(
    settings: FitSettings,
    pairs: int = 50_000,
    dim: int = 768,
    out_dim: int = 4096,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fit a head on synthetic pairs with ``settings`` (epochs, batch, device) and report the timing."""
    if threads:
        torch.set_num_threads(threads)
    clip, teacher = synthetic_pairs(pairs, dim, out_dim)
    result = fit_head(clip, teacher, settings, logit_scale=100.0)
    dev = str(result.head.mlp.weight.device)
    name = (
        torch.cuda.get_device_name(result.head.mlp.weight.device)
        if dev.startswith("cuda")
        else platform.processor() or "cpu"
    )
    return {
        "pairs": pairs,
        "dim": dim,
        "out_dim": out_dim,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "device": dev,
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "seconds": result.seconds,
        "seconds_per_epoch": [round(h.seconds, 3) for h in result.history],
        "pairs_per_s": pairs * settings.epochs / result.seconds if result.seconds else 0.0,
        "final_loss": result.history[-1].loss,
    }
