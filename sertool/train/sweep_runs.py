"""What a sweep finds in the tracker: its parent (to resume), its children by key, a stopped sweep of the
same name, children whose Slurm job is gone; and the summary row of a child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidOption
from ..metrics import METRIC_NAMES, best
from ..tracking.names import JOB_ID_TAG, LAUNCHER_TAG, ORPHANED_TAG, PRUNED_TAG, SWEEP_KEY_TAG, SWEEP_MODE_TAG

if TYPE_CHECKING:
    from ..tracking.records import RunInfo
    from ..tracking.tracker import Tracker
    from .recipes import Recipe


def find_parent(tracker: "Tracker", ref: str, experiment: str | None, recipe: "Recipe", mode: str) -> "RunInfo":
    """The sweep `--resume` names, if it is this recipe's sweep and of the same kind (grid or search)."""
    info = tracker.resolve_run(ref, experiment)
    if info.kind != "sweep":
        raise InvalidOption("resume", f"run {info.name} ({info.run_id[:8]}) is a {info.kind} run, not a sweep")
    was = info.tags.get(SWEEP_MODE_TAG, "grid")
    if was != mode:
        raise InvalidOption("resume", f"sweep {info.name} ({info.run_id[:8]}) was a "
                            f"{'search' if was == 'optuna' else 'grid'}" + (": add --search optuna" if was == "optuna"
                                                                            else ": drop --search"))
    if recipe.sweep_name and info.name != recipe.sweep_name:
        raise InvalidOption("resume", f"run {info.run_id[:8]} is sweep {info.name!r}, not this recipe's "
                            f"{recipe.sweep_name!r}")
    return info


def children_by_key(tracker: "Tracker", parent_run_id: str) -> dict[str, "RunInfo"]:
    """The parent's children by key; where a key has several runs (a sweep from before keys), the
    FINISHED one, else the latest."""
    out: dict[str, "RunInfo"] = {}
    for run in sorted(tracker.find_runs(kind="train", parent_run_id=parent_run_id, max_results=50_000),
                      key=lambda r: (r.status == "FINISHED", r.start_time.timestamp() if r.start_time else 0.0)):
        if key := run.tags.get(SWEEP_KEY_TAG):
            out[key] = run
    return out


def stopped_before(tracker: "Tracker", experiment: str | None, recipe: "Recipe") -> "RunInfo | None":
    """The latest sweep of this name, if it ended FAILED or KILLED (a new sweep may be a resume meant)."""
    from ..errors import NotFound

    name = (recipe.sweep_name or "").replace("'", "\\'")
    try:
        runs = tracker.find_runs(experiment, f"attributes.run_name = '{name}'", ["attributes.start_time DESC"], 1,
                                 kind="sweep")
    except NotFound:
        return None
    return runs[0] if runs and runs[0].status in ("FAILED", "KILLED") else None


def reap_slurm(tracker: "Tracker", children: dict[str, "RunInfo"]) -> dict[str, "RunInfo"]:
    """Children left RUNNING by Slurm jobs that are gone (a killed job, a lost node): marked FAILED, so
    the resumed sweep goes on with them."""
    from .cluster import slurm_job_gone

    out = {}
    for key, run in children.items():
        job = run.tags.get(JOB_ID_TAG)
        if run.status == "RUNNING" and run.tags.get(LAUNCHER_TAG) == "slurm" and job and slurm_job_gone(job):
            tracker.end_run(run.run_id, "FAILED", {ORPHANED_TAG: f"Slurm job {job} is gone"})
            out[key] = tracker.get_run(run.run_id)
    return out


def run_row(run: "RunInfo | None") -> dict[str, Any]:
    """A child's status, run id, selected epoch and best dev figures (blank before it ran)."""
    if run is None:
        return {"status": "not run", "run_id": None, "best_epoch": None, **{best(m): None for m in METRIC_NAMES}}
    status = "PRUNED" if run.tags.get(PRUNED_TAG) else run.status
    epoch = run.metrics.get("best_epoch")
    return {"status": status, "run_id": run.run_id, "best_epoch": int(epoch) if epoch is not None else None,
            **{best(m): run.metrics.get(best(m)) for m in METRIC_NAMES}}
