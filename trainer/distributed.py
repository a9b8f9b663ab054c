"""torchrun support: rank, world size and the device of this process.

Example (plain text)::

    ctx = init_distributed("auto")    # under `torchrun --nproc-per-node 4 ...`
    ctx.rank, ctx.world, ctx.device
    # -> (2, 4, device(type='cuda', index=2))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistContext:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; pick this rank's device.

    Single process: rank 0 of 1 on ``device`` (auto = cuda when available).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world <= 1:
        if device == "auto":
            return DistContext(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        return DistContext(0, 1, torch.device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(rank, world, torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu"))
