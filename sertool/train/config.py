"""One `TrainConfig` holds every choice a training run makes; it is saved whole with the run.

Fields left at `None` take the stage's defaults (DESIGN.md §1): pre-training uses lr 2e-5 for 50 epochs
with `alpha*MSE + beta*weightedCE`; Task 1 fine-tuning is classification only at lr 1e-5; Task 2
fine-tuning is regression only (MSE, or the Gaussian-penalty MSE with `gaussian_sigma`) at lr 5e-6 for
30 epochs. A value set explicitly (recipe or flag) always wins over the stage default, so the merge of
recipe and flags happens on the raw values before the config is built (see `recipes.resolve_config`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InvalidOption
from ..labels import CLIP_USES
from ..metrics import SELECT_CHOICES

STAGES = ("pretrain", "task1", "task2")
POOLING = ("asp", "mean", "meanstd")
DEVICES = ("cpu", "cuda")
PAPER_ENCODERS = ("whisper", "wavlm", "roberta")

STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "pretrain": {"lr": 2e-5, "epochs": 50, "alpha": 0.5, "beta": 0.5, "class_weights": True, "o_clips": "regression"},
    "task1": {"lr": 1e-5, "epochs": 20, "alpha": 0.0, "beta": 1.0, "class_weights": False, "o_clips": "exclude"},
    "task2": {"lr": 5e-6, "epochs": 30, "alpha": 1.0, "beta": 0.0, "class_weights": False, "o_clips": "regression"},
}
"""Per-stage defaults of the fields a stage changes (DESIGN.md §1); the CLI's help is written from these."""


def stage_defaults_text(name: str) -> str:
    """`0.5; task1 0; task2 1`: a field's stage defaults as help text shows them."""
    def fmt(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v).lower()

    first, *rest = STAGES
    return "; ".join([fmt(STAGE_DEFAULTS[first][name]), *(f"{s} {fmt(STAGE_DEFAULTS[s][name])}" for s in rest)])


class ConfigError(InvalidOption):
    """A value no training run can use; `field` names the option so recipes can point at it."""

    @property
    def field(self) -> str:
        return self.option


