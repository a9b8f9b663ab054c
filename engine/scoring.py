"""The scoring network every backend runs, and the scoring maths as pure functions.

``ScoringModel`` = CLIP image tower -> float32 -> projection head -> L2-normalise ->
``logit_scale * features @ class_embeddings.T``. Backends compile or export exactly this
module, so they cannot drift from the reference maths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scores_from_features(
    features: torch.Tensor, class_embeddings: torch.Tensor, logit_scale: float | torch.Tensor
) -> torch.Tensor:
    """Logits [N, C] from normalised features [N, F] and class embeddings [C, F]."""
    return logit_scale * features @ class_embeddings.T


class ScoringModel(nn.Module):
    """pixels [N, 3, S, S] -> (logits [N, C], projected features [N, F]), both float32.

    The projected features are the head's output BEFORE L2 normalisation (the logits use the
    normalised ones): the paper's video protocol averages projected features over frames and
    normalises the mean. The tower may run in fp16/bf16; its output is cast to float32 before
    the head, as in the reference.
    """

    def __init__(
        self,
        visual: nn.Module,
        head: nn.Module | None,
        class_embeddings: torch.Tensor,
        logit_scale: float,
    ) -> None:
        super().__init__()
        self.visual = visual
        self.head = head
        self.register_buffer("class_embeddings", class_embeddings.float().clone())
        self.logit_scale = float(logit_scale)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.visual(pixels).float()
        if self.head is not None:
            f = self.head(f)
        return scores_from_features(F.normalize(f, dim=-1), self.class_embeddings, self.logit_scale), f
