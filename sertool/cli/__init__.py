"""The `sertool` command line: thin commands that parse options and call the library.

This file only mounts the command groups; each group lives in a module of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import ingest, store
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


app.add_typer(ingest.app, name="ingest")
app.add_typer(store.app, name="store")

from . import store_merge as _store_merge  # noqa: E402

store.app.command("merge")(_store_merge.merge)

from . import transcribe as _transcribe  # noqa: E402

app.command("transcribe")(_transcribe.transcribe)

from . import embed as _embed  # noqa: E402

app.command("embed")(_embed.embed)

from . import runs as _runs  # noqa: E402

_runs.register(app)

from . import train as _train  # noqa: E402

_train.register(app)

from . import ensemble as _ensemble  # noqa: E402

app.command("ensemble")(_ensemble.ensemble)

from . import predict as _predict  # noqa: E402

app.command("predict")(_predict.predict)

from . import demo as _demo  # noqa: E402

app.command("demo")(_demo.demo)


def main() -> None:
    app()