@dataclass
class TrainConfig:
    """Everything that determines a training run (besides the store's data and the code version)."""

    stage: str = "pretrain"
    """`pretrain` (multi-task), `task1` (classification fine-tune) or `task2` (regression fine-tune)."""
    alpha: float | None = None
    """Weight of the attribute regression loss (stage default: 0.5 / 0 / 1)."""
    beta: float | None = None
    """Weight of the classification loss (stage default: 0.5 / 1 / 0)."""
    class_weights: bool | None = None
    """Class-weighted CE with `w_c = N / (8 n_c)` from the training split; False = plain CE (stage default:
    weighted for pre-training, plain for the fine-tunes: the paper's Table 2 compares weighting as a variant)."""
    o_clips: str | None = None
    """O (other) clips: `regression` trains the attributes with them, `exclude` leaves them out of the
    sample (stage default: exclude for Task 1, as the paper did; regression otherwise)."""
    x_clips: str = "exclude"
    """X (no agreement) clips: `exclude` (the paper) or `regression` (train the attributes with them:
    their ratings are valid; the Task 2 winners' finding)."""
    gaussian_sigma: float | None = None
    """Gaussian-penalty MSE width (paper: 3, 5, 7); None = plain MSE."""
    lr: float | None = None
    """Peak learning rate after warm-up (stage default: 2e-5 / 1e-5 / 5e-6)."""
    min_lr: float = 1e-7
    """Learning rate the cosine schedule anneals down to."""
    warmup_epochs: float = 3.0
    """Linear warm-up length in epochs (may be fractional; a run shorter than its warm-up ends at the peak)."""
    weight_decay: float = 0.01
    """AdamW weight decay (torch's default)."""
    epochs: int | None = None
    """Number of epochs (stage default: 50 / 50 / 30)."""
    samples_per_epoch: int = 32_000
    """Clips drawn from the training split per epoch (the whole split if it is smaller)."""
    batch_size: int = 128
    """Clips per optimisation step (per process under DDP the global batch is split across ranks)."""
    seed: int = 0
    """Seeds model init, sampling and augmentation choice: same seed on CPU gives the same metrics."""
    proj_dim: int = 1028
    """Width each encoder's pooled vector is projected to (the LSTM's input)."""
    lstm_hidden: int = 2048
    """Hidden size of the 2-layer LSTM."""
    lstm_layers: int = 2
    """Number of LSTM layers."""
    pooling: str = "asp"
    """`asp` (attentive statistics pooling), `mean` (masked mean only: the paper's "average pooling"),
    or `meanstd` (masked mean and standard deviation)."""
    pooled_norm: bool = False
    """Standardise each encoder's pooled statistics across clips before the projection (not in the
    paper; the tiny preset's random-weight encoders need it to learn, see `FusionConfig.pooled_norm`)."""
    dropout: float = 0.0
    """Dropout on the projected encoder vectors and between LSTM layers (the paper uses none)."""
    encoders: tuple[str, ...] = PAPER_ENCODERS
    """Encoders (store names) whose frames feed the model, in this order."""
    splits: str = "corpus"
    """Split scheme of the catalog: Train trains, Development selects, every other split is a test split."""
    select: str | None = None
    """Dev metric that picks the kept checkpoint: f1, ccc (mean) or ccc_<attribute> (default: f1 for task1 or alpha 0, else ccc)."""
    augment: bool = True
    """Sample the store's augmented variants: each training clip draws clean or one of its variants per epoch."""
    init_from: str | None = None
    """MLflow run id whose logged checkpoint initialises the model (fine-tuning)."""
    experiment: str | None = None
    """MLflow experiment name (default: one experiment per store)."""
    run_name: str | None = None
    """MLflow run name (default: generated from stage and loss weights)."""
    device: str | None = None
    """`cpu` or `cuda` (cuda trains with automatic mixed precision); None = cuda when available."""
    num_workers: int = 2
    """DataLoader worker processes reading batches from the store (0 = read in the training process)."""
    prefetch: int = 4
    """Batches each worker reads ahead."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value (None = no clipping, as in the paper)."""

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError("stage", f"{self.stage!r} is not one of {', '.join(STAGES)}")
        for name, value in STAGE_DEFAULTS[self.stage].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.select is None:  # the trained head's metric: CCC unless only the classifier learns
            self.select = "f1" if self.stage == "task1" or self.alpha == 0 else "ccc"
        if isinstance(self.encoders, str):
            self.encoders = tuple(e.strip() for e in self.encoders.split(",") if e.strip())
        self.encoders = tuple(self.encoders)
        self._validate()

    def _validate(self) -> None:
        def need(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise ConfigError(name, message)

        for name in ("alpha", "beta"):
            need(0.0 <= float(getattr(self, name)) <= 1e6, name, "must be >= 0")
        need(self.alpha > 0 or self.beta > 0, "alpha", "alpha and beta are both 0: nothing to learn")
        need(self.gaussian_sigma is None or self.gaussian_sigma > 0, "gaussian_sigma", "must be > 0")
        need(self.lr > 0, "lr", "must be > 0")
        need(0 <= self.min_lr <= self.lr, "min_lr", f"must be between 0 and lr ({self.lr:g})")
        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.warmup_epochs >= 0, "warmup_epochs", "must be >= 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.samples_per_epoch >= 1, "samples_per_epoch", "must be >= 1")
        need(self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.proj_dim >= 1, "proj_dim", "must be >= 1")
        need(self.lstm_hidden >= 1, "lstm_hidden", "must be >= 1")
        need(self.lstm_layers >= 1, "lstm_layers", "must be >= 1")
        need(self.pooling in POOLING, "pooling", f"{self.pooling!r} is not one of {', '.join(POOLING)}")
        for name in ("o_clips", "x_clips"):
            need(getattr(self, name) in CLIP_USES, name, f"{getattr(self, name)!r} is not one of {', '.join(CLIP_USES)}")
        need(len(self.encoders) >= 1, "encoders", "name at least one encoder")
        need(len(set(self.encoders)) == len(self.encoders), "encoders", "an encoder is named twice")
        need(self.select in SELECT_CHOICES, "select", f"{self.select!r} is not one of {', '.join(SELECT_CHOICES)}")
        need(self.device is None or self.device in DEVICES, "device", f"{self.device!r} is not one of cpu, cuda")
        need(self.num_workers >= 0, "num_workers", "must be >= 0")
        need(self.prefetch >= 1, "prefetch", "must be >= 1")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        if self.select == "f1":
            need(self.beta > 0, "select", "f1 selects on the classifier but beta is 0 (it is not trained)")
        else:
            need(self.alpha > 0, "select", f"{self.select} selects on the attributes but alpha is 0 (they are not trained)")

    # -- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoders"] = list(self.encoders)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def run_label(self) -> str:
        """A short human name for the run: stage and loss weights."""
        if self.run_name:
            return self.run_name
        loss = f"a{self.alpha:g}-b{self.beta:g}"
        if self.gaussian_sigma is not None:
            loss += f"-g{self.gaussian_sigma:g}"
        return f"{self.stage}-{loss}-{self.pooling}"


def field_names() -> list[str]:
    """Every option a recipe or flag may set."""
    return [f.name for f in fields(TrainConfig)]
