"""`sertool store pack` and `sertool store views`: packed training views (commands of the `store` group)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from ._common import err, out, state
from .store import _table, group


class ViewDtype(str, Enum):
    fp16 = "fp16"
    bf16 = "bf16"
    fp8 = "fp8"
    int8 = "int8"


def pack(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the view (`sertool train --view NAME`).")],
    encoders: Annotated[str, typer.Option("--encoders", help="Comma-separated store encoders.")] = "whisper,wavlm,roberta",
    variants: Annotated[str, typer.Option("--variants", help="Variants of the audio encoders: clean, plus augmented ones to train with.")] = "clean",
    splits: Annotated[str, typer.Option("--splits", help="Splits whose clips the view holds.")] = "Train,Development",
    scheme: Annotated[str, typer.Option("--scheme", help="Split scheme the splits come from.")] = "corpus",
    dtype: Annotated[ViewDtype, typer.Option("--dtype", help="fp16 (exact), bf16, fp8 (e4m3) or int8 (per channel, fitted on Train).")] = ViewDtype.fp16,
    frame_rate: Annotated[int, typer.Option("--frame-rate", help="50, or 25: audio frames averaged in pairs.")] = 50,
    replace: Annotated[bool, typer.Option("--replace", help="Pack an existing view again (e.g. a stale one).")] = False,
) -> None:
    """Pack a training view: the chosen clips' frames back to back, small enough to train from memory."""
    from ..progress import progress_bar
    from ..store.catalog import Catalog
    from ..store.views import ViewSpec, pack_view

    spec = ViewSpec(name, _names(encoders), _names(variants), _names(splits), dtype.value, frame_rate, scheme)
    layout = state(ctx).layout
    with Catalog(layout.catalog) as cat, progress_bar(err) as progress:
        info = pack_view(cat, layout, spec, replace=replace, progress=progress)
    rows = [(k, a["n_clips"], a["rows_25"] if spec.frame_rate == 25 and not a["text"] else a["rows_50"], a["dim"])
            for k, a in info.arrays.items()]
    out.print(_table(f"view {name!r}: {len(info.clips)} clips, {spec.dtype} at {spec.frame_rate}/s, "
                     f"{info.bytes / 1e9:.3f} GB", ["array", "clips", "frames", "dim"], rows))


def views(
    ctx: typer.Context,
    remove: Annotated[Optional[str], typer.Option("--remove", help="Remove this view (files and catalog row).")] = None,
) -> None:
    """List the packed views (size, whether their sources changed since), or remove one."""
    from ..store.catalog import Catalog
    from ..store.views import list_views, remove_view

    layout = state(ctx).layout
    if remove is not None:
        with Catalog(layout.catalog) as cat:
            freed = remove_view(cat, layout, remove)
        out.print(f"removed view {remove!r}: {freed / 1e9:.3f} GB freed", highlight=False)
        return
    with Catalog(layout.catalog, read_only=True) as cat:
        found = list_views(cat, layout)
    if not found:
        out.print("no views (make one with `sertool store pack NAME`)")
        return
    out.print(_table("views", ["name", "dtype", "rate", "clips", "GB", "splits", "state"],
                     [(v["name"], v["dtype"], v["frame_rate"], v["clips"], round(v["bytes"] / 1e9, 3), v["splits"],
                       v["state"]) for v in found]))


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def register(app: typer.Typer) -> None:
    """Mounted under `sertool store` (its group), beside info, query, split and merge."""
    group.command("pack")(pack)
    group.command("views")(views)
