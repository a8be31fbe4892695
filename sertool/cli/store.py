"""`sertool store ...`: inspect, query, split, merge, verify, drop and compact the feature store."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ._common import err, out, state
from ._options import FormatOpt, OutputFormat, SplitBy

group = typer.Typer(help="Inspect, query, split, merge, verify, drop and compact the feature store.",
                    no_args_is_help=True)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:,.1f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def _table(title: str | None, cols: list[str], rows: list[tuple]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(_cell(v) for v in r))
    return t


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)  # dates, decimals, UUIDs


@group.command("info")
def info(ctx: typer.Context) -> None:
    """Clips per split, class distribution, annotators, transcript coverage, split schemes, embeddings."""
    from ..store.catalog import Catalog
    from ..store.summary import store_summary

    layout = state(ctx).layout
    with Catalog(layout.catalog, read_only=True) as cat:
        tables = store_summary(cat)
    out.print(f"Store [bold]{layout.root}[/]", highlight=False)
    for t in tables:
        if t.rows:
            out.print(_table(t.title, t.columns, t.rows))
        else:
            out.print(f"[bold]{t.title}[/]: {t.empty_note}", highlight=False)


TABLE_LIMIT = 1000
"""Rows a table shows unless --limit says otherwise: rich renders ~1,000 rows in well under a second
(2 million took over 30 s), and nobody reads more on a terminal; csv and json are for files, so all."""


@group.command("query")
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One SQL statement that reads the catalog (a query, describe, show, summarize, ...).")],
    fmt: FormatOpt = OutputFormat.table,
    limit: Annotated[
        Optional[int],
        typer.Option(help="At most this many rows (0: all); a cut result says so on stderr.",
                     show_default=f"{TABLE_LIMIT} for a table, all for csv and json"),
    ] = None,
) -> None:
    """Run one read-only SQL statement on the catalog and print the result to stdout.

    Only the catalog can be read: no file is written or read besides it, no extension is loaded."""
    from ..store.query import read_only_query

    if limit is None:
        limit = TABLE_LIMIT if fmt is OutputFormat.table else 0
    result = read_only_query(state(ctx).layout.catalog, sql, limit=limit)
    cols, rows = result.columns, result.rows
    if fmt is OutputFormat.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        w.writerows([["" if v is None else v for v in r] for r in rows])
        sys.stdout.write(buf.getvalue())
    elif fmt is OutputFormat.json:
        sys.stdout.write(json.dumps([{c: _jsonable(v) for c, v in zip(cols, r)} for r in rows], indent=1) + "\n")
    else:
        out.print(_table(None, cols, rows))
        if not result.truncated:
            err.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", highlight=False)
    if result.truncated:
        err.print(f"note: the result has more than {limit:,} rows; showing the first {limit:,} "
                  "(--limit N for more, --limit 0 for all)", highlight=False)


@group.command("split")
def split(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new split scheme.")],
    from_split: Annotated[str, typer.Option("--from", help="Corpus split to cut the validation set from.")] = "Train",
    holdout: Annotated[float, typer.Option("--holdout", help="Share of the --from split's clips to hold out.")] = 0.1,
    by: Annotated[SplitBy, typer.Option("--by", help="Hold out whole speakers, or single clips.")] = SplitBy.speaker,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same split.")] = 0,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing scheme of this name.")] = False,
) -> None:
    """Derive a split scheme: part of --from becomes Development, the corpus's Development becomes Test-Development."""
    from ..errors import NotFound
    from ..store.catalog import Catalog
    from ..store.splits import SplitParams, derive_scheme

    params = SplitParams(from_split=from_split, holdout=holdout, by=by.value, seed=seed)
    layout = state(ctx).layout
    if not layout.catalog.exists():
        raise NotFound(f"{layout.catalog}: no catalog here (run `sertool ingest` first)")
    with Catalog(layout.catalog) as cat:
        counts = derive_scheme(cat, name, params, replace=replace)
    out.print(_table(f"Split scheme {name!r} ({params.to_json()})", ["split", "clips"], list(counts.items())))


@group.command("merge")
def merge(ctx: typer.Context) -> None:
    """Move finished embed workers' segments into the store: their frames, then their catalog rows in one transaction."""
    from ..store.merge import merge_segments

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


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


