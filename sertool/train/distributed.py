"""Running the same training command under `torchrun`: DDP when WORLD_SIZE > 1, nothing otherwise.

Which rank this is comes from `sertool.launch`. gloo on CPU, nccl on cuda. Rank 0 alone evaluates and
writes (the tracker hands the other ranks a logger that logs nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import launch


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


def init(device: str) -> DistInfo:
    """Join the process group if torchrun started several processes."""
    info = launch.from_env()
    if not info.distributed:
        return DistInfo()
    import torch.distributed as dist

    if dist.is_initialized():
        return DistInfo(info.rank, info.world, info.local_rank)
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
