"""The reference's stochastic teacher targets: where dropout is on, and the seed of each draw.

The authors' training loop calls ``model.train()`` on the whole model. LAVIS overrides
``train()`` of the frozen vision encoder (``disabled_train``), so the ViT stays in eval while
the Q-Former and the Flan-T5 encoder run WITH dropout (the checkpoint configs' rates: 0.1 in
the published BLIP-2 Flan-T5 models), and the targets are computed again every epoch. Each
epoch's target is thus a fresh random draw. ``reference_dropout`` reproduces that mode, with
the global RNG forked and seeded so a draw is reproducible; ``derive_seed`` gives each batch,
sub-batch and draw its own seed.

Example:
    >>> derive_seed(1, "ab12", 0) == derive_seed(1, "ab12", 0) != derive_seed(1, "ab12", 1)
    True
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch
from torch import nn


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any mix of numbers and strings (stable across runs and machines)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@contextlib.contextmanager
def reference_dropout(parts: nn.Module, seed: int, device: torch.device) -> Iterator[None]:
    """Inside: the Q-Former and the T5 encoder in train mode (dropout on), the vision tower in
    eval as LAVIS keeps it, and the RNG seeded with ``seed``. The RNG state outside is untouched
    and ``parts`` is back in eval mode afterwards."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        parts.train()
        parts.vision_model.eval()
        try:
            yield
        finally:
            parts.eval()
