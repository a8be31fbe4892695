"""Pieces every command shares: the global options' state, consoles, and the error-to-exit-code mapping.

Results go to stdout (`out`), progress and diagnostics to stderr (`err`), so that
`sertool store query ... --format csv > x.csv` stays clean. Only the CLI reads the environment
(`SERTOOL_STORE`, `SERTOOL_CATALOG`, `MLFLOW_TRACKING_URI`, through the global options): the library
gets values.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import typer
from rich.console import Console

from ..errors import InvalidOption, SertoolError
from ..store.layout import StoreLayout

if TYPE_CHECKING:
    from ..tracking.tracker import Tracker


def _width(stream) -> int | None:
    """Rich's width, except that a pipe or file gets 160 columns (not rich's 80) unless COLUMNS says:
    wide run tables stay readable when redirected to a file or a log."""
    return None if stream.isatty() or os.environ.get("COLUMNS") else 160


out = Console(width=_width(sys.stdout))
err = Console(stderr=True, width=_width(sys.stderr))


@dataclass
class AppState:
    """What the root callback learned from global options, handed to every command via ctx.obj."""

    store: str | Path | None = None
    catalog: Path | None = None
    tracking_uri: str | None = None
    debug: bool = False

    @property
    def layout(self) -> StoreLayout:
        return StoreLayout.at(self.store, self.catalog)

    def tracker(self, experiment: str | None = None) -> "Tracker":
        """The one tracker of this command (one experiment per store unless `experiment` says otherwise)."""
        from ..tracking.tracker import Tracker

        return Tracker(self.tracking_uri, experiment=experiment, store_root=self.layout.root)


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


FLAGS: dict[str, str] = {"from_split": "--from", "filter_string": "--filter", "baseline": "--with-baseline",
                         "refit_epochs": "--refit"}
"""Library option names whose flag is not simply `--<name with dashes>`."""


def flag(option: str) -> str:
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def message(e: SertoolError) -> str:
    """One line for the user; an option the library names is shown as the flag they typed."""
    if isinstance(e, InvalidOption):
        return f"{flag(e.option)}: {e.message}"
    return str(e)


class ErrorMappingGroup(typer.core.TyperGroup):
    """Turns a `SertoolError` from any command into one stderr line and its exit code.

    Tracebacks are for bugs; `--debug` (or SERTOOL_DEBUG=1) shows them for user errors too.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SertoolError as e:
            st = ctx.obj if isinstance(ctx.obj, AppState) else AppState()
            if st.debug or os.environ.get("SERTOOL_DEBUG") == "1":
                raise
            from rich.markup import escape

            err.print(f"[bold red]error:[/] {escape(message(e))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
