"""Pooling a variable-length clip of frames into one fixed vector.

Both poolings take a padded batch `x: (B, T, D)` with `lengths: (B,)` (frames past a clip's length are
padding and never influence its output, whatever they hold) and return `(B, 2*D)`: a weighted mean
and a weighted standard deviation, concatenated. They differ only in the weights: learned attention
(ASP) or uniform over the clip's frames (mean pooling). Mean pooling returns the std too, so the
fusion model's projection `Linear(2*D, proj)` is the same for both and `--pooling` changes nothing
else; the paper's "mean pooling" model is read as masked mean + std statistics pooling.
"""

from __future__ import annotations

import torch
from torch import nn

VAR_FLOOR = 1e-5
"""Variance floor before sqrt: a length-1 clip or constant frames have variance 0, where sqrt's
gradient is infinite. Clamping keeps the gradient finite (zero below the floor)."""


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True on a clip's real frames, False on padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)


def weighted_stats(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mean and std over time; weights sum to 1 per clip and are 0 on padding.

    Computed in float32 (also under autocast): fp16 variances of near-constant frames underflow.
    """
    x = x.float()  # (B, T, D)
    w = w.float().unsqueeze(-1)  # (B, T, 1)
    mean = (w * x).sum(dim=1)  # (B, D)
    # Centre before squaring: E[x^2] - E[x]^2 cancels catastrophically on large, near-constant frames.
    var = (w * (x - mean.unsqueeze(1)).square()).sum(dim=1)  # (B, D)
    std = var.clamp_min(VAR_FLOOR).sqrt()  # (B, D)
    return torch.cat([mean, std], dim=-1)  # (B, 2D)


def _zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Padding may hold anything (even NaN from an uninitialised buffer); 0 * NaN is NaN, so zero it.
    return x.masked_fill(~mask.unsqueeze(-1), 0.0)  # (B, T, D)


class AttentiveStatsPooling(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018).

    Frame scores `e_t = v^T tanh(W h_t + b) + k`, softmax over the clip's real frames, then the
    attention-weighted mean and standard deviation.
    """

    def __init__(self, dim: int, attn_hidden: int = 128) -> None:
        super().__init__()
        self.dim = dim
        self.attention = nn.Sequential(
            nn.Linear(dim, attn_hidden),
            nn.Tanh(),
            nn.Linear(attn_hidden, 1),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(lengths, x.shape[1])  # (B, T)
        x = _zero_padding(x, mask)
        scores = self.attention(x).squeeze(-1).float()  # (B, T)
        # A finite fill rather than -inf: a (mis-fed) zero-length clip then yields finite output, not NaN.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=1)  # (B, T)
        return weighted_stats(x, weights)  # (B, 2D)


class MeanPooling(nn.Module):
    """Masked mean and std over a clip's frames: statistics pooling with uniform weights, no parameters."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(lengths, x.shape[1])  # (B, T)
        x = _zero_padding(x, mask)
        weights = mask.float() / lengths.clamp_min(1).unsqueeze(-1).float()  # (B, T)
        return weighted_stats(x, weights)  # (B, 2D)


POOLINGS: dict[str, type[nn.Module]] = {"asp": AttentiveStatsPooling, "mean": MeanPooling}
"""Pooling layers by the name the config (and the `--pooling` option) records."""