@group.command("verify")
def verify(
    ctx: typer.Context,
    audio: Annotated[bool, typer.Option("--audio", help="Also hash every clip's audio and compare it with what "
                                        "its embeddings were made from.")] = False,
    frames: Annotated[bool, typer.Option("--frames", help="Also read every row's frames and compare them with "
                                         "their checksum.")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Check that the arrays hold what the catalog says (exit 0) or report what does not (exit 1). Changes nothing."""
    from ..errors import InvalidOption
    from ..store.verify import verify_store

    if fmt is OutputFormat.csv:
        raise InvalidOption("format", "verify prints table or json")
    report = verify_store(state(ctx).layout, frames=frames, audio=audio)
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(_jsonable(report.to_dict()), indent=1) + "\n")
    else:
        units = Table(title="arrays", title_justify="left")
        for col in ("encoder", "variant", "rows", "frames", "checked", "no checksum", "orphaned frames",
                    "unreferenced frames"):
            units.add_column(col, justify="left" if col in ("encoder", "variant") else "right")
        for u in report.units:
            units.add_row(u.encoder, u.variant, f"{u.rows:,}", f"{u.frames:,}",
                          f"{u.checked:,}" if frames else "-", f"{u.no_checksum:,}" if frames else "-",
                          f"{u.orphaned_frames:,}", f"{u.unreferenced_frames:,}")
        out.print(units)
        if report.problems:
            t = Table(title=f"{len(report.problems)} problem(s)", title_justify="left")
            for col in ("problem", "encoder", "variant", "rows", "clips", "detail"):
                t.add_column(col, overflow="fold")
            for p in report.problems:
                more = f" (+{p.count - len(p.clips)} more)" if p.count > len(p.clips) else ""
                t.add_row(p.kind, p.encoder or "", p.variant or "", str(p.count), ", ".join(p.clips) + more, p.detail)
            out.print(t)
        if audio:
            err.print(f"audio: {report.audio_checked:,} row(s) match their audio; {report.audio_unhashed:,} row(s) "
                      "of audio encoders record no audio hash (embedded before sertool kept one)", highlight=False)
        if frames and any(u.no_checksum for u in report.units):
            err.print("note: rows without a checksum were written before sertool kept them: they cannot be "
                      "checked (re-embed them to get one)", highlight=False)
        for note in report.notes:
            err.print(f"note: {note}", highlight=False)
        err.print("store verified: no problems" if report.ok else "store verify found problems", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@group.command("drop")
def drop(
    ctx: typer.Context,
    target: Annotated[Optional[str], typer.Argument(
        help="ENCODER (every variant) or ENCODER/VARIANT, e.g. wavlm/noise.", show_default=False)] = None,
    view: Annotated[Optional[str], typer.Option("--view", help="Drop this packed view instead (`store pack`).",
                                                show_default=False)] = None,
) -> None:
    """Remove an encoder configuration or one variant (catalog rows in one transaction, then its arrays),
    or a packed view."""
    from ..errors import InvalidOption
    from ..store.maintenance import drop as drop_

    if (target is None) == (view is None):
        raise InvalidOption("view", "name ENCODER[/VARIANT] or --view NAME (one of them)")
    if view is not None:
        from ..store.catalog import Catalog
        from ..store.views import remove_view

        layout = state(ctx).layout
        with Catalog(layout.catalog) as cat:
            freed = remove_view(cat, layout, view)
        out.print(f"dropped view {view!r}: {_size(freed)} freed", highlight=False)
        return
    r = drop_(state(ctx).layout, target)
    what = f"{r.encoder}/{r.variants[0]}" if "/" in target else f"{r.encoder} ({', '.join(r.variants) or 'no arrays'})"
    out.print(f"dropped {what}: {r.rows:,} row(s), {_size(r.bytes_freed)} freed"
              + ("; the encoder is gone from the store" if r.encoder_removed else ""), highlight=False)
    for name in r.stale_views:
        err.print(f"note: view {name!r} holds frames of {what}: training refuses it until `sertool store pack "
                  f"{name} --replace` or `sertool store drop --view {name}`", highlight=False, soft_wrap=True)


@group.command("compact")
def compact(ctx: typer.Context) -> None:
    """Give back the disk of frames no catalog row points at (rows never move; crash-safe)."""
    from ..store.maintenance import compact as compact_

    r = compact_(state(ctx).layout)
    for u in r.units:
        out.print(f"{u.encoder}/{u.variant}: {u.shards_rewritten} shard file(s) rewritten, {u.shards_deleted} "
                  f"deleted, {_size(u.bytes_freed)} freed", highlight=False)
    for a in r.arrays_removed:
        out.print(f"{a}: no catalog row points at it: removed", highlight=False)
    for a in r.skipped:
        err.print(f"note: {a}: a compressed array; compact leaves it as it is", highlight=False)
    if r.temp_removed:
        out.print(f"{r.temp_removed} temporary file(s) of killed writers removed", highlight=False)
    out.print(f"compacted: {_size(r.bytes_freed)} freed", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="store")
