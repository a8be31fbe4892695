"""`sertool runs` and `sertool ui`: browse tracked runs in the terminal or in MLflow's UI."""

from __future__ import annotations

import re
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from ._common import err, out, state
from ._options import ExperimentOpt, RunKind


def runs(
    ctx: typer.Context,
    experiment: ExperimentOpt = None,
    sort: Annotated[
        Optional[str],
        typer.Option(
            "--sort",
            help="Metric to sort by, best first: a name (best_dev_ccc_valence) or a short one "
            "(f1, ccc, ccc_valence, arousal, ...). Default: newest first.",
        ),
    ] = None,
    ascending: Annotated[bool, typer.Option("--asc", help="Sort ascending (e.g. for losses).")] = False,
    kind: Annotated[Optional[RunKind], typer.Option("--kind", help="Only runs of this kind.")] = None,
    filter_string: Annotated[
        str, typer.Option("--filter", help="MLflow search filter, e.g. \"params.lr = '1e-05'\".")
    ] = "",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many runs.")] = 50,
    stale: Annotated[bool, typer.Option("--stale", help="Only runs whose logged data digest no longer matches "
                                        "the store's data (labels, clips, encoders or audio changed since).")] = False,
) -> None:
    """List tracked runs with their best dev metrics (Run: an id prefix that `--init-from` etc. accept)."""
    from ..metrics import RUN_COLUMNS, best, dev, tracked_name

    tracker = state(ctx).tracker(experiment)
    for run in tracker.reap_orphans():
        hint = f"; `sertool train --resume {run.run_id[:8]}` goes on from its last epoch" if run.kind == "train" else ""
        err.print(f"note: run {run.name} ({run.run_id[:8]}) was RUNNING but its process is gone "
                  f"({run.tags.get('sertool.orphaned', 'killed')}): marked FAILED{hint}", highlight=False)
    order_by = ["attributes.start_time DESC"]
    sort_metric = None
    if sort:
        sort_metric = tracked_name(sort)
        quoted = sort_metric if re.fullmatch(r"\w+", sort_metric) else f"`{sort_metric}`"
        order_by = [f"metrics.{quoted} {'ASC' if ascending else 'DESC'}", *order_by]
    found = tracker.find_runs(
        filter_string=filter_string, order_by=order_by, max_results=10_000 if stale else limit,
        kind=kind.value if kind else None,
    )
    why: dict[str, str] = {}
    if stale:
        found, why = _stale(ctx, tracker, found, limit)
        if not found:
            return
    if not found:
        err.print(f"no runs in experiment {tracker.experiment!r} ({tracker.shown_uri})")
        return

    # a training run's best_* figure first, an ensemble's dev_* otherwise
    columns = [(title, (best(m), dev(m))) for title, m in RUN_COLUMNS]
    if sort_metric and not any(sort_metric in names for _, names in columns):
        columns.append((sort_metric, (sort_metric,)))
    table = Table(
        title=f"{experiment or tracker.experiment}", caption=tracker.shown_uri, title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("Name", overflow="fold")
    table.add_column("Run", no_wrap=True)
    for title in ("Kind", "Stage", "Status"):
        table.add_column(title, overflow="fold")
    for title, _ in columns:
        table.add_column(title, justify="right", no_wrap=True)
    table.add_column("Started")
    if stale:
        table.add_column("Stale data", overflow="fold")
    from ..tracking.names import REFIT_TAG

    refits = 0
    for r in found:
        refit = r.tags.get(REFIT_TAG)
        refits += bool(refit)
        cells = [r.name, r.run_id[:8], r.kind or "", f"{r.stage or ''} (refit)" if refit else r.stage or "", r.status]
        for _, names in columns:
            value = next((r.metrics[n] for n in names if n in r.metrics), None)
            cells.append(("no dev" if refit else "–") if value is None else f"{value:.4f}")
        cells.append(r.start_time.strftime("%m-%d %H:%M") if r.start_time else "")
        if stale:
            cells.append(why[r.run_id])
        table.add_row(*cells)
    out.print(table)
    if refits:
        err.print(f"note: {refits} refit run(s) trained on Train and Development (--refit): they have no dev "
                  "figures; their parent run's are the ones that chose them", highlight=False)


def _stale(ctx: typer.Context, tracker, found: list, limit: int) -> tuple[list, dict[str, str]]:
    """The runs of `found` whose data changed since, and why each is stale; notes on what was not checked."""
    from ..jobs.lineage import stale_runs

    report = stale_runs(state(ctx).layout, tracker)
    ids = {r.run_id for r in found}
    hits = [s for s in report.stale if s.run.run_id in ids][:limit]
    if report.without_lineage:
        err.print(f"note: {report.without_lineage} run(s) logged no dataset (from before sertool logged them): "
                  "not checked", highlight=False)
    if report.other_stores:
        err.print(f"note: {report.other_stores} run(s) were trained on another store: not checked", highlight=False)
    if not hits:
        out.print(f"no stale runs: the data of all {report.checked} checked run(s) is what the store holds now")
    why = {s.run.run_id: f"{s.dataset.name} {s.dataset.context}: {s.dataset.digest[:8]} -> "
                         f"{s.now.digest[:8] if s.now.exists else 'scheme gone'}" for s in hits}
    order = {r.run_id: i for i, r in enumerate(found)}
    return sorted((s.run for s in hits), key=lambda r: order[r.run_id]), why


def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (0.0.0.0 exposes it to the network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 5000,
    experiment: ExperimentOpt = None,
) -> None:
    """Open the MLflow UI on the project's tracking store (until Ctrl-C), at the store's training runs."""
    from ..errors import SertoolError
    from ..tracking.server import landing_url, serve_ui
    from ..tracking.uri import is_remote, resolve_tracking_uri

    uri = resolve_tracking_uri(state(ctx).tracking_uri)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[bold yellow]warning:[/] --host {host} serves the UI to the network, and the MLflow UI has no "
                  "authentication: anyone who reaches this machine can read and change every run. Bind 127.0.0.1 "
                  "and use an SSH tunnel, or run the team server (docker-compose.yml, basic auth).", highlight=False)
    if is_remote(uri):
        try:
            exp_id = state(ctx).tracker(experiment).mark_experiment()
        except SertoolError:  # the server does not answer now: its address is still the way in
            exp_id = None
        out.print(f"runs are tracked on a server; open {landing_url(uri.rstrip('/'), exp_id)}")
        return
    exp_id = state(ctx).tracker(experiment).mark_experiment()  # the store's experiment, typed as model training
    err.print(f"starting the MLflow UI on {uri} at http://{host}:{port} ...")
    serve_ui(uri, host, port, experiment_id=exp_id,
             on_ready=lambda url: out.print(f"MLflow UI: {url}  (Ctrl-C stops it)", soft_wrap=True))


def register(app: typer.Typer) -> None:
    """Mount both commands on the root app."""
    app.command("runs")(runs)
    app.command("ui")(ui)
