"""`sertool report`: the paper's tables rendered from the runs the paper recipes logged."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from ._common import out, state
from ._options import ExperimentOpt


class Table(str, Enum):
    table1 = "table1"
    table2 = "table2"
    table3 = "table3"


class ReportFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"


def report(
    ctx: typer.Context,
    which: Annotated[Table, typer.Argument(help="table1: alpha/beta grid; table2: Task 1 fine-tunes; table3: Task 2 ensemble.")],
    experiment: ExperimentOpt = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = ReportFormat.table,
    ensemble: Annotated[str, typer.Option("--ensemble", help="table3: name of the ensemble run.")] = "table3",
    log: Annotated[bool, typer.Option("--log/--no-log", help="Also log the Markdown table to the sweep (or ensemble) run.")] = True,
) -> None:
    """Render one of the paper's tables (ours beside the paper's published figures)."""
    from ..jobs.report import paper_report

    rep = paper_report(state(ctx).tracker(experiment), which.value, experiment, log=log, ensemble=ensemble)
    if fmt is ReportFormat.markdown:
        typer.echo(rep.markdown(), nl=False)
        return
    if fmt is ReportFormat.csv:
        typer.echo(rep.csv(), nl=False)
        return
    from rich.table import Table as RichTable

    table = RichTable(title=rep.title, title_justify="left")
    for c in rep.columns:
        table.add_column(c, justify="left" if c in ("", "variant", "run") else "right")
    for row in rep.rows:
        table.add_row(*(rep.cell(v) for v in row))
    out.print(table)
    for n in rep.notes:
        out.print(f"- {n}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
