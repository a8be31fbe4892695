"""Searches, not just grids: a recipe's `[search]` table as an Optuna study whose every trial is a child run.

```toml
[search]
lr = { low = 1e-6, high = 1e-3, log = true }   # a number range (int or float, as the option is); log scale
alpha = { low = 0, high = 1 }
gaussian_sigma = { choices = [3, 5, 7] }       # a list of values
[search.study]                                 # the search itself (--objective / --trials win)
objective = "ccc_mean"                         # f1_macro, ccc_mean, ccc_arousal, ccc_valence, ccc_dominance
trials = 20
seed = 0                                       # the TPE sampler's seed
startup_trials = 5                             # trials that finish before the pruner may stop any
prune_warmup = 1                               # epochs every trial trains before it may be pruned (>= 1)
pruner = "median"                              # or "none"
```

Who does what, and why: the sweep process alone *asks* the study for each trial's values (one seeded TPE
sampler, so a search run one trial at a time repeats itself); the child that trains a trial *reports* its
per-epoch dev figure, asks the median pruner after each epoch and *tells* the study its result itself, so
a trial on another process or node needs nothing from the sweep but the study's storage. The storage is a
journal file beside the tracking store (or `--study-storage`): Optuna's journal works on NFS, where Slurm
jobs run, and a study kept there resumes with the sweep. A trial stopped by a kill is marked FAIL with
`interrupted`; a resumed search asks for it again with the same values, and the sweep hands that child
its old run to go on with (`runs.continue_child`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .search_space import Param, SearchSpec, parse_search  # noqa: F401  (the search's vocabulary, re-exported)

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from .loop import EpochStats, TrainResult

OBJECTIVE_SELECT = {"f1_macro": "f1", "ccc_mean": "ccc"}
"""An objective's `--select` (the other objectives are their own select choice): each trial keeps the
checkpoint its objective scores best, so a trial's value is its run's `best_dev_<objective>`."""
JOURNAL = "optuna.journal"
INTERRUPTED = "interrupted"
ERROR = "error"
RUN_ID = "run_id"


def select_for(objective: str) -> str:
    """The `select` choice that keeps each trial's checkpoint by the search's objective."""
    return OBJECTIVE_SELECT.get(objective, objective)


def default_storage(tracking_uri: str) -> str:
    """Beside the tracking store: `optuna.journal` next to a SQLite file; else the project's
    `experiments/optuna.journal` (a server's tables are MLflow's, and Optuna's own migrations would
    collide with them in one database)."""
    from ..tracking.uri import EXPERIMENTS_DIR, sqlite_path

    db = sqlite_path(tracking_uri)
    folder = db.parent if db is not None else Path(EXPERIMENTS_DIR).resolve()
    return str(folder / JOURNAL)


def _storage(spec: str) -> Any:
    """A database URL as it is; anything else is a journal file (made with its folder)."""
    if "://" in spec:
        return spec
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(spec).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(spec))


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our table says what its INFO lines would


@dataclass(frozen=True)
class TrialRef:
    """What a child needs to report to its trial: plain values, so a job spec can carry it."""

    storage: str
    study: str
    number: int
    trial_id: int
    objective: str
    pruner: str = "median"
    startup_trials: int = 5
    prune_warmup: int = 1


def _pruner(kind: str, startup_trials: int, prune_warmup: int) -> Any:
    import optuna

    if kind == "none":
        return optuna.pruners.NopPruner()
    # steps are epochs (1, 2, ...): the earliest a trial is pruned is after epoch `prune_warmup`
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=prune_warmup)


# -- the child's side ----------------------------------------------------------------------------------

class TrialReporter:
    """The child's link to its trial: an `EpochHook` that reports and prunes, and the final tell."""

    def __init__(self, ref: TrialRef) -> None:
        import optuna

        _quiet()
        self.ref = ref
        self.study = optuna.load_study(study_name=ref.study, storage=_storage(ref.storage),
                                       pruner=_pruner(ref.pruner, ref.startup_trials, ref.prune_warmup))
        self.trial = optuna.trial.Trial(self.study, ref.trial_id)
        self._run_id: str | None = None

    def on_epoch(self, run_id: str | None, stats: "EpochStats") -> str | None:
        if run_id and run_id != self._run_id:
            self._run_id = run_id
            self.trial.set_user_attr(RUN_ID, run_id)
        value = stats.dev.get(self.ref.objective, math.nan)
        if math.isnan(value):
            return None
        self.trial.report(value, stats.epoch)
        if self.trial.should_prune():
            return (f"pruned after epoch {stats.epoch}: dev {self.ref.objective} {value:.4f} is below the median "
                    "of earlier trials there")
        return None

    def finished(self, result: "TrainResult") -> float | None:
        """Tell the study how the trial ended; returns its value (None when pruned or NaN)."""
        from optuna.trial import TrialState

        if result.pruned is not None:
            self.study.tell(self.ref.number, state=TrialState.PRUNED, skip_if_finished=True)
            return None
        value = result.best.get(self.ref.objective, math.nan)
        if value is None or math.isnan(value):
            self.failed(f"dev {self.ref.objective} is NaN (constant predictions)")
            return None
        self.study.tell(self.ref.number, value, skip_if_finished=True)
        return value

    def failed(self, reason: str, *, interrupted: bool = False) -> None:
        from optuna.trial import TrialState

        try:
            self.trial.set_user_attr(INTERRUPTED if interrupted else ERROR, True if interrupted else reason[:500])
            self.study.tell(self.ref.number, state=TrialState.FAIL, skip_if_finished=True)
        except Exception:  # noqa: BLE001 - the trial may be finished already; the sweep settles it
            pass


