"""`sertool store merge`: commit the segments that `sertool embed --shard I/N` workers wrote."""

from __future__ import annotations

import typer

from ._common import out, state


def merge(ctx: typer.Context) -> None:
    """Move finished shard workers' segments into the store: their frames, then their catalog rows in one transaction."""
    from rich.table import Table

    from ..store.segments import merge_segments

    report = merge_segments(state(ctx).layout)
    if not report.segments:
        out.print("nothing to merge: no segments under the store")
        return
    table = Table(title=f"merged {len(report.segments)} segment(s)", title_justify="left")
    for col in ("segment", "encoder", "variant", "clips", "frames", "already stored"):
        table.add_column(col, justify="left" if col in ("segment", "encoder", "variant") else "right")
    for u in report.units:
        table.add_row(u.segment, u.encoder, u.variant, str(u.clips), str(u.frames), str(u.duplicates))
    out.print(table)
