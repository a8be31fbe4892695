"""The one rich progress bar every long job shows (on stderr): description, bar, done/total, rate, times.

Library functions take a `Console` (or None for silence) and build their bar here, so ingest, ASR,
embedding, training, ensembles and prediction all look alike; a disabled bar still accepts every call,
so callers never branch on whether a console was given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def progress_bar(console: "Console | None", *, unit: str | None = None, info: bool = False,
                 transient: bool = False) -> "Progress":
    """A progress bar on `console` (disabled without one).

    `unit` adds a rate column (`12.3 clips/s`); `info` adds a free-text column that tasks fill with
    `info=...` (the training loop's dev figures).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")

    class Info(ProgressColumn):
        def render(self, task) -> Text:
            return Text(str(task.fields.get("info", "")))

    columns: list = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(Rate())
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    if info:
        columns.append(Info())
    return Progress(*columns, console=console, disable=console is None, transient=transient)
