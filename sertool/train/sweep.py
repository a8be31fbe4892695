"""`sertool sweep`: a recipe's grid (or an Optuna search) as child runs of one parent run.

Every child's config is resolved (and so validated) before the first one trains: a typo in the last
grid point must not surface after hours of training. The parent run (`sertool.kind=sweep`) holds the
recipe file and, at the end, a summary table of its children.

A child is keyed by the digest of its resolved config (`sertool.sweep.key` on its run), which makes a
sweep resumable: `--resume PARENT` reopens the parent, skips the children that FINISHED (their runs are
not touched), goes on with each FAILED or KILLED one in its own run (from its last epoch where it saved
one), trains the rest, and never makes a second run of a child. Where the children run is the
launcher's business (`train.launchers`): here, one at a time, in this process; a pool of processes on
this machine's devices; or submitit jobs. A search (`train.search`) asks its study for each trial's
values and runs each trial as a child the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import launch as process
from ..errors import InvalidOption, SertoolError
from ..store.layout import StoreLayout
from ..tracking.names import (
    HOST_TAG, LAUNCHER_TAG, PID_START_TAG, PID_TAG, RECIPE_DIR, RECIPE_TAG, SWEEP_DIR_TAG, SWEEP_KEY_TAG,
    SWEEP_MODE_TAG, SWEEP_SUMMARY,
)
from .child import URI_ENV, ChildJob, secret_uri
from .config import TrainConfig
from .cluster import check_cluster
from .launchers import LaunchOptions, make_launcher, plan_slots
from .recipes import Recipe, resolve_config
from .sweep_runs import children_by_key, find_parent, reap_slurm, run_row, stopped_before
from .sweep_view import SweepView

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from ..tracking.logger import RunLogger
    from ..tracking.records import RunInfo
    from ..tracking.tracker import Tracker
    from .child import Ended
    from .launchers import Launcher

SWEEPS_DIR = Path("experiments") / "sweeps"
"""The project's folder of sweep work dirs (`<parent run id>/`: job specs, status files, job logs)."""
POLL_S = 0.5
DONE = "done before"


@dataclass
class SweepResult:
    parent_run_id: str | None
    swept: list[str]
    """The option names the grid (or search) varies."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One row per child (a search: per trial), read back from the tracker."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(child, why) of the children that failed or were stopped."""
    best: dict[str, Any] | None = None
    """A search's best trial: trial, run_id, objective, value, params."""
    mode: str = "grid"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> "pd.DataFrame":
        """One row per child: its grid values, status, run id, selected epoch and best dev figures."""
        import pandas as pd

        return pd.DataFrame(self.rows)


@dataclass
class Planned:
    """A child to run: its grid values, resolved config and key."""

    values: dict[str, Any]
    config: TrainConfig

    @property
    def key(self) -> str:
        return self.config.digest()

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.values.items()) or "base"


def plan_sweep(recipe: Recipe, overrides: dict[str, Any] | None = None, resolve_init=None) -> list[TrainConfig]:
    """Every child's resolved config, in grid order (raises on the first invalid one)."""
    if not recipe.children:
        hint = " (it has a [search]: add --search optuna)" if recipe.search is not None else ""
        raise SertoolError(f"{recipe.path}: has no [sweep] table{hint}; run it with `sertool train --recipe`")
    given = {k for k, v in (overrides or {}).items() if v is not None}
    clash = sorted(given & set(recipe.swept_keys))
    if clash:
        raise InvalidOption(clash[0], "the recipe's sweep varies it; edit the grid instead")
    configs = [resolve_config(recipe, overrides, child, resolve_init) for child in recipe.children]
    keys = [c.digest() for c in configs]
    twins = next((i for i, k in enumerate(keys) if keys.index(k) != i), None)
    if twins is not None:
        raise SertoolError(f"{recipe.path}: grid points {recipe.children[keys.index(keys[twins])]} and "
                           f"{recipe.children[twins]} train the same config")
    return configs


