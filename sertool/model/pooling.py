"""Pooling a variable-length clip of frames into one fixed vector.

Every pooling takes a padded batch `x: (B, T, D)` with `lengths: (B,)` (frames past a clip's length are
padding and never influence its output, whatever they hold). Attentive statistics pooling (ASP) and
`meanstd` return `(B, 2*D)`: a weighted mean and a weighted standard deviation, concatenated, with
learned attention weights or uniform ones. `mean` is the paper's "average pooling": the masked mean
only, `(B, D)`, so its projection is `Linear(D, proj)` (`FusionConfig.pooled_width`).
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

    width_factor = 2

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


def _uniform(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mask = frame_mask(lengths, x.shape[1])  # (B, T)
    return _zero_padding(x, mask), mask.float() / lengths.clamp_min(1).unsqueeze(-1).float()  # (B, T, D), (B, T)


class MeanStdPooling(nn.Module):
    """Masked mean and std over a clip's frames: statistics pooling with uniform weights, no parameters."""

    width_factor = 2

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return weighted_stats(*_uniform(x, lengths))  # (B, 2D)


class MeanPooling(nn.Module):
    """The masked mean over a clip's frames (the paper's "average pooling"), no parameters."""

    width_factor = 1

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x, w = _uniform(x, lengths)
        return (w.unsqueeze(-1) * x.float()).sum(dim=1)  # (B, D), float32 as `weighted_stats`


POOLINGS: dict[str, type[nn.Module]] = {"asp": AttentiveStatsPooling, "mean": MeanPooling, "meanstd": MeanStdPooling}
"""Pooling layers by the name the config (and the `--pooling` option) records."""
