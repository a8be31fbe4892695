"""The multi-encoder fusion model (DESIGN.md §1).

per encoder: pooling(frames) -> Linear(pooled width, proj_dim)   (2*dim; dim for mean-only pooling)
stack the encoders' vectors as a sequence (config order) -> LayerNorm(proj_dim)
-> LSTM(proj_dim, lstm_hidden, lstm_layers) -> last output -> Linear(lstm_hidden, n_classes + n_attributes)
logits: the first n_classes outputs; attributes: 1 + 6*sigmoid(rest), i.e. on the 1..7 rating scale.

At paper dims (whisper 1280, wavlm 1024, roberta 1024; 1028; 2048; 2 layers) it has about 66 M
parameters, almost all in the LSTM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import SertoolError
from ..labels import ATTRIBUTE_RANGE, ATTRIBUTES, CLASSES
from .pooling import POOLINGS

PAPER_ENCODERS: dict[str, int] = {"whisper": 1280, "wavlm": 1024, "roberta": 1024}

ATTR_LOW, ATTR_HIGH = ATTRIBUTE_RANGE
MAX_PARAMETERS = 4_000_000_000
"""Refused beyond this: 60x the paper's model, and 16 GB of float32 weights."""


@dataclass
class FusionConfig:
    """Everything needed to rebuild a `FusionModel`; saved whole next to every checkpoint."""

    encoders: dict[str, int] = field(default_factory=lambda: dict(PAPER_ENCODERS))
    """Encoder name -> embedding dim. The order is the order of the LSTM's input sequence."""
    proj_dim: int = 1028
    """Width each pooled encoder vector is projected to (the LSTM's input size)."""
    lstm_hidden: int = 2048
    """Hidden size of every LSTM layer."""
    lstm_layers: int = 2
    """Number of stacked LSTM layers."""
    n_classes: int = len(CLASSES)
    """Emotion classes of the classification head (Task 1: 8)."""
    n_attributes: int = len(ATTRIBUTES)
    """Attributes of the regression head (arousal, valence, dominance)."""
    pooling: str = "asp"
    """Frame pooling: "asp" (attentive statistics), "mean" (masked mean) or "meanstd" (masked mean + std)."""
    attn_hidden: int = 128
    """Bottleneck width of ASP's attention scorer (unused by mean pooling)."""
    dropout: float = 0.0
    """Dropout on the projected vectors and between LSTM layers; the paper uses none."""
    aux: dict[str, int] = field(default_factory=dict)
    """Auxiliary heads (name -> outputs) beside the task head, from the same LSTM output: trained with
    their own targets (`--aux gender`), kept in the checkpoint, ignored by prediction."""
    pooled_norm: bool = False
    """Standardise each encoder's pooled statistics across clips (BatchNorm1d without affine
    parameters; running statistics at eval) before the projection. Not in the paper, so off by
    default: frozen features whose clip-to-clip variation is small next to a shared offset (the
    tiny preset's random-weight encoders) barely train without it."""

    def __post_init__(self) -> None:
        self.encoders = {str(k): int(v) for k, v in dict(self.encoders).items()}
        self.aux = {str(k): int(v) for k, v in dict(self.aux).items()}
        if any(v < 1 for v in self.aux.values()):
            raise SertoolError(f"fusion model: every auxiliary head needs >= 1 output, got {self.aux}")
        if not self.encoders:
            raise SertoolError("fusion model: at least one encoder is needed")
        for name, dim in self.encoders.items():
            if dim < 1:
                raise SertoolError(f"fusion model: encoder {name!r} has dim {dim}; must be >= 1")
        for name in ("proj_dim", "lstm_hidden", "lstm_layers", "n_classes", "n_attributes", "attn_hidden"):
            if getattr(self, name) < 1:
                raise SertoolError(f"fusion model: {name} must be >= 1, got {getattr(self, name)}")
        if self.pooling not in POOLINGS:
            raise SertoolError(f"fusion model: pooling must be one of {sorted(POOLINGS)}, got {self.pooling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SertoolError(f"fusion model: dropout must be in [0, 1), got {self.dropout}")
        if self.n_parameters() > MAX_PARAMETERS:  # a corrupt or hostile config.json must not allocate terabytes
            raise SertoolError(f"fusion model: {self.n_parameters():,} parameters is beyond any sane model "
                               f"(limit {MAX_PARAMETERS:,}; the paper's has about 66 M)")

    def pooled_width(self, dim: int) -> int:
        """Width of one encoder's pooled vector: mean and std concatenated (asp, meanstd), or the mean (mean)."""
        return POOLINGS[self.pooling].width_factor * dim

    def n_parameters(self) -> int:
        """The parameter count this config builds (computed, nothing allocated)."""
        p, h, n = self.proj_dim, self.lstm_hidden, self.lstm_layers
        pools = sum((d * self.attn_hidden + 2 * self.attn_hidden + 1) if self.pooling == "asp" else 0
                    for d in self.encoders.values())
        projs = sum((self.pooled_width(d) + 1) * p for d in self.encoders.values())
        lstm = 4 * h * (p + h + 2) + (n - 1) * 4 * h * (2 * h + 2)
        return pools + projs + 2 * p + lstm + (h + 1) * (self.n_classes + self.n_attributes + sum(self.aux.values()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionConfig:
        """Rebuild from `to_dict` output; unknown keys raise so a checkpoint never loads half-understood."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SertoolError(f"fusion model config: unknown keys {sorted(unknown)}")
        return cls(**d)


class FusionOutput(NamedTuple):
    logits: torch.Tensor  # (B, n_classes)
    attributes: torch.Tensor  # (B, n_attributes), in [1, 7]
    aux: dict[str, torch.Tensor] = {}  # auxiliary head -> (B, outputs) logits; empty without heads


Inputs = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""What the model reads: encoder name -> (frames (B, T, D), lengths (B,)); T may differ between encoders."""


class FusionModel(nn.Module):
    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        pool_cls = POOLINGS[c.pooling]
        pool_kw = {"attn_hidden": c.attn_hidden} if c.pooling == "asp" else {}
        self.pools = nn.ModuleDict({name: pool_cls(dim, **pool_kw) for name, dim in c.encoders.items()})
        self.projs = nn.ModuleDict({name: nn.Linear(c.pooled_width(dim), c.proj_dim) for name, dim in c.encoders.items()})
        self.pooled_norms = nn.ModuleDict(
            {name: nn.BatchNorm1d(c.pooled_width(dim), affine=False) if c.pooled_norm else nn.Identity()
             for name, dim in c.encoders.items()}
        )
        self.drop = nn.Dropout(c.dropout)
        self.norm = nn.LayerNorm(c.proj_dim)
        self.lstm = nn.LSTM(
            c.proj_dim,
            c.lstm_hidden,
            num_layers=c.lstm_layers,
            batch_first=True,
            dropout=c.dropout if c.lstm_layers > 1 else 0.0,
        )
        self.head = nn.Linear(c.lstm_hidden, c.n_classes + c.n_attributes)
        self.aux_heads = nn.ModuleDict({name: nn.Linear(c.lstm_hidden, n) for name, n in c.aux.items()})

    def forward(self, batch: Inputs) -> FusionOutput:
        missing = [name for name in self.config.encoders if name not in batch]
        if missing:
            raise KeyError(f"batch lacks encoder(s) {missing}; the model was built for {list(self.config.encoders)}")
        dtype = self.head.weight.dtype
        vectors = []
        for name in self.config.encoders:
            frames, lengths = batch[name]  # (B, T, D), (B,)
            pooled = self.pools[name](frames.to(dtype), lengths)  # (B, 2D)
            vectors.append(self.projs[name](self.pooled_norms[name](pooled.to(dtype))))  # (B, P)
        seq = self.drop(torch.stack(vectors, dim=1))  # (B, E, P)
        out, _ = self.lstm(self.norm(seq))  # (B, E, H)
        last = out[:, -1]  # (B, H)
        y = self.head(last)  # (B, C + A)
        logits, attrs = y.split([self.config.n_classes, self.config.n_attributes], dim=-1)
        attributes = ATTR_LOW + (ATTR_HIGH - ATTR_LOW) * torch.sigmoid(attrs)  # (B, A)
        return FusionOutput(logits, attributes, {name: head(last) for name, head in self.aux_heads.items()})

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
