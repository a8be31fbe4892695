"""Pieces every command shares: the error-to-exit-code mapping, consoles, and the store option.

Results go to stdout (`out`), progress and diagnostics to stderr (`err`), so that
`sertool store query ... --format csv > x.csv` stays clean.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import typer
from rich.console import Console

from ..errors import SertoolError
from ..store.layout import StoreLayout

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
    debug: bool = False

    @property
    def layout(self) -> StoreLayout:
        return StoreLayout.at(self.store, self.catalog)


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


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
            err.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
