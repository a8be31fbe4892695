"""Multi-task losses (DESIGN.md §1): class-weighted or plain cross-entropy, MSE over the attributes
or the Gaussian-penalty MSE, and their sum `alpha * L_reg + beta * L_class`.

Targets follow `sertool.labels`: class index 0..7 or `IGNORE_INDEX` (`O` clips: regression only), and
attribute values with NaN where missing. A batch with nothing to learn for one task (all `O`, or no
attributes) gives that task a loss of exactly 0 that still carries a graph, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..labels import CLASSES, IGNORE_INDEX

GAUSSIAN_MU = 4.0
"""Centre of the 1..7 rating scale, where the Gaussian penalty weighs errors most."""


def class_weights(counts: Sequence[float] | torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Challenge-baseline class weights `w_c = (N / (C * n_c)) ** power` from training-split class counts.

    `counts[c]` is the number of training clips of class c (`CLASSES` order), or with soft targets the
    vote mass of class c; N is their sum, so `O` and `X` clips (which take no part in cross-entropy) do
    not count. `power` 1 is the baseline's (and the paper's); MEDUSA, the Task 1 winner, used 0.5. A
    class absent from training gets weight 0 rather than infinity: it has no target to weigh, and an
    infinite weight would turn any stray target of it into an infinite loss.
    """
    n = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if (n < 0).any():
        raise ValueError(f"class counts must be >= 0, got {n.tolist()}")
    total = n.sum()
    if total == 0:
        raise ValueError("class counts are all zero: no training clip has a task class")
    w = torch.where(n > 0, (total / (len(n) * n.clamp_min(1e-12))) ** power, torch.zeros_like(n))
    return w.float()  # (C,)


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """(Weighted) mean cross-entropy over the clips with a class target.

    Weighted, it is torch's definition: `sum_i w_{y_i} * nll_i / sum_i w_{y_i}`. Clips with target
    `IGNORE_INDEX` are left out; if none is left (or all have weight 0) the loss is 0, not NaN.
    """
    logits = logits.float()  # (B, C)
    per_clip = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX, reduction="none")  # (B,)
    valid = target != IGNORE_INDEX  # (B,)
    if weight is None:
        denom = valid.sum().to(per_clip.dtype)
    else:
        denom = weight.to(per_clip.dtype)[target.clamp_min(0)].masked_fill(~valid, 0.0).sum()
    # With nothing to count, per_clip is all zeros: 0 / floor = 0 without a host sync on GPU.
    return per_clip.sum() / denom.clamp_min(1e-12)


def soft_cross_entropy(
    logits: torch.Tensor, dist: torch.Tensor, weight: torch.Tensor | None = None, *, kl: bool = False
) -> torch.Tensor:
    """Cross-entropy (or KL divergence) to a target distribution per clip, class-weighted like `cross_entropy`.

    `dist` (B, C): a clip's target distribution; an all-zero row has no class target and is left out.
    With weights, clip i counts `sum_c w_c p_ic` (for a one-hot target: `w_{y_i}`, torch's weighted
    mean), so on one-hot targets this equals `cross_entropy`. KL differs from CE by the targets' own
    entropy: the same gradients, a loss that reaches 0 at a perfect fit.
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, C)
    p = dist.float()  # (B, C)
    w = p if weight is None else p * weight.to(p.dtype)  # (B, C)
    nll = -(w * logp)
    if kl:
        nll = nll + w * torch.where(p > 0, p.clamp_min(1e-12).log(), torch.zeros_like(p))
    return nll.sum() / w.sum().clamp_min(1e-12)


def aux_loss(name: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """An auxiliary head's loss: single-label CE (`gender`; `IGNORE_INDEX` rows left out) or multi-label
    BCE against the share of annotators naming each secondary emotion (`secondary`; NaN rows left out).
    0 with a graph when no clip of the batch has a value."""
    if name == "gender":
        return cross_entropy(out, target)
    present = ~torch.isnan(target).any(dim=-1)  # (B,)
    per = F.binary_cross_entropy_with_logits(out.float(), torch.nan_to_num(target.float()), reduction="none")
    return (per * present[:, None]).sum() / (present.sum() * out.shape[-1]).clamp_min(1)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all present attribute values (NaN targets are masked out)."""
    return gaussian_mse(pred, target, sigma=None)


