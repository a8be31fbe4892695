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
from ..labels import AUX_TASKS, CLIP_USES, O_VOTE_USES, TARGET_KINDS
from ..metrics import SELECT_CHOICES
from ..store.splits import DEV, TRAIN
from ..store.transcripts import PREFERRED, TEXT_CHOICES, text_variant

STAGES = ("pretrain", "task1", "task2")
POOLING = ("asp", "mean", "meanstd")
DEVICES = ("cpu", "cuda")
SOFT_LOSSES = ("ce", "kl")
BATCHINGS = ("random", "bucketed")
READ_ORDERS = ("random", "blocked")
PRECISIONS = ("auto", "fp32", "bf16")
ATTRIBUTE_TARGETS = ("consensus", "votes")
SAMPLERS = ("natural", "balanced")
BALANCED_DEFAULTS = (4, 0.11)
"""`balanced` alone means `balanced:4:0.11`: from epoch 4, each epoch undersamples every class to the
rarest, and X/O clips make 11% of it (MEDUSA, the Task 1 winner: one X/O "class" beside the 8)."""
AUX_WEIGHT = 0.1
"""Loss weight of an auxiliary head named without one (SAIL's gender head: 0.1)."""
REFIT_ON = "train+dev"
PAPER_ENCODERS = ("whisper", "wavlm", "roberta")
OPERATIONAL = ("device", "num_workers", "prefetch", "compile", "experiment")
"""Fields that change where or how fast a run trains, not what it learns (left out of `digest`)."""

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
    num_workers: int | None = None
    """DataLoader worker processes reading batches from the store (0 = read in the training process);
    None: 2 on CPU (the step needs the cores), on CUDA one per free core up to 8 (the GPU's step is fast)."""
    prefetch: int = 4
    """Batches each worker reads ahead."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value (None = no clipping, as in the paper)."""
    batching: str = "random"
    """`random` (batches in sample order) or `bucketed` (batches of clips of similar length, less padding;
    the same epoch sample, grouped differently)."""
    read_order: str = "random"
    """`random`, or `blocked`: each batch from a few runs of clips neighbouring in the store (far fewer
    scattered reads when the store does not fit in the page cache)."""
    precision: str = "auto"
    """`auto` (bf16 autocast on a GPU that has it, else fp16 with loss scaling; fp32 on CPU), `fp32`, or
    `bf16` (also on CPU, to check the autocast path without a GPU)."""
    compile: bool = False
    """Compile the fusion model with torch.compile (worth it on a GPU for long runs)."""
    view: str | None = None
    """Train from this packed view (`sertool store pack`), loaded whole into memory: no loader processes."""
    resident: str | None = None
    """Where the view lives: `cpu` (pinned host memory) or `cuda` (default: the training device)."""
    resident_budget_gb: float | None = None
    """Most memory the view may take (default: 90% of what is free where it lives)."""
    # -- the levers that learn from every annotator (off by default: the paper's recipe stays the paper's)
    targets: str = "hard"
    """Class targets: `hard` (the consensus class) or `soft` (the share of the annotators' votes per class;
    X clips then train the classifier too, and clips without votes fall back to their consensus)."""
    soft_loss: str = "ce"
    """Loss on soft targets: `ce` (cross-entropy with probability targets) or `kl` (KL divergence)."""
    o_votes: str = "drop"
    """Other votes in a soft target: `drop` (renormalise over the class votes) or `uniform` (spread evenly)."""
    label_smoothing: float = 0.0
    """Mix this much of a uniform distribution into the class targets."""
    annotator_dropout: float = 0.0
    """Each epoch, drop each annotator's vote with this probability (at least one kept) before the soft
    target (and, with attribute_targets = votes, the attribute means) is computed."""
    attribute_targets: str = "consensus"
    """Attribute targets: the consensus ratings, or the mean of the (kept) annotators' ratings."""
    class_weight_power: float = 1.0
    """Class weights `(N / (8 n_c)) ** power`: 1 is the paper's, 0.5 MEDUSA's."""
    sampler: str = "natural"
    """`natural` (a random sample of the split), or `balanced[:FROM_EPOCH[:XO_SHARE]]`: from that epoch
    on, a fresh undersample to the rarest class each epoch plus that share of X/O clips."""
    aux: tuple[str, ...] = ()
    """Auxiliary heads `NAME[:WEIGHT]` (gender, secondary); clips without a known value do not train them."""
    early_stop: int | None = None
    """Stop when the selection metric has not improved for this many epochs."""
    refit_epochs: int | None = None
    """After selection, retrain on Train+Development for this many epochs, as a child run (no dev figures)."""
    text: str = "preferred"
    """Which transcript the text encoders' frames come from (`store.transcripts`): `preferred` (the corpus's,
    else ASR's: the paper's), `corpus` or `asr`, for every split, or per split: `asr,Train=corpus` (corpus
    for Train, ASR for Development and the test splits: the train/test text mismatch removed or measured)."""

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
        if isinstance(self.aux, str):
            self.aux = tuple(a.strip() for a in self.aux.split(",") if a.strip())
        self.aux = tuple(self.aux)
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
        need(self.num_workers is None or self.num_workers >= 0, "num_workers", "must be >= 0")
        need(self.batching in BATCHINGS, "batching", f"{self.batching!r} is not one of {', '.join(BATCHINGS)}")
        need(self.read_order in READ_ORDERS, "read_order", f"{self.read_order!r} is not one of {', '.join(READ_ORDERS)}")
        need(self.batching == "random" or self.read_order == "random", "read_order",
             "blocked reads and bucketed batches group the sample in two different ways: choose one")
        need(self.resident in (None, *DEVICES), "resident", f"{self.resident!r} is not one of cpu, cuda")
        need(self.resident is None or self.view is not None, "resident", "places a view: add --view NAME")
        need(self.resident_budget_gb is None or self.resident_budget_gb > 0, "resident_budget_gb", "must be > 0")
        need(self.precision in PRECISIONS, "precision", f"{self.precision!r} is not one of {', '.join(PRECISIONS)}")
        need(self.prefetch >= 1, "prefetch", "must be >= 1")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        self._validate_levers(need)
        if self.select == "f1":
            need(self.beta > 0, "select", "f1 selects on the classifier but beta is 0 (it is not trained)")
        else:
            need(self.alpha > 0, "select", f"{self.select} selects on the attributes but alpha is 0 (they are not trained)")

    def _validate_levers(self, need: Any) -> None:
        need(self.targets in TARGET_KINDS, "targets", f"{self.targets!r} is not one of {', '.join(TARGET_KINDS)}")
        need(self.soft_loss in SOFT_LOSSES, "soft_loss", f"{self.soft_loss!r} is not one of {', '.join(SOFT_LOSSES)}")
        need(self.o_votes in O_VOTE_USES, "o_votes", f"{self.o_votes!r} is not one of {', '.join(O_VOTE_USES)}")
        need(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "must be in [0, 1)")
        need(0.0 <= self.annotator_dropout < 1.0, "annotator_dropout", "must be in [0, 1)")
        need(self.attribute_targets in ATTRIBUTE_TARGETS, "attribute_targets",
             f"{self.attribute_targets!r} is not one of {', '.join(ATTRIBUTE_TARGETS)}")
        need(self.annotator_dropout == 0 or self.targets == "soft" or self.attribute_targets == "votes",
             "annotator_dropout", "acts on vote-derived targets: add --targets soft or --attribute-targets votes")
        need(0.0 <= self.class_weight_power <= 4.0, "class_weight_power", "must be between 0 and 4")
        self.sampler_spec  # noqa: B018 (parses and checks the sampler)
        self.aux_weights  # noqa: B018 (parses and checks the heads)
        need(self.early_stop is None or self.early_stop >= 1, "early_stop", "must be >= 1 epoch")
        need(self.refit_epochs is None or self.refit_epochs >= 1, "refit_epochs", "must be >= 1 epoch")
        plan = self.text_plan
        need(self.view is None or plan.is_preferred, "text",
             "a packed view holds the preferred text's frames only: drop --view, or --text preferred")
        if self.refit_epochs is not None:
            need(plan.choice(TRAIN) == plan.choice(DEV), "text",
                 f"a refit trains on {TRAIN} and {DEV} together: give both the same text")

    @property
    def text_plan(self) -> "TextPlan":
        """`text` parsed: which text choice each split reads."""
        return TextPlan.parse(self.text)

    @property
    def sampler_spec(self) -> tuple[str, int, float]:
        """(`natural` | `balanced`, from epoch, X/O share) parsed from `sampler`."""
        kind, *rest = self.sampler.split(":")
        if kind not in SAMPLERS or (kind == "natural" and rest) or len(rest) > 2:
            raise ConfigError("sampler", f"{self.sampler!r}: use natural or balanced[:FROM_EPOCH[:XO_SHARE]]")
        if kind == "natural":
            return "natural", 1, 0.0
        try:
            start = int(rest[0]) if rest else BALANCED_DEFAULTS[0]
            share = float(rest[1]) if len(rest) > 1 else BALANCED_DEFAULTS[1]
        except ValueError:
            raise ConfigError("sampler", f"{self.sampler!r}: FROM_EPOCH is an integer, XO_SHARE a number") from None
        if start < 1 or not 0.0 <= share < 1.0:
            raise ConfigError("sampler", f"{self.sampler!r}: FROM_EPOCH must be >= 1 and XO_SHARE in [0, 1)")
        return "balanced", start, share

    @property
    def aux_weights(self) -> dict[str, float]:
        """Auxiliary head -> loss weight, parsed from `aux`."""
        out: dict[str, float] = {}
        for item in self.aux:
            name, _, weight = item.partition(":")
            if name not in AUX_TASKS:
                raise ConfigError("aux", f"{name!r} is not one of {', '.join(AUX_TASKS)}")
            try:
                w = float(weight) if weight else AUX_WEIGHT
            except ValueError:
                raise ConfigError("aux", f"{item!r}: the weight after ':' must be a number") from None
            if not 0 < w <= 100 or name in out:
                raise ConfigError("aux", f"{item!r}: each head once, with a weight > 0")
            out[name] = w
        return out

    # -- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoders"] = list(self.encoders)
        d["aux"] = list(self.aux)
        return d

    def digest(self) -> str:
        """16 hex digits that name what this config trains: a sweep keys its children by it, so a resumed
        sweep recognises a child it already ran. Where and how fast it runs (`OPERATIONAL`) is left out:
        the same child may go on on another GPU, or with more loader workers."""
        import hashlib
        import json

        what = {k: v for k, v in self.to_dict().items() if k not in OPERATIONAL}
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]

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


