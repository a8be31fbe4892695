"""`sertool sweep --search optuna`: the sweep's loop for a search (ask a trial, run it as a child, settle it).

The study (`train.search.Search`) decides what to try; the sweep's launcher runs each trial as a child
run, exactly as a grid's; the child reports its epochs and tells the study how it ended. This side
settles what a child could not tell (it was killed, or died), reuses the figures of a config trained
already (a search may ask for the same values twice: the child is never trained twice), and, at the end,
logs the best trial on the parent: its values as tags, its run's figures as metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOption, SertoolError
from ..metrics import METRIC_NAMES, best
from ..tracking.names import (
    BEST_PARAM_PREFIX, BEST_RUN_TAG, BEST_TRIAL_TAG, HOST_TAG, OBJECTIVE_TAG, PRUNED_TAG, SEARCH_TRIALS, STUDY_STORAGE_TAG,
    STUDY_TAG, TRIAL_TAG,
)
from .recipes import resolve_config
from .search import RUN_ID, Asked, Search, default_storage, select_for
from .sweep import _short
from .sweep_runs import children_by_key, run_row

if TYPE_CHECKING:
    from ..tracking.records import RunInfo
    from .recipes import Recipe
    from .sweep import Context


@dataclass
class SearchOptions:
    """`--search optuna` and its flags (the recipe's `[search.study]` fills what is not given)."""

    objective: str | None = None
    trials: int | None = None
    storage: str | None = None
    """An Optuna storage: a database URL, or a journal file path (default: beside the tracking store)."""


def prepare_search(recipe: "Recipe", opts: SearchOptions, overrides: dict[str, Any],
                   parent: "RunInfo | None" = None) -> None:
    """Check the search before anything starts; fills `opts` from the recipe and `overrides["select"]`
    from the objective (unless the recipe or a flag chose a select)."""
    spec = recipe.search
    if spec is None:
        raise InvalidOption("search", f"{recipe.path} has no [search] table to search")
    clash = sorted(set(overrides) & set(spec.names))
    if clash:
        raise InvalidOption(clash[0], "the recipe's search varies it; edit the [search] table instead")
    stage = overrides.get("stage") or recipe.base.get("stage", "pretrain")
    was = parent.tags.get(OBJECTIVE_TAG) if parent is not None else None
    objective = opts.objective or spec.objective or was or ("f1_macro" if stage == "task1" else "ccc_mean")
    if objective not in METRIC_NAMES:
        raise InvalidOption("objective", f"{objective!r} is not one of {', '.join(METRIC_NAMES)}")
    if was is not None and objective != was:
        raise InvalidOption("objective", f"sweep {parent.name} searched for {was}; resume it with that objective")
    trials = opts.trials or spec.trials
    if trials is None or trials < 1:
        raise InvalidOption("trials", "how many trials: --trials N (or trials = N in [search.study])")
    opts.objective, opts.trials = objective, trials
    if "select" not in overrides and "select" not in recipe.base and "select" not in spec.names:
        overrides["select"] = select_for(objective)


def run_search(ctx: "Context", opts: SearchOptions, parent: "RunInfo | None", resolve_init: Any) -> None:
    """Run trials until `opts.trials` count (finished, pruned or failed on their own), then log the best."""
    spec = ctx.recipe.search
    assert spec is not None and opts.objective is not None and opts.trials is not None
    run_id = str(ctx.parent.run_id)
    if parent is not None and parent.tags.get(STUDY_TAG):
        name, storage = parent.tags[STUDY_TAG], parent.tags[STUDY_STORAGE_TAG]
    else:
        name, storage = f"{ctx.recipe.sweep_name}-{run_id[:8]}", opts.storage or default_storage(ctx.tracker.uri)
    ctx.parent.set_tags({STUDY_TAG: name, STUDY_STORAGE_TAG: storage, OBJECTIVE_TAG: opts.objective})
    search = Search(spec, opts.objective, opts.trials, storage, name)
    elsewhere = _settle_stale(ctx, search)
    again = search.requeue_interrupted()
    remaining = opts.trials - search.counted() - elsewhere
    if parent is not None:
        ctx.result.notes.insert(0, f"resumed study {name}: {search.counted()} of {opts.trials} trials counted, "
                                   f"{again} stopped ones asked again, {max(remaining, 0)} to run")
    in_flight: dict[str, Asked] = {}
    waiting: dict[str, list[Asked]] = {}
    asked_n = 0
    while remaining > 0 or ctx.launcher.running():
        while remaining > 0 and ctx.launcher.free() > 0:
            asked = search.ask()
            remaining -= 1
            asked_n += 1
            label = f"trial {asked.number}: " + ", ".join(f"{k}={_short(v)}" for k, v in asked.params.items())
            try:
                config = resolve_config(ctx.recipe, ctx.overrides, dict(asked.params), resolve_init)
            except SertoolError as e:  # values no run can use (alpha 0 with select ccc): a failed trial
                search.tell(asked.number, state="FAIL", reason=str(e))
                ctx.view.add(f"trial-{asked.number}", label, state="failed", note=str(e))
                ctx.result.failed.append((label, str(e)))
                continue
            key = config.digest()
            run = ctx.existing.get(key)
            if run is not None and (run.status == "FINISHED" or run.tags.get(PRUNED_TAG)):
                _reuse(ctx, search, asked, label, run)
                continue
            if key in in_flight:  # the same values as a trial still training: wait for its figures
                waiting.setdefault(key, []).append(asked)
                ctx.view.add(f"trial-{asked.number}", label, state="queued",
                             note=f"same config as trial {in_flight[key].number}")
                continue
            in_flight[key] = asked
            ctx.view.add(key, label)
            job = ctx.job(key, label, config, trial=search.ref(asked), resume_run_id=run.run_id if run else None)
            ctx.start(job, f"{label} ({asked_n}/{asked_n + remaining})")
        for ended in ctx.tick():
            asked = in_flight.pop(ended.job.key)
            state = search.state(asked.number)
            if state == "RUNNING":  # the child died before it could tell
                search.tell(asked.number, state="FAIL", reason=ended.error or ended.state,
                            interrupted=ended.state == "killed")
            elif state == "FAIL" and ended.state == "finished":
                ctx.view.set(ended.job.key, state="failed", note=f"dev {opts.objective} is NaN")
                ctx.result.failed.append((ended.job.label, f"dev {opts.objective} is NaN"))
            elif state == "PRUNED":
                ctx.view.set(ended.job.key, state="pruned")
            for other in waiting.pop(ended.job.key, []):
                _reuse(ctx, search, other, f"trial {other.number}", ctx.existing.get(ended.job.key))
    _finish(ctx, search, opts.objective)


def _settle_stale(ctx: "Context", search: Search) -> int:
    """Trials a killed sweep left RUNNING: settled from their run where it ended, else marked stopped
    (asked again). Returns how many still run elsewhere (another host's child: we cannot know)."""
    by_trial = {int(r.tags[TRIAL_TAG]): r for r in ctx.existing.values() if r.tags.get(TRIAL_TAG)}
    elsewhere = 0
    for number in search.running():
        run = by_trial.get(number)
        if run is not None and run.status == "RUNNING":
            elsewhere += 1
            ctx.result.notes.append(f"trial {number}: run {run.run_id[:8]} is RUNNING on {run.tags.get(HOST_TAG)}")
        elif run is not None and (run.status == "FINISHED" or run.tags.get(PRUNED_TAG)):
            _reuse(ctx, search, Asked(number, -1, {}), f"trial {number}", run, quiet=True)
        else:
            search.tell(number, state="FAIL", interrupted=True)
    return elsewhere


def _reuse(ctx: "Context", search: Search, asked: Asked, label: str, run: "RunInfo | None", *,
           quiet: bool = False) -> None:
    """Settle a trial with the figures of a run of the same config (it is not trained again)."""
    if run is None or not (run.status == "FINISHED" or run.tags.get(PRUNED_TAG)):
        search.tell(asked.number, state="FAIL", reason="the same config's child did not finish")
        return
    search.set_run(asked.number, run.run_id)
    value = run.metrics.get(best(search.objective))
    if run.tags.get(PRUNED_TAG):
        search.tell(asked.number, state="PRUNED")
    elif value is None or math.isnan(value):
        search.tell(asked.number, state="FAIL", reason=f"dev {search.objective} is NaN")
    else:
        search.tell(asked.number, value)
    if not quiet:
        ctx.view.add(f"trial-{asked.number}", label, state="done before", run_id=run.run_id,
                     note=f"same config as run {run.run_id[:8]}")


def _finish(ctx: "Context", search: Search, objective: str) -> None:
    """The trials table on the parent, and its best trial: printed by the CLI, logged as tags and metrics."""
    children = children_by_key(ctx.tracker, str(ctx.parent.run_id))
    by_run = {r.run_id: r for r in children.values()}
    by_trial = {int(r.tags[TRIAL_TAG]): r for r in children.values() if r.tags.get(TRIAL_TAG)}
    table = search.table()
    rows = []
    for row in table.to_dict("records"):
        run = by_run.get(row.get("run_id") or "") or by_trial.get(int(row["trial"]))
        rows.append({**{k: v for k, v in row.items() if k not in ("run_id", "note")}, **run_row(run),
                     "note": row.get("note")})
    ctx.result.rows = rows
    if len(table):
        ctx.parent.log_table(table, SEARCH_TRIALS)
    top = search.best()
    if top is None:
        return
    run = by_run.get(top.user_attrs.get(RUN_ID, ""))
    ctx.result.best = {"trial": top.number, "value": top.value, "objective": objective, "params": dict(top.params),
                       "run_id": run.run_id if run else None}
    ctx.parent.set_tags({BEST_TRIAL_TAG: top.number, BEST_RUN_TAG: run.run_id if run else None,
                         **{BEST_PARAM_PREFIX + k: v for k, v in top.params.items()}})
    if run is not None:
        ctx.parent.log_metrics({best(m): run.metrics.get(best(m)) for m in METRIC_NAMES}
                               | {"best_trial": float(top.number)})
