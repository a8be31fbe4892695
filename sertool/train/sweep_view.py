"""The live table of a sweep's children (state, device, epoch, current dev figures), on stderr.

Children run in other processes or on other nodes; each rewrites its status file after every epoch
(`train.child`), and the sweep's loop hands this view the jobs still running on every tick. Without a
console, or for children run inline (they show `sertool train`'s own progress bars), it shows nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .child import ChildJob, read_status

if TYPE_CHECKING:
    from rich.console import Console

STYLES = {"finished": "green", "pruned": "yellow", "failed": "bold red", "killed": "red", "running": "cyan",
          "starting": "cyan", "done before": "dim green"}


@dataclass
class Row:
    label: str
    state: str = "queued"
    slot: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    f1: float | None = None
    ccc: float | None = None
    run_id: str | None = None
    note: str | None = None


class SweepView:
    """A rich `Live` table, refreshed by the sweep's loop (no refresh thread of its own)."""

    def __init__(self, console: "Console | None", title: str) -> None:
        self.console = console
        self.title = title
        self.rows: dict[str, Row] = {}
        self._live: Any = None

    def __enter__(self) -> "SweepView":
        if self.console is not None:
            from rich.live import Live

            self._live = Live(self._render(), console=self.console, auto_refresh=False, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.__exit__(None, None, None)
            self._live = None
            if not self.console.is_terminal:  # a log file: the next output starts on a line of its own
                self.console.line()

    def add(self, key: str, label: str, **values: Any) -> None:
        self.rows[key] = Row(label)
        self.set(key, **values)

    def set(self, key: str, **values: Any) -> None:
        row = self.rows.get(key)
        if row is None:
            return
        for name, value in values.items():
            setattr(row, name, value)

    def refresh(self, running: list[ChildJob]) -> None:
        """Read the running children's status files and redraw."""
        for job in running:
            status = read_status(job)
            dev = status.get("dev") or {}
            state = status.get("state")
            self.set(job.key, state="running" if state in (None, "starting") and status else (state or "starting"),
                     slot=job.slot or status.get("host"), epoch=status.get("epoch"), epochs=status.get("epochs"),
                     loss=status.get("loss"), f1=dev.get("f1_macro"), ccc=dev.get("ccc_mean"),
                     run_id=status.get("run_id"))
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        from rich import box
        from rich.markup import escape
        from rich.table import Table

        done = sum(1 for r in self.rows.values() if r.state in ("finished", "pruned", "done before"))
        table = Table(title=f"{self.title}: {done}/{len(self.rows)} done", title_justify="left", box=box.SIMPLE_HEAD)
        for name in ("child", "state", "device", "epoch", "loss", "dev F1", "dev CCC", "run"):
            table.add_column(name, justify="right" if name in ("epoch", "loss", "dev F1", "dev CCC") else "left")
        for row in self.rows.values():
            style = STYLES.get(row.state, "")
            state = f"[{style}]{row.state}[/]" if style else row.state
            if row.note:
                state += f" [dim]({escape(row.note[:60])})[/]"
            epoch = f"{row.epoch or 0}/{row.epochs}" if row.epochs else ("-" if row.epoch is None else str(row.epoch))
            table.add_row(escape(row.label), state, row.slot or "-", epoch, _num(row.loss), _num(row.f1),
                          _num(row.ccc), (row.run_id or "-")[:8])
        return table


def _num(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
