"""The `sertool` command line: thin commands that parse options and call the library.

This file only mounts the command groups; each group lives in a module of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import demo, embed, ensemble, ingest, predict, runs, store, store_merge, train, transcribe
from ._common import AppState, ErrorMappingGroup

app = typer.Typer(
    name="sertool",
    cls=ErrorMappingGroup,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Feature store and experiment tracker for multi-encoder speech emotion recognition.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    store_root: Annotated[
        Optional[str],
        typer.Option("--store", envvar="SERTOOL_STORE", show_default="./store",
                     help="Feature-store root directory, or an fsspec URL (s3://bucket/store) for the arrays."),
    ] = None,
    catalog: Annotated[
        Optional[Path],
        typer.Option("--catalog", envvar="SERTOOL_CATALOG", show_default="<store>/catalog.duckdb",
                     help="Catalog file: local or shared disk (required when --store is a URL)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors too.")] = False,
) -> None:
    ctx.obj = AppState(store=store_root, catalog=catalog, debug=debug)


# Command groups, in the order of the workflow.
app.add_typer(ingest.app, name="ingest")
app.add_typer(store.app, name="store")
store.app.command("merge")(store_merge.merge)
app.command("transcribe")(transcribe.transcribe)
app.command("embed")(embed.embed)
train.register(app)  # train, sweep
runs.register(app)  # runs, ui
app.command("ensemble")(ensemble.ensemble)
app.command("predict")(predict.predict)
app.command("demo")(demo.demo)


def main() -> None:
    app()
