"""Inference backends: each runs the ``ScoringModel`` on preprocessed pixels.

A backend is built once per engine from the eager ``ScoringModel`` and then called with
pixels [N, 3, S, S] (N <= max_batch) on the engine's device, returning float32
``(logits [N, C], features [N, F])`` as tensors on that device.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.scoring import ScoringModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendContext:
    """What a backend needs besides the model."""

    device: torch.device
    dtype: torch.dtype
    image_size: int
    max_batch: int
    cache_dir: Path
    fingerprint: str
    """Engine fingerprint; compiled artefacts are cached under it."""
    precision: str = "auto"
    """engine.precision as configured (backends that quantise read it: int8)."""


class Backend(ABC):
    """Runs the scoring network. Subclasses set ``name`` and implement ``build``/``run``."""

    name: str = "base"

    def __init__(self, model: ScoringModel, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.build(model)

    @classmethod
    def available(cls, device: torch.device) -> str | None:
        """None when usable on ``device``, else the reason why not."""
        return None

    @abstractmethod
    def build(self, model: ScoringModel) -> None:
        """Prepare the runnable form of ``model`` (compile, export, load from cache)."""

    @abstractmethod
    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels [N, 3, S, S] -> (logits [N, C], features [N, F]), float32, on ctx.device."""

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.run(pixels)


def bucket(n: int, max_batch: int) -> int:
    """Smallest power of two >= n, capped at max_batch (fixed shapes for compiled code)."""
    b = 1
    while b < n:
        b *= 2
    return min(b, max_batch) if n <= max_batch else n


def pad_batch(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Pad a batch along dim 0 with zeros up to ``size`` rows."""
    n = pixels.shape[0]
    if n == size:
        return pixels
    pad = pixels.new_zeros((size - n, *pixels.shape[1:]))
    return torch.cat([pixels, pad])
