"""torch.compile of the ScoringModel.

Batches are padded to power-of-two buckets so each bucket compiles once. On CUDA the mode
is ``reduce-overhead`` (CUDA graphs: 1.42 ms vs 7.5 ms eager at batch 1 for ViT-L/14 on an
H200, docs/BENCHMARKS.md); on CPU the default inductor mode.
"""

from __future__ import annotations

import logging

import torch

from engine.backends.base import Backend, bucket, pad_batch
from engine.scoring import ScoringModel

log = logging.getLogger(__name__)


class CompileBackend(Backend):
    name = "compile"

    @classmethod
    def available(cls, device: torch.device) -> str | None:
        if not hasattr(torch, "compile"):
            return "torch.compile needs torch >= 2.0"
        return None

    def build(self, model: ScoringModel) -> None:
        mode = "reduce-overhead" if self.ctx.device.type == "cuda" else None
        self.model = model
        self.compiled = torch.compile(model, mode=mode, dynamic=False, fullgraph=False)

    @torch.inference_mode()
    def run(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = pixels.shape[0]
        padded = pad_batch(pixels.to(self.ctx.dtype), bucket(n, self.ctx.max_batch))
        logits, feats = self.compiled(padded)
        # CUDA graphs reuse their output buffers: copy before the next call overwrites them.
        return logits[:n].clone(), feats[:n].clone()