# -- the sweep's side ----------------------------------------------------------------------------------

@dataclass
class Asked:
    """One trial the sweep asked for: its number, storage id and values."""

    number: int
    trial_id: int
    params: dict[str, Any]


@dataclass
class Search:
    """The study behind one search sweep (the sweep process's side)."""

    spec: SearchSpec
    objective: str
    trials: int
    storage: str
    name: str
    study: "optuna.Study" = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import optuna

        _quiet()
        storage = _storage(self.storage)
        try:  # the sampler's seed moves on with the study, so a resumed search does not replay its first draws
            done = len(optuna.load_study(study_name=self.name, storage=storage).trials)
        except KeyError:
            done = 0
        self.study = optuna.create_study(
            study_name=self.name, storage=storage, direction="maximize", load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=self.spec.seed + done),
            pruner=_pruner(self.spec.pruner, self.spec.startup_trials, self.spec.prune_warmup))

    def ref(self, asked: Asked) -> TrialRef:
        return TrialRef(self.storage, self.name, asked.number, asked.trial_id, self.objective, self.spec.pruner,
                        self.spec.startup_trials, self.spec.prune_warmup)

    def counted(self) -> int:
        """Trials that count toward `trials`: finished, pruned, or failed on their own (not killed)."""
        from optuna.trial import TrialState

        return sum(1 for t in self.study.get_trials(deepcopy=False)
                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                   or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED)))

    def running(self) -> list[int]:
        from optuna.trial import TrialState

        return [t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]

    def requeue_interrupted(self) -> int:
        """Ask again, with the same values, for every trial a kill stopped that no later trial repeats."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)

        def values(t: Any) -> dict[str, Any]:
            return t.params or t.system_attrs.get("fixed_params", {})

        again = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED)
                 and not any(u.number > t.number and values(u) == values(t) for u in trials)]
        for t in again:
            self.study.enqueue_trial(dict(t.params), user_attrs={"again": t.number})
        return len(again)

    def ask(self) -> Asked:
        trial = self.study.ask({p.name: p.distribution() for p in self.spec.params})
        return Asked(trial.number, trial._trial_id, dict(trial.params))  # the id a child's Trial needs

    def tell(self, number: int, value: float | None = None, *, state: str = "COMPLETE", reason: str | None = None,
             interrupted: bool = False) -> None:
        """Settle a trial for its child (a value another run of the same config had; a job that died
        without telling). A trial already finished is left as it is."""
        import optuna
        from optuna.trial import TrialState

        trial = next((t for t in self.study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None or trial.state.is_finished():
            return
        live = optuna.trial.Trial(self.study, trial._trial_id)
        if state == "FAIL":
            live.set_user_attr(INTERRUPTED if interrupted else ERROR, True if interrupted else (reason or "")[:500])
        self.study.tell(number, value if state == "COMPLETE" else None, state=TrialState[state])

    def state(self, number: int) -> str:
        return next(t.state.name for t in self.study.get_trials(deepcopy=False) if t.number == number)

    def best(self) -> "optuna.trial.FrozenTrial | None":
        from optuna.trial import TrialState

        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return max(done, key=lambda t: t.value) if done else None

    def table(self) -> "pd.DataFrame":
        """One row per trial: number, state, value, run id, error, and each searched option's value."""
        import pandas as pd

        rows = []
        for t in self.study.get_trials(deepcopy=False):
            row: dict[str, Any] = {"trial": t.number, "state": t.state.name, "value": t.value,
                                   "run_id": t.user_attrs.get(RUN_ID)}
            row.update({p: t.params.get(p) for p in self.spec.names})
            row["note"] = "interrupted" if t.user_attrs.get(INTERRUPTED) else t.user_attrs.get(ERROR)
            rows.append(row)
        return pd.DataFrame(rows)

    def set_run(self, number: int, run_id: str) -> None:
        import optuna

        trial = next((t for t in self.study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is not None and not trial.state.is_finished():
            optuna.trial.Trial(self.study, trial._trial_id).set_user_attr(RUN_ID, run_id)
