"""Running the same training command under `torchrun`: DDP when WORLD_SIZE > 1, nothing otherwise.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; we only read them. gloo on
CPU, nccl on cuda. Rank 0 does everything that writes (MLflow, checkpoints) and evaluates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_here: bool = False
    """True when this process initialised the process group (so it also tears it down)."""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """The rank layout torchrun gave this process (rank 0 of 1 when run plainly)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return DistInfo(rank=rank, world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init(device: str) -> DistInfo:
    """Join the process group if torchrun started several processes."""
    info = from_env()
    if not info.enabled:
        return info
    import torch.distributed as dist

    if dist.is_initialized():
        return info
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        import torch

        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(info.rank, info.world, info.local_rank, started_here=True)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(info: DistInfo, values: list[float]) -> list[float]:
    """Sum figures (losses, sample counts) over ranks so rank 0 logs the whole step's numbers."""
    if not info.enabled:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def shutdown(info: DistInfo) -> None:
    if info.started_here:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
