"""Eager PyTorch: fp32 on CPU, fp16 (or bf16) on CUDA."""

from __future__ import annotations

import torch

from engine.backends.base import Backend
from engine.scoring import ScoringModel


class TorchBackend(Backend):
    """The reference path: the ScoringModel run as it is."""

    name = "torch"

    def build(self, model: ScoringModel) -> None:
        self.model = model

    @torch.inference_mode()
    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(pixels.to(self.ctx.dtype))
