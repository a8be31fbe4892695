"""Which process of a launch this is: torchrun's RANK / WORLD_SIZE / LOCAL_RANK, read in one place.

Training (DDP ranks), sharded embedding (one part per rank) and tracking (only rank 0 writes) all ask
here; a plain run is rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Launch:
    """The rank layout torchrun gave this process (rank 0 of 1 when run plainly)."""
    return Launch(
        rank=int(os.environ.get("RANK", "0")),
        world=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
