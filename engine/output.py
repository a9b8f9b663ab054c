"""What ``ExpressionEngine.score`` returns.

Logits, probabilities and labels are small and always on the host. The projected features
(the head's output, [N, 4096] with a head) stay a tensor on the engine's device until a
consumer asks for them: the streamer's ``window`` smoother does, the ``ema`` one does not.

Example:
    >>> import numpy as np, torch
    >>> out = EngineOutput.from_tensors(torch.tensor([[2.0, 0.0]]), torch.tensor([[3.0, 4.0]]), ["a", "b"])
    >>> out.labels, out.feature_norms.tolist(), out.features.tolist()
    (['a'], [5.0], [[0.6000000238418579, 0.800000011920929]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class EngineOutput:
    """Scores of N crops against C classes."""

    logits: np.ndarray
    """float32 [N, C]: ``logit_scale * normalised feature @ class_embedding``."""
    probs: np.ndarray
    """float32 [N, C]: softmax of the logits."""
    labels: list[str]
    """Top class of each crop."""
    projected: torch.Tensor | np.ndarray
    """float32 [N, F]: the head's output BEFORE L2 normalisation, on the engine's device (what
    the paper's video protocol averages over frames before normalising); a numpy array from
    the torch-free scorer (``engine.onnx_scorer``)."""

    def __post_init__(self) -> None:
        n = self.logits.shape[0]
        if self.logits.ndim != 2 or self.probs.shape != self.logits.shape:
            raise ValueError(f"logits {self.logits.shape} and probs {self.probs.shape} must both be [N, C]")
        if len(self.labels) != n or self.projected.ndim != 2 or self.projected.shape[0] != n:
            raise ValueError(
                f"expected {n} labels and projected features [N, F], got {len(self.labels)} and "
                f"{tuple(self.projected.shape)}"
            )

    @classmethod
    def from_tensors(cls, logits: torch.Tensor, projected: torch.Tensor, classes: Sequence[str]) -> EngineOutput:
        """Softmax and labels from device tensors; only [N, C] values are copied to the host."""
        import torch  # the caller holds torch tensors: torch is loaded

        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        logits_np = logits.float().cpu().numpy()
        labels = [classes[i] for i in logits_np.argmax(axis=1)] if len(logits_np) else []
        return cls(logits_np, probs, labels, projected)

    @classmethod
    def from_arrays(cls, logits: np.ndarray, projected: np.ndarray, classes: Sequence[str]) -> EngineOutput:
        """The same from host arrays (float32 softmax, as ``from_tensors`` computes it)."""
        logits = np.asarray(logits, np.float32)
        shifted = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
        e = np.exp(shifted)
        probs = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        labels = [classes[i] for i in logits.argmax(axis=1)] if len(logits) else []
        return cls(logits, probs, labels, projected)

    def __len__(self) -> int:
        return self.logits.shape[0]

    @cached_property
    def _projected_host(self) -> np.ndarray:
        p: Any = self.projected
        return p.astype(np.float32, copy=False) if isinstance(p, np.ndarray) else p.float().cpu().numpy()

    def projected_features(self) -> np.ndarray:
        """float32 [N, F] on the host: the head's output before normalisation (copied once)."""
        return self._projected_host

    @cached_property
    def feature_norms(self) -> np.ndarray:
        """float32 [N]: L2 norm of each projected feature."""
        return np.linalg.norm(self._projected_host, axis=1).astype(np.float32)

    @cached_property
    def features(self) -> np.ndarray:
        """float32 [N, F]: projected, L2-normalised features on the host."""
        return self._projected_host / np.maximum(self.feature_norms, 1e-12)[:, None]

    @property
    def scores(self) -> np.ndarray:
        """Probability of each crop's top label, float32 [N]."""
        return self.probs.max(axis=1) if len(self) else np.zeros(0, np.float32)