def gaussian_mse(
    pred: torch.Tensor, target: torch.Tensor, sigma: float | None, mu: float = GAUSSIAN_MU
) -> torch.Tensor:
    """Gaussian-penalty MSE `mean(exp(-(yhat - mu)^2 / (2 sigma^2)) * (y - yhat)^2)`; plain MSE if sigma is None.

    The formula is taken literally, so the gradient also flows through the weight (a function of
    the prediction). Means run over the present (non-NaN) values of the (B, A) target.
    """
    pred = pred.float()  # (B, A)
    target = target.float()  # (B, A)
    present = ~torch.isnan(target)  # (B, A)
    err = (torch.where(present, target, pred) - pred).square()  # (B, A); 0 where missing
    if sigma is not None:
        if sigma <= 0 or not math.isfinite(sigma):
            raise ValueError(f"gaussian sigma must be a positive number, got {sigma}")
        err = torch.exp(-(pred - mu).square() / (2 * sigma**2)) * err
    return err.sum() / present.sum().clamp_min(1)  # no value present -> 0 (err is all zeros)


class LossParts(NamedTuple):
    total: torch.Tensor  # alpha * regression + beta * classification + sum_k w_k * aux_k
    regression: torch.Tensor
    classification: torch.Tensor
    auxiliary: torch.Tensor | None = None  # the weighted sum of the auxiliary heads' losses


class MultiTaskLoss(nn.Module):
    """`alpha * L_reg + beta * L_class`; both parts are returned for logging.

    L_class is cross-entropy (class-weighted when `class_weights` is given); L_reg is MSE over the
    attributes, or the Gaussian-penalty MSE when `gaussian_sigma` is given. Task 1 fine-tuning is
    alpha=0, beta=1; Task 2 is alpha=1, beta=0.
    """

    def __init__(
        self,
        alpha: float,
        beta: float,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        gaussian_sigma: float | None = None,
        gaussian_mu: float = GAUSSIAN_MU,
        soft_loss: str = "ce",
        aux_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(f"loss weights must be >= 0 and not both 0, got alpha={alpha}, beta={beta}")
        if gaussian_sigma is not None and gaussian_sigma <= 0:
            raise ValueError(f"gaussian sigma must be > 0, got {gaussian_sigma}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gaussian_sigma = gaussian_sigma
        self.gaussian_mu = float(gaussian_mu)
        self.soft_kl = soft_loss == "kl"
        self.aux_weights = dict(aux_weights or {})
        w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        if w is not None and w.shape != (len(CLASSES),):
            raise ValueError(f"class_weights must have {len(CLASSES)} entries, got shape {tuple(w.shape)}")
        # A buffer moves with .to(device) and is saved with the module.
        self.register_buffer("class_weights", w)

    def forward(
        self,
        logits: torch.Tensor,  # (B, C)
        attributes: torch.Tensor,  # (B, A)
        class_target: torch.Tensor,  # (B,) long, IGNORE_INDEX for O clips
        attr_target: torch.Tensor,  # (B, A) float, NaN where missing
        class_dist: torch.Tensor | None = None,  # (B, C): soft (or smoothed) targets replace class_target
        aux_out: Mapping[str, torch.Tensor] | None = None,
        aux_target: Mapping[str, torch.Tensor] | None = None,
    ) -> LossParts:
        reg = gaussian_mse(attributes, attr_target, self.gaussian_sigma, self.gaussian_mu)
        if class_dist is None:
            cls = cross_entropy(logits, class_target, self.class_weights)
        else:
            cls = soft_cross_entropy(logits, class_dist, self.class_weights, kl=self.soft_kl)
        total = self.alpha * reg + self.beta * cls
        aux = None
        if self.aux_weights and aux_out is not None and aux_target is not None:
            aux = sum(w * aux_loss(k, aux_out[k], aux_target[k]) for k, w in self.aux_weights.items())
            total = total + aux
        return LossParts(total, reg, cls, aux)
