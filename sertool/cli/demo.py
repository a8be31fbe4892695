"""`sertool demo`: the whole workflow end to end on a fresh synthetic corpus (see `sertool.jobs.demo`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ._common import err, out, state

if TYPE_CHECKING:
    from ..jobs.demo import DemoResult


def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Option("--dir", help="Demo directory (wiped and remade on every run; it holds the corpus, "
                                         "store and SQLite tracking store).")
    ] = Path("demo"),
    clips: Annotated[Optional[int], typer.Option("--clips", help="Synthetic clips (default: 160; --quick 40).")] = None,
    epochs: Annotated[
        Optional[int], typer.Option("--epochs", help="Pre-training epochs (default: 8; --quick 2); fine-tunes scale along.")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small profile (under a minute) that still runs every stage.")] = False,
) -> None:
    """Run the whole workflow on a synthetic corpus: ingest, transcribe, embed, train, ensemble, predict."""
    from ..jobs.demo import DemoConfig, run_demo

    config = DemoConfig(directory=directory, clips=clips, epochs=epochs, quick=quick, tracking_uri=state(ctx).tracking_uri)
    result = run_demo(config, console=err)
    print_result(result)


def _fmt(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


def print_result(result: "DemoResult") -> None:
    """Results on stdout: the stages' figures, the summary table, the prediction, how to look further."""
    from rich import box
    from rich.table import Table

    from ..labels import ATTRIBUTES

    ing = result.ingest
    if ing is not None:
        splits = ", ".join(f"{s} {n}" for s, n in sorted(ing.splits.items()))
        out.print(f"corpus: {ing.clips} clips ({splits}); {result.transcribed} transcribed by ASR", highlight=False)
    if result.embed is not None:
        units = ", ".join(f"{u.encoder}/{u.variant}" for u in result.embed.units)
        out.print(f"embedded: {units}", highlight=False)

    runs = Table(title="training runs (Development, selected epoch): macro-F1, CCC per attribute and mean",
                 title_justify="left", box=box.SIMPLE_HEAD)
    runs.add_column("run", no_wrap=True)
    for col in ("epoch", "F1", *(a[:3] for a in ATTRIBUTES), "CCC"):
        runs.add_column(col, justify="right", no_wrap=True)
    for name, r in result.runs.items():
        runs.add_row(name, str(r.best_epoch), _fmt(r.best.get("f1_macro", math.nan)),
                     *(_fmt(r.best.get(f"ccc_{a}", math.nan)) for a in ATTRIBUTES), _fmt(r.best.get("ccc_mean", math.nan)))
    out.print(runs)

    summary = Table(title="summary (Development split)", title_justify="left", box=box.HEAVY_HEAD)
    summary.add_column("", no_wrap=True)
    summary.add_column("run", no_wrap=True)
    for col in ("macro-F1", "mean CCC"):
        summary.add_column(col, justify="right")
    for row in result.summary:
        summary.add_row(row.label, row.run_name, _fmt(row.f1_macro), _fmt(row.ccc_mean))
    out.print(summary)

    if result.prediction is not None:
        for p in result.prediction.rows:
            if p.window is not None and len(result.prediction.rows) > 1:
                continue
            avd = "  ".join(f"{a} {v:.2f}" for a, v in zip(ATTRIBUTES, p.attrs))
            out.print(f"predict {p.file}: class {p.pred_class} (p={max(p.probs):.2f})  {avd}", highlight=False)

    for task, ens in sorted(result.ensembles.items()):
        out.print(f"task {task} submission: {ens.submission}", highlight=False)
    out.print(f"total {result.total_seconds:.0f} s  (" + ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items())
              + ")", highlight=False)
    out.print(f"list the runs:  {result.runs_command()}", highlight=False)
    out.print(f"open the MLflow UI:  {result.ui_command()}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