def run_sweep(
    recipe: Recipe,
    layout: StoreLayout,
    tracker: "Tracker",
    *,
    overrides: dict[str, Any] | None = None,
    console: "Console | None" = None,
    launch: LaunchOptions | None = None,
    search: "SearchOptions | None" = None,
    resume: str | None = None,
) -> SweepResult:
    """Run every grid point of `recipe` (or `search`'s trials) as a child run of one parent `sweep` run,
    as `launch` says; `resume`: the parent (id, prefix or name) of an earlier run of this sweep."""
    from .recipes import ensure_scheme
    from .runs import init_resolver

    launch = launch or LaunchOptions()
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    experiment = overrides.get("experiment") or recipe.base.get("experiment")
    check_cluster(launch, tracker.uri, tracker.shown_uri)
    mode = "optuna" if search is not None else "grid"
    tracker.reap_orphans(experiment)  # a killed sweep's runs are FAILED now, its live ones still RUNNING
    parent_info = find_parent(tracker, resume, experiment, recipe, mode) if resume else None
    if search is not None:
        from .sweep_search import prepare_search

        prepare_search(recipe, search, overrides, parent_info)  # each trial then selects by its objective
    resolve_init = init_resolver(tracker, experiment)
    planned: list[Planned] = []
    if search is not None:
        base = resolve_config(recipe, overrides, None, resolve_init)
    else:
        configs = plan_sweep(recipe, overrides, resolve_init)
        planned = [Planned(values, config) for values, config in zip(recipe.children, configs, strict=True)]
        base = configs[0]
    slots = plan_slots(launch, overrides.get("device") or base.device)
    existing = children_by_key(tracker, parent_info.run_id) if parent_info else {}
    existing.update(reap_slurm(tracker, existing))
    busy = [r for r in existing.values() if r.status == "RUNNING" and process.alive(
        r.tags.get(HOST_TAG, ""), r.tags.get(PID_TAG, "0"), r.tags.get(PID_START_TAG, ""))]
    if busy:
        raise SertoolError(f"sweep {parent_info.name} is still running here: child run {busy[0].name} "
                           f"({busy[0].run_id[:8]}, pid {busy[0].tags.get(PID_TAG)}); stop it first")
    if parent_info is None and console is not None and (stopped := stopped_before(tracker, experiment, recipe)):
        console.print(f"note: sweep {stopped.name} ({stopped.run_id[:8]}) stopped before its end ({stopped.status}); "
                      f"`--resume {stopped.run_id[:8]}` goes on with it instead of starting again", highlight=False)
    if made := ensure_scheme(recipe, layout.catalog):
        if console is not None:
            console.print(f"made split scheme {made!r} as the recipe's [scheme] says", highlight=False)
    result = SweepResult(None, recipe.search.names if search is not None else recipe.swept_keys, mode=mode)
    opened = tracker.reopen(parent_info.run_id) if parent_info else tracker.start(
        "sweep", experiment=experiment, run_name=recipe.sweep_name,
        tags={RECIPE_TAG: str(recipe.path) if recipe.path else None, SWEEP_MODE_TAG: mode})
    with process.sigterm_as_interrupt(), opened as parent:
        result.parent_run_id = parent.run_id
        if parent.run_id is None:
            return result
        workdir = (SWEEPS_DIR / parent.run_id).resolve()
        launcher = make_launcher(launch, slots, workdir, console)
        if launcher.name != "inline":  # children in other processes: their specs, status files and logs
            workdir.mkdir(parents=True, exist_ok=True)
        parent.set_tags({SWEEP_DIR_TAG: str(workdir) if launcher.name != "inline" else None,
                         LAUNCHER_TAG: launcher.name})
        if parent_info is None:
            parent.log_params({"sweep.swept": ",".join(result.swept),
                               **{f"recipe.{k}": v for k, v in recipe.base.items()}})
        if recipe.path is not None:
            parent.log_artifact(recipe.path, RECIPE_DIR)
        ctx = Context(recipe, layout, tracker, overrides, parent, workdir, launcher, existing, result,
                      SweepView(None if launcher.name == "inline" else console, f"sweep {recipe.sweep_name}"), console)
        with ctx.view, _uri_for_children(tracker.uri):
            try:
                if search is not None:
                    from .sweep_search import run_search

                    run_search(ctx, search, parent_info, resolve_init)
                else:
                    _run_grid(ctx, planned)
            except KeyboardInterrupt:
                _stop(ctx)
                raise
        tracker.reap_orphans(experiment)
        if mode == "grid":
            result.rows = _grid_rows(ctx, planned)
        if result.rows:
            parent.log_table(result.summary(), SWEEP_SUMMARY)
        if result.failed:
            parent.finalize("FAILED")
    return result


