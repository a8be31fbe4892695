"""Tracked training runs: start one (`train`), or go on with a killed one (`resume`).

The caller builds the `Tracker` once and hands it in; this module resolves what the run starts from
(`--init-from`), prepares the session (so bad data never leaves a failed run behind), starts or reopens
the MLflow run, and hands the loop its run logger. Ranks other than 0 get a logger that logs nothing
from the tracker itself.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import launch
from ..errors import NotFound, SertoolError
from ..store.layout import StoreLayout
from ..tracking.names import INIT_FROM_TAG, REFIT_TAG, RESUME_TAG, SELECT_TAG, SPLITS_TAG, STAGE_TAG, STORE_TAG
from .checkpoint import CheckpointInfo
from .config import REFIT_ON, TrainConfig
from .lineage import store_label
from .loop import TrainResult, fit, prepare
from .parts import ARCH_FIELDS, InitCheckpoint
from .resume import ResumeState, state_path

if TYPE_CHECKING:
    from rich.console import Console

    from ..tracking.tracker import Tracker

RESUMABLE = ("RUNNING", "FAILED", "KILLED")
"""Statuses a run can be resumed from (a FINISHED run is done)."""


def train(
    config: TrainConfig,
    layout: StoreLayout,
    tracker: "Tracker",
    *,
    parent_run_id: str | None = None,
    console: "Console | None" = None,
) -> TrainResult:
    """Train one model as `config` says on the store at `layout`, tracked as one run of `tracker`.

    Runs of the experiment whose process was killed are marked FAILED first (they can be resumed);
    SIGTERM stops this run like Ctrl-C does (marked KILLED, resumable)."""
    tracker.reap_orphans(config.experiment)
    with launch.sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="sertool-init-") as tmp:
        init = _init_checkpoint(tracker, config.init_from, Path(tmp)) if config.init_from else None
        result = _tracked(config, layout, tracker, init, parent_run_id, console)
        if config.refit_epochs and result.run_id:
            # the same start (fresh, or the same checkpoint), now on Train + Development for N epochs
            again = replace(config, epochs=config.refit_epochs, refit_epochs=None, early_stop=None,
                            run_name=f"{config.run_label}-refit")
            result.refit = _tracked(again, layout, tracker, init, result.run_id, console, refit=True)
    return result


def _tracked(config: TrainConfig, layout: StoreLayout, tracker: "Tracker", init: InitCheckpoint | None,
             parent_run_id: str | None, console: "Console | None", *, refit: bool = False) -> TrainResult:
    with prepare(config, layout, init=init, refit=refit) as session:
        run = tracker.start(
            "train", experiment=config.experiment, run_name=config.run_label, parent_run_id=parent_run_id,
            tags={STAGE_TAG: config.stage, INIT_FROM_TAG: config.init_from, STORE_TAG: store_label(layout),
                  SPLITS_TAG: config.splits, SELECT_TAG: config.select, REFIT_TAG: REFIT_ON if refit else None},
        )
        with run:
            path = state_path(run.run_id) if run.run_id else None
            if path is not None:
                run.set_tags({RESUME_TAG: str(path)})
            result = fit(session, run, resume_path=path, console=console)
    _forget_state(path)
    return result


def resume(ref: str, layout: StoreLayout, tracker: "Tracker", *, experiment: str | None = None,
           console: "Console | None" = None) -> TrainResult:
    """Go on with a killed or failed training run from its last finished epoch, in the same MLflow run."""
    tracker.reap_orphans(experiment)
    info = tracker.resolve_run(ref, experiment)
    if info.kind != "train":
        raise SertoolError(f"run {info.name} ({info.run_id[:8]}) is a {info.kind} run; only training runs resume")
    if info.status not in RESUMABLE:
        raise SertoolError(f"run {info.name} ({info.run_id[:8]}) is {info.status}: nothing to resume")
    path = Path(info.tags.get(RESUME_TAG) or state_path(info.run_id))
    state = ResumeState.load(path)
    with tempfile.TemporaryDirectory(prefix="sertool-resume-") as tmp:
        config = TrainConfig.from_dict(tracker.load_config(info.run_id, Path(tmp)))
    logged = frozenset(tracker.metric_steps(info.run_id, "train_loss"))
    with launch.sigterm_as_interrupt(), prepare(config, layout, refit=bool(info.tags.get(REFIT_TAG))) as session:
        with tracker.reopen(info.run_id) as run:
            result = fit(session, run, resume=state, resume_path=path, logged_epochs=logged, console=console)
    _forget_state(path)
    return result


def _forget_state(path: Path | None) -> None:
    """A finished run's resume state is dead weight (a model, optimizer and best weights)."""
    if path is not None:
        shutil.rmtree(path.parent, ignore_errors=True)


def _init_checkpoint(tracker: "Tracker", run_id: str, tmp: Path) -> InitCheckpoint:
    weights, cfg = tracker.load_checkpoint(run_id, tmp / "init")
    return InitCheckpoint(weights, CheckpointInfo.from_dict(cfg, f"run {run_id}"), f"--init-from {run_id}")


# -- what a fine-tune starts from --------------------------------------------------------------------

def resolve_init_from(tracker: "Tracker", spec: str, experiment: str | None = None) -> str:
    """A run id from `--init-from`: a run id, id prefix or run name, or `best:METRIC` = the finished
    pre-training run of the experiment with the highest METRIC (`best:ccc`, `best:best_dev_f1_macro`),
    so that fine-tuning recipes can name their starting point before it exists."""
    if not spec.startswith("best:"):
        return tracker.resolve_run(spec, experiment).run_id
    from ..metrics import tracked_name

    alias = spec.split(":", 1)[1]
    metric = tracked_name(alias)
    runs = tracker.find_runs(
        experiment, filter_string=f"attributes.status = 'FINISHED' and tags.`{STAGE_TAG}` = 'pretrain'",
        order_by=[f"metrics.`{metric}` DESC"], kind="train",
    )
    runs = [r for r in runs if metric in r.metrics]
    # A run kept its checkpoint by one metric (--select): "the best pre-trained model by macro-F1" is
    # a run whose checkpoint was kept by macro-F1, where there is one.
    kept_by = [r for r in runs if r.tags.get(SELECT_TAG) and tracked_name(r.tags[SELECT_TAG]) == metric]
    runs = kept_by or runs
    if not runs:
        raise NotFound(f"--init-from {spec}: no finished pre-training run with metric {metric} in the experiment")
    return runs[0].run_id


def inherited_arch(tracker: "Tracker", run_id: str) -> dict[str, Any]:
    """The architecture of a logged checkpoint (dims, pooling, encoders), as defaults for a fine-tune:
    flags and recipes still win, and a mismatch is refused when the weights are loaded."""
    with tempfile.TemporaryDirectory(prefix="sertool-init-") as tmp:
        _, cfg = tracker.load_checkpoint(run_id, tmp)
    info = CheckpointInfo.from_dict(cfg, f"run {run_id}")
    out: dict[str, Any] = {k: info.fusion[k] for k in ARCH_FIELDS if k in info.fusion}
    out["encoders"] = tuple(info.encoders)
    return out


def init_resolver(tracker: "Tracker", experiment: str | None = None):
    """The `resolve_init` hook of `recipes.resolve_config` for this tracker."""

    def resolve_init(spec: str) -> tuple[str, dict[str, Any]]:
        run_id = resolve_init_from(tracker, spec, experiment)
        return run_id, inherited_arch(tracker, run_id)

    return resolve_init
