"""The paper's learning-rate schedule: linear warm-up, then cosine annealing down to a floor.

Stepped once per optimisation step (not per epoch) so that short runs, where an epoch is a handful of
steps, still follow the curve; warm-up is given in epochs and may be fractional.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def warmup_cosine(
    optimizer: "torch.optim.Optimizer",
    *,
    steps_per_epoch: "int | Sequence[int]",
    epochs: int,
    warmup_epochs: float,
    min_lr: float,
) -> "torch.optim.lr_scheduler.LRScheduler":
    """Warm up linearly from lr/warmup_steps to the optimizer's lr, then anneal with a cosine to `min_lr`.

    The optimizer's current lr is the peak. Call `.step()` after every optimizer step. `steps_per_epoch`
    may list each epoch's steps (a balanced sampler's epochs are shorter): warm-up then counts the first
    epoch's steps per epoch, and the cosine ends on the run's last step.
    """
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    if isinstance(steps_per_epoch, int):
        steps_per_epoch = [steps_per_epoch] * epochs
    total = max(1, sum(steps_per_epoch[:epochs]))
    warmup = min(int(round(warmup_epochs * steps_per_epoch[0])), total - 1)
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup), eta_min=min_lr)
    if warmup <= 0:
        return cosine
    ramp = LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