@dataclass
class Context:
    """What the sweep's loop works with (one per `run_sweep`)."""

    recipe: Recipe
    layout: StoreLayout
    tracker: "Tracker"
    overrides: dict[str, Any]
    parent: "RunLogger"
    workdir: Path
    launcher: "Launcher"
    existing: dict[str, "RunInfo"]
    """Children the parent has already, by key."""
    result: SweepResult
    view: SweepView
    console: "Console | None"
    errors: dict[str, str] = field(default_factory=dict)
    """Why a child failed or stopped, by key (a child may fail before it has a run to say so)."""

    def job(self, key: str, label: str, config: TrainConfig, **extra: Any) -> ChildJob:
        layout, tracker = self.layout, self.tracker
        return ChildJob(key=key, label=label, config=config.to_dict(), parent_run_id=str(self.parent.run_id),
                        tracking_uri=None if secret_uri(tracker.uri) else tracker.uri, experiment=tracker.experiment, store_root=str(layout.root.resolve()),
                        catalog_file=str(layout.catalog_file.resolve()) if layout.catalog_file else None,
                        embeddings_url=layout.embeddings_url,
                        workdir=None if self.launcher.name == "inline" else str(self.workdir), **extra)

    def start(self, job: ChildJob, announce: str) -> None:
        if self.launcher.name == "inline" and self.console is not None:
            self.console.print(f"[bold]sweep {self.recipe.sweep_name}[/]: {announce}", markup=True, highlight=False)
        self.view.set(job.key, state="starting")
        self.launcher.start(job)

    def ended(self, ended: "Ended") -> None:
        """Record how a child ended; a failure is reported, and the other children go on."""
        run = self.tracker.find_runs(kind="train", parent_run_id=str(self.parent.run_id),
                                     filter_string=f"tags.`{SWEEP_KEY_TAG}` = '{ended.job.key}'")
        run_id = run[0].run_id if run else None
        if run and run[0].status == "RUNNING" and ended.state in ("killed", "failed"):
            self.tracker.end_run(run_id, "KILLED" if ended.state == "killed" else "FAILED")
        if run:
            self.existing[ended.job.key] = self.tracker.get_run(run_id)
        self.view.set(ended.job.key, state=ended.state, run_id=run_id, note=ended.error)
        if ended.state in ("failed", "killed"):
            self.errors[ended.job.key] = ended.error or ended.state
            self.result.failed.append((ended.job.label, ended.error or ended.state))
            if self.console is not None and self.launcher.name == "inline":
                self.console.print(f"[bold red]child failed[/]: {ended.job.label}: {ended.error}", markup=True,
                                   highlight=False)

    def tick(self) -> list["Ended"]:
        """Record the children that ended, redraw, and wait a little while others run."""
        ended = self.launcher.poll()
        for e in ended:
            self.ended(e)
        self.view.refresh(self.launcher.running())
        if self.launcher.running() and not ended:
            time.sleep(POLL_S)
        return ended


def _run_grid(ctx: Context, planned: list[Planned]) -> None:
    queue: list[ChildJob] = []
    for p in planned:
        run = ctx.existing.get(p.key)
        ctx.view.add(p.key, p.label)
        if run is not None and run.status == "FINISHED":
            ctx.view.set(p.key, state=DONE, run_id=run.run_id)
        elif run is not None and run.status == "RUNNING":  # on another host: we cannot know; leave it be
            ctx.view.set(p.key, state="elsewhere", run_id=run.run_id)
            ctx.result.notes.append(f"{p.label}: run {run.run_id[:8]} is RUNNING on {run.tags.get(HOST_TAG)}")
        else:
            queue.append(ctx.job(p.key, p.label, p.config, resume_run_id=run.run_id if run else None))
    if ctx.existing:
        done = sum(1 for p in planned if ctx.existing.get(p.key) and ctx.existing[p.key].status == "FINISHED")
        again = sum(1 for j in queue if j.resume_run_id)
        ctx.result.notes.insert(0, f"resumed: {done} of {len(planned)} children had finished, {again} go on in their "
                                   f"own runs, {len(queue) - again} start")
    total = len(queue)
    while queue or ctx.launcher.running():
        while queue and ctx.launcher.free() > 0:
            job = queue.pop(0)
            ctx.start(job, f"run {total - len(queue)}/{total} ({job.label})")
        ctx.tick()


@contextmanager
def _uri_for_children(uri: str) -> Iterator[None]:
    """A URI with a password goes to children (pool processes, submitit jobs, which copy this process's
    environment when they start) in their environment, not in their job files."""
    if not secret_uri(uri):
        yield
        return
    before = os.environ.get(URI_ENV)
    os.environ[URI_ENV] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(URI_ENV, None)
        else:
            os.environ[URI_ENV] = before


def _stop(ctx: Context) -> None:
    """Ctrl-C (or SIGTERM): stop every running child and mark its run KILLED."""
    running = {job.key for job in ctx.launcher.running()}
    for ended in ctx.launcher.stop_all():
        ctx.ended(ended)
    for run in ctx.tracker.find_runs(kind="train", parent_run_id=str(ctx.parent.run_id),
                                     filter_string="attributes.status = 'RUNNING'"):
        if run.tags.get(SWEEP_KEY_TAG) in running:
            ctx.tracker.end_run(run.run_id, "KILLED")
    ctx.view.refresh([])


def _grid_rows(ctx: Context, planned: list[Planned]) -> list[dict[str, Any]]:
    children = children_by_key(ctx.tracker, str(ctx.parent.run_id))
    rows = []
    for p in planned:
        run = children.get(p.key)
        row: dict[str, Any] = {k: p.values.get(k) for k in ctx.result.swept}
        row.update(run_row(run))
        if run is None and p.key in ctx.errors:
            row["status"] = "FAILED (no run)"
        rows.append(row)
    if ctx.errors:
        for row, p in zip(rows, planned, strict=True):
            row["error"] = ctx.errors.get(p.key)
    return rows


def _short(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return ",".join(map(str, v))
    return f"{v:.4g}" if isinstance(v, float) else str(v)


if TYPE_CHECKING:
    from .sweep_search import SearchOptions