@dataclass(frozen=True)
class TextPlan:
    """Which transcript each split's text-encoder frames come from (`TrainConfig.text` parsed)."""

    default: str = PREFERRED
    """The choice of every split not named in `splits`."""
    splits: tuple[tuple[str, str], ...] = ()
    """(split, choice) pairs that differ from the default."""

    @classmethod
    def parse(cls, spec: str) -> "TextPlan":
        """`CHOICE` or `CHOICE,SPLIT=CHOICE,...` (or only `SPLIT=CHOICE` items, the rest preferred)."""
        default, per = PREFERRED, {}
        items = [i.strip() for i in str(spec).split(",") if i.strip()]
        if not items:
            raise ConfigError("text", f"{spec!r}: give {' | '.join(TEXT_CHOICES)}, optionally with SPLIT=CHOICE items")
        for item in items:
            split, eq, choice = item.rpartition("=")
            if choice not in TEXT_CHOICES or (eq and not split.strip()):
                raise ConfigError("text", f"{item!r}: use one of {', '.join(TEXT_CHOICES)}, or SPLIT=CHOICE "
                                          "(e.g. asr,Train=corpus)")
            if eq:
                if split.strip() in per:
                    raise ConfigError("text", f"{item!r}: split {split.strip()} is named twice")
                per[split.strip()] = choice
            elif default != PREFERRED or items.index(item) != 0:
                raise ConfigError("text", f"{spec!r}: one default choice, first, then SPLIT=CHOICE items")
            else:
                default = choice
        return cls(default, tuple(sorted((k, v) for k, v in per.items() if v != default)))

    def choice(self, split: str) -> str:
        return dict(self.splits).get(split, self.default)

    def variant(self, split: str) -> str:
        """The text encoders' variant a split reads (`store.transcripts.text_variant`)."""
        return text_variant(self.choice(split))

    @property
    def is_preferred(self) -> bool:
        """Every split reads the preferred text (variant `clean`): the paper's, and every run before `--text`."""
        return self.default == PREFERRED and not self.splits


def field_names() -> list[str]:
    """Every option a recipe or flag may set."""
    return [f.name for f in fields(TrainConfig)]
