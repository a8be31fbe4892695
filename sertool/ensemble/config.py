"""What `sertool ensemble` is asked to do, and what it reports back.

Defaults follow the paper: Task 2 averages, per attribute, the 3 runs with the best dev CCC; an
external baseline, when given, joins arousal and dominance only; Task 1 submits the single best run.
`--method stack` fits a meta-model over the top K (3 by default, for either task) instead of averaging
them (`stack`), cross-fitted in `folds` folds drawn with `seed`. Candidates are the finished runs of the
task's own stage and pre-training (a Task 1 fine-tune, which never trained the attribute head, is no
candidate for a Task 2 attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidOption
from ..labels import ATTRIBUTES
from .spec import METHODS, TARGETS, EnsembleSpec

if TYPE_CHECKING:
    from ..predictions import Predictions
    from ..store.layout import StoreLayout
    from .stack import StackFit

SUBMISSIONS_DIR = "submissions"
TASK_STAGES: dict[int, tuple[str, ...]] = {1: ("task1", "pretrain"), 2: ("task2", "pretrain")}
"""Default candidates of each task: runs of these stages."""
DEFAULT_TOP: dict[int, int] = {1: 1, 2: 3}
"""Task 1: the paper submitted one model; Task 2: the 3 best per attribute."""
STACK_TOP = 3
"""A stack's default K on either task (a meta-model over one member would only recalibrate it)."""


@dataclass(frozen=True)
class EnsembleConfig:
    """Everything `sertool ensemble` was asked to do."""

    task: int = 2
    """1: class probabilities by macro-F1; 2: each attribute by CCC."""
    top: int | None = None
    """K: members per target (top-K and stack), or the largest start bag greedy tries (default: 1 for Task 1,
    3 for Task 2 and for stack)."""
    method: str = "topk"
    """`topk`, `greedy` (Caruana forward selection with replacement, from every top-k start, k <= K) or
    `stack` (a meta-model over the top K, cross-fitted on dev)."""
    experiment: str | None = None
    filter_string: str = ""
    """MLflow search filter on the candidates (tags, params, metrics)."""
    stages: tuple[str, ...] | None = None
    """Training stages the candidates come from (default: the task's own and pre-training)."""
    parent: str | None = None
    """Only children of this sweep run (id, id prefix or name)."""
    baseline: Path | None = None
    """A Task 2 challenge file (FileName,EmoAct,EmoVal,EmoDom) covering dev and the test split."""
    baseline_attributes: tuple[str, ...] = ("arousal", "dominance")
    """The attributes the baseline joins (the paper: arousal and dominance only)."""
    pins: tuple[str, ...] = ()
    """Members always in the ensemble: `RUN` (every target) or `RUN:attribute` (the paper pinned its ASP
    pre-trained model for valence)."""
    test_split: str = "Test3"
    """The split the submission file covers."""
    name: str | None = None
    """Run name (default `ens-task<T>-<method><K>`); also names the submission file."""
    out: Path | None = None
    """Submission path (default `<store>/submissions/<name>_task<T>.csv`)."""
    include_ensembles: bool = False
    """Let earlier ensemble runs be candidates too."""
    greedy_steps: int = 25
    folds: int = 5
    """Stack: K of the K-fold cross-fitting behind every dev figure (at least 2)."""
    seed: int = 0
    """Stack: seed of the fold draw."""
    allow_mixed_data: bool = False
    """Let candidates trained on different data (another digest: `train.lineage`) be ensembled together."""

    def __post_init__(self) -> None:
        if self.task not in TARGETS:
            raise InvalidOption("task", f"must be 1 or 2, got {self.task}")
        if self.top is None:
            object.__setattr__(self, "top", STACK_TOP if self.method == "stack" else DEFAULT_TOP[self.task])
        if self.stages is None:
            object.__setattr__(self, "stages", TASK_STAGES[self.task])
        if self.method not in METHODS:
            raise InvalidOption("method", f"must be {', '.join(METHODS[:-1])} or {METHODS[-1]}, got {self.method!r}")
        if self.top < 1:
            raise InvalidOption("top", f"must be at least 1, got {self.top}")
        if self.folds < 2:
            raise InvalidOption("folds", f"must be at least 2 (each fold is predicted by a meta-model fit on the "
                                         f"others), got {self.folds}")
        if self.method == "stack" and self.baseline is not None:
            raise InvalidOption("baseline", "cannot join a stacked ensemble: its meta-model needs every member's "
                                "predictions, and the baseline has none for new audio (`sertool predict`)")
        if self.baseline is not None and self.task == 1:
            raise InvalidOption("baseline", "takes a Task 2 file (FileName,EmoAct,EmoVal,EmoDom); "
                                "Task 1 ensembles average class probabilities, which it does not have")
        unknown = [a for a in self.baseline_attributes if a not in ATTRIBUTES]
        if unknown:
            raise InvalidOption("baseline_attributes", f"{', '.join(unknown)}: choose from {', '.join(ATTRIBUTES)}")
        for pin in self.pins:
            _, _, target = pin.partition(":")
            if target and target not in TARGETS[self.task]:
                raise InvalidOption("pin", f"{pin!r}: a Task {self.task} ensemble has the targets "
                                    f"{', '.join(TARGETS[self.task])}")

    @property
    def run_name(self) -> str:
        return self.name or f"ens-task{self.task}-{self.method}{self.top}"

    def submission_path(self, layout: "StoreLayout", split: str | None = None) -> Path:
        """The challenge file of the test split (or, with `split`, of another split: `..._Development.csv`)."""
        path = self.out or layout.root / SUBMISSIONS_DIR / f"{self.run_name}_task{self.task}.csv"
        return path if split is None else path.with_name(f"{path.stem}_{split}{path.suffix}")


@dataclass
class MemberScore:
    member: str
    """Run id, or `baseline`."""
    name: str
    count: int
    """Times in the bag (greedy draws with replacement)."""
    dev: float
    """The member's own dev score."""


@dataclass
class TargetReport:
    """One target's choice: its members and scores."""

    target: str
    metric: str
    """`ccc_<attribute>` or `f1_macro`."""
    members: list[MemberScore]
    ensemble_dev: float
    best_single_dev: float
    """The best candidate alone (baseline excluded)."""


@dataclass
class EnsembleResult:
    spec: EnsembleSpec
    name: str
    reports: dict[str, TargetReport]
    dev_metrics: dict[str, float]
    """The task's figures of the ensemble on dev (official and companions: `metrics.score`)."""
    predictions: dict[str, "Predictions"]
    submission: Path
    dev_file: Path | None = None
    """The Development predictions in the challenge format (`sertool score` checks them)."""
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)
    """Things the user should know (runs left out, splits dropped, clips missing from the submission)."""
    stacks: dict[str, "StackFit"] = field(default_factory=dict)
    """Stack: each target's kept meta-model, out-of-fold dev predictions and the fold of every dev clip."""
