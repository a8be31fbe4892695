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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import launch
from ..errors import NotFound, SertoolError
from ..store.layout import StoreLayout
from ..tracking.names import (
    INIT_FROM_TAG, PRUNED_TAG, REFIT_TAG, RESUME_TAG, SELECT_TAG, SPLITS_TAG, STAGE_TAG, STORE_TAG,
)
from .checkpoint import CheckpointInfo
from .config import REFIT_ON, TrainConfig
from .lineage import store_label
from .loop import EpochHook, TrainResult, fit, prepare
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
    tags: Mapping[str, Any] | None = None,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train one model as `config` says on the store at `layout`, tracked as one run of `tracker`.

    Runs of the experiment whose process was killed are marked FAILED first (they can be resumed);
    SIGTERM stops this run like Ctrl-C does (marked KILLED, resumable). `tags` go on the run when it is
    created (a sweep's child key: a kill a moment later still leaves it findable); `on_epoch`: see
    `loop.EpochHook`."""
    tracker.reap_orphans(config.experiment)
    with launch.sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="sertool-init-") as tmp:
        init = _init_checkpoint(tracker, config.init_from, Path(tmp)) if config.init_from else None
        result = _tracked(config, layout, tracker, init, parent_run_id, console, tags=tags, on_epoch=on_epoch)
        if config.refit_epochs and result.run_id and result.pruned is None:
            # the same start (fresh, or the same checkpoint), now on Train + Development for N epochs
            again = replace(config, epochs=config.refit_epochs, refit_epochs=None, early_stop=None,
                            run_name=f"{config.run_label}-refit")
            result.refit = _tracked(again, layout, tracker, init, result.run_id, console, refit=True)
    return result


def _tracked(config: TrainConfig, layout: StoreLayout, tracker: "Tracker", init: InitCheckpoint | None,
             parent_run_id: str | None, console: "Console | None", *, refit: bool = False,
             tags: Mapping[str, Any] | None = None, on_epoch: EpochHook | None = None) -> TrainResult:
    with prepare(config, layout, init=init, refit=refit) as session:
        run = tracker.start(
            "train", experiment=config.experiment, run_name=config.run_label, parent_run_id=parent_run_id,
            tags={STAGE_TAG: config.stage, INIT_FROM_TAG: config.init_from, STORE_TAG: store_label(layout),
                  SPLITS_TAG: config.splits, SELECT_TAG: config.select, REFIT_TAG: REFIT_ON if refit else None,
                  **(tags or {})},
        )
        with run:
            path = state_path(run.run_id) if run.run_id else None
            if path is not None:
                run.set_tags({RESUME_TAG: str(path)})
            result = fit(session, run, resume_path=path, console=console, on_epoch=on_epoch)
    _forget_state(path)
    return result


def resume(ref: str, layout: StoreLayout, tracker: "Tracker", *, experiment: str | None = None,
           console: "Console | None" = None) -> TrainResult:
    """Go on with a killed or failed training run from its last finished epoch, in the same MLflow run."""
    tracker.reap_orphans(experiment)
    info = _resumable(tracker.resolve_run(ref, experiment))
    path = Path(info.tags.get(RESUME_TAG) or state_path(info.run_id))
    state = ResumeState.load(path)
    with tempfile.TemporaryDirectory(prefix="sertool-resume-") as tmp:
        config = TrainConfig.from_dict(tracker.load_config(info.run_id, Path(tmp)))
    return _go_on(info.run_id, config, state, path, layout, tracker, refit=bool(info.tags.get(REFIT_TAG)),
                  console=console)


def continue_child(run_id: str, config: TrainConfig, layout: StoreLayout, tracker: "Tracker", *,
                   tags: Mapping[str, Any] | None = None, on_epoch: EpochHook | None = None,
                   console: "Console | None" = None) -> TrainResult:
    """Go on with a sweep's killed or failed child in its own run: from its resume state as `resume`
    does where it has one, else from the first epoch (it died before finishing one). Either way the
    sweep never makes a second run of the same child. `config` is the sweep's (same digest as the run's)."""
    info = _resumable(tracker.get_run(run_id))
    path = Path(info.tags.get(RESUME_TAG) or state_path(info.run_id))
    state = ResumeState.load(path) if path.is_file() else None
    with tempfile.TemporaryDirectory(prefix="sertool-init-") as tmp:
        init = _init_checkpoint(tracker, config.init_from, Path(tmp)) if config.init_from and state is None else None
        return _go_on(run_id, config, state, path, layout, tracker, refit=False, tags=tags, on_epoch=on_epoch,
                      console=console, init=init)


def _resumable(info: Any) -> Any:
    """The run, if it is a training run that stopped before its end (else one line saying why not)."""
    if info.kind != "train":
        raise SertoolError(f"run {info.name} ({info.run_id[:8]}) is a {info.kind} run; only training runs resume")
    if info.tags.get(PRUNED_TAG):
        raise SertoolError(f"run {info.name} ({info.run_id[:8]}) was pruned by its search "
                           f"({info.tags[PRUNED_TAG]}): nothing to resume")
    if info.status not in RESUMABLE:
        raise SertoolError(f"run {info.name} ({info.run_id[:8]}) is {info.status}: nothing to resume")
    return info


def _go_on(run_id: str, config: TrainConfig, state: ResumeState | None, path: Path, layout: StoreLayout,
           tracker: "Tracker", *, refit: bool, tags: Mapping[str, Any] | None = None,
           on_epoch: EpochHook | None = None, console: "Console | None" = None,
           init: InitCheckpoint | None = None) -> TrainResult:
    """Train `run_id` on from `state` (None: from scratch, or from `init`); epochs it logged already are
    not logged twice."""
    logged = frozenset(tracker.metric_steps(run_id, "train_loss"))
    with launch.sigterm_as_interrupt(), prepare(config, layout, init=init, refit=refit) as session:
        with tracker.reopen(run_id) as run:
            run.set_tags({RESUME_TAG: str(path), **(tags or {})})
            result = fit(session, run, resume=state, resume_path=path, logged_epochs=logged, console=console,
                         on_epoch=on_epoch)
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
