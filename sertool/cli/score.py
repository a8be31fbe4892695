"""`sertool score`: a challenge-format predictions file scored against the catalog, the official way."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from ._common import out, state
from ._options import FormatOpt, OutputFormat


def score(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Task 2 (FileName,EmoAct,EmoVal,EmoDom) or Task 1 (FileName,EmoClass) CSV.")],
    split: Annotated[str, typer.Option("--split", help="The split the file covers.")] = "Development",
    scheme: Annotated[str, typer.Option("--scheme", help="Split scheme of the catalog.")] = "corpus",
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Score a challenge file: macro-F1 (Task 1) or CCC per attribute and their mean (Task 2), as the challenge does."""
    from ..ensemble.scoring import score_file

    result = score_file(state(ctx).layout, file, split, scheme)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                               for k, v in result.to_dict().items()}))
        return
    if fmt is OutputFormat.csv:
        typer.echo(",".join(result.to_dict()))
        typer.echo(",".join(str(v) for v in result.to_dict().values()))
        return
    from rich.table import Table

    table = Table(title=f"{file.name}: Task {result.task}, {result.n} {split} clips", title_justify="left")
    for name in result.figures:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.4f}" for v in result.figures.values()))
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
