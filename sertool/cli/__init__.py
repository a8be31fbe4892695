"""The `sertool` command line: thin commands that parse options and call the library.

This file only mounts the command modules, each in the same way (`module.register(app)`), in the order
of the workflow; each module holds one command group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import demo, embed, ensemble, export, ingest, models, predict, report, runs, score, store, train, transcribe, views
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
    tracking_uri: Annotated[
        Optional[str],
        typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", show_default="sqlite:///./experiments/mlflow.db",
                     help="MLflow tracking store: a server (http://...), a database, or a SQLite file."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors too.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' own INFO logs (MLflow's).")] = False,
) -> None:
    import os

    # MLflow logs INFO lines of its own ("Creating initial MLflow database tables..."); ours are the
    # progress bars. Set before mlflow is imported; a user's own MLFLOW_LOGGING_LEVEL wins.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    ctx.obj = AppState(store=store_root, catalog=catalog, tracking_uri=tracking_uri, debug=debug)


for module in (ingest, store, views, models, transcribe, embed, train, runs, ensemble, score, report, predict, export, demo):
    module.register(app)


def main() -> None:
    app()
