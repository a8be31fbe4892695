"""`sertool store drop` and `sertool store compact`: giving disk back, never a committed frame.

Both are writers (they hold the store's writer lock, so they are refused while an embed, a merge or
an ingest runs, and no writer starts while they work); readers go on reading throughout.

**drop ENCODER[/VARIANT]** deletes the catalog rows (and, for a whole encoder or its last variant,
the `encoders` row) in one transaction, then the arrays: each is first renamed to a `.dropped-*` name
in one step, then deleted. A kill before the commit leaves everything as it was; after it, the
catalog no longer points at the arrays, and an array left behind is just unreferenced bytes
(`verify` notes it, `compact` removes it).

**compact** never moves a frame: every committed row keeps its `row_start`, so the catalog is never
written and can never disagree with the arrays. Instead it gives back the space of chunks no row
touches (frames a killed writer left past the last row, rows re-made from changed audio, rows
forgotten): each shard file holding such chunks is written anew beside itself with only the live
chunks, at the very offsets they had (so the reader's linear fast path still applies; the skipped
ranges are holes in a sparse file, which cost no disk), fsynced, and renamed over the old one. The
rename is atomic, so a kill leaves each shard file either old or new, and both hold the same bytes at
every committed row. Shard files with no live chunk are deleted; the array's extent shrinks to its
last row (`zarr.json` replaced atomically the same way); unreferenced arrays and the temporary files
of killed writers go. Readers that have a shard mapped keep the old file's bytes until they let go.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NotFound, SertoolError
from .catalog import Catalog
from .embeddings import FRAMES
from .layout import StoreLayout
from .shards import MISSING, ShardLayout, decode_index, encode_index, live_chunks
from .verify import TEMP_SUFFIXES

DROPPED = ".dropped-"
"""Prefix an array's directory is renamed to before it is deleted (never read, removed by compact)."""
COMPACTING = ".compacting"


def disk_bytes(path: Path) -> int:
    """Bytes a file or a directory tree occupies on disk (allocated blocks: holes in sparse files are free)."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _remove_tree(path: Path, trash_root: Path) -> None:
    """Rename `path` out of the way in one step, then delete it: a kill leaves a whole array or a
    `.dropped-*` leftover, never a half-deleted array under its own name."""
    if not path.exists():
        return
    trash = trash_root / f"{DROPPED}{path.parent.name}-{path.name}-{os.getpid()}"
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


# -- drop -----------------------------------------------------------------------------------------------

@dataclass
class DropReport:
    encoder: str
    variants: list[str]
    rows: int
    bytes_freed: int
    encoder_removed: bool
    stale_views: list[str] = field(default_factory=list)
    """Packed views holding frames of what was dropped: refused by training until packed again or dropped."""


def drop(layout: StoreLayout, target: str) -> DropReport:
    """Remove `ENCODER` (every variant) or `ENCODER/VARIANT`: catalog rows in one transaction, then arrays."""
    encoder, _, variant = target.partition("/")
    if not encoder or "/" in variant or (target.endswith("/") and not variant):
        raise SertoolError(f"{target!r}: expected ENCODER or ENCODER/VARIANT, e.g. wavlm or wavlm/noise")
    if layout.remote:
        raise SertoolError("store drop works on local arrays; a remote store's arrays are deleted with its own tools")
    if not layout.catalog.exists():
        raise NotFound(f"{layout.catalog}: no catalog here (run `sertool ingest` first)")
    with Catalog(layout.catalog) as cat:
        known = cat.scalar("SELECT count(*) FROM encoders WHERE name = ?", [encoder])
        have = [r[0] for r in cat.execute(
            "SELECT DISTINCT variant FROM embeddings WHERE encoder = ? ORDER BY 1", [encoder])]
        enc_dir = layout.embeddings / encoder
        on_disk = sorted(p.name for p in enc_dir.iterdir() if p.is_dir()) if enc_dir.is_dir() else []
        if not known and not have and not on_disk:
            names = [r[0] for r in cat.execute("SELECT name FROM encoders ORDER BY 1")]
            raise NotFound(f"encoder {encoder!r} is not in the store (it has: {', '.join(names) or 'none'})")
        if variant and variant not in have and variant not in on_disk:
            raise NotFound(f"encoder {encoder!r} has no variant {variant!r} (it has: {', '.join(have) or 'none'})")
        variants = [variant] if variant else sorted(set(have) | set(on_disk))
        with cat.transaction():
            if variant:
                rows = cat.scalar("SELECT count(*) FROM embeddings WHERE encoder = ? AND variant = ?", [encoder, variant])
                cat.execute("DELETE FROM embeddings WHERE encoder = ? AND variant = ?", [encoder, variant])
            else:
                rows = cat.scalar("SELECT count(*) FROM embeddings WHERE encoder = ?", [encoder])
                cat.execute("DELETE FROM embeddings WHERE encoder = ?", [encoder])
            last = not cat.scalar("SELECT count(*) FROM embeddings WHERE encoder = ?", [encoder])
            if last:
                cat.execute("DELETE FROM encoders WHERE name = ?", [encoder])
        # The catalog no longer points at these arrays: from here on they are only unreferenced bytes.
        target_dir = enc_dir if last and not (variant and set(on_disk) - {variant}) else enc_dir / variant
        freed = disk_bytes(target_dir)
        _remove_tree(target_dir, layout.embeddings)
        views = [name for name, encs, vars_ in cat.execute("SELECT name, encoders, variants FROM views ORDER BY 1")
                 if encoder in encs.split(",") and (not variant or variant in vars_.split(","))]
    return DropReport(encoder, variants, int(rows or 0), freed, bool(last), views)


# -- compact --------------------------------------------------------------------------------------------

@dataclass
class CompactUnit:
    encoder: str
    variant: str
    shards_rewritten: int = 0
    shards_deleted: int = 0
    bytes_freed: int = 0


@dataclass
class CompactReport:
    units: list[CompactUnit] = field(default_factory=list)
    arrays_removed: list[str] = field(default_factory=list)
    """`encoder/variant` arrays no catalog row pointed at."""
    temp_removed: int = 0
    skipped: list[str] = field(default_factory=list)
    """Arrays compact cannot rewrite (compressed): left as they are."""
    bytes_freed: int = 0


def compact(layout: StoreLayout) -> CompactReport:
    """Give back the disk of every chunk no committed row touches (see the module docstring)."""
    if layout.remote:
        raise SertoolError("store compact works on local arrays (remote object stores rewrite whole shards anyway)")
    if not layout.catalog.exists():
        raise NotFound(f"{layout.catalog}: no catalog here (run `sertool ingest` first)")
    report = CompactReport()
    root = layout.embeddings
    before = disk_bytes(root)
    with Catalog(layout.catalog, hold=False) as cat:  # the writer lock throughout; the file only while used
        rows: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for enc, var, starts, lengths in cat.execute(
                "SELECT encoder, variant, list(row_start), list(n_frames) FROM embeddings GROUP BY ALL"):
            rows[(enc, var)] = (np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64))
        encoders = {r[0] for r in cat.execute("SELECT name FROM encoders")}
        if root.is_dir():
            _remove_temps(report, root)
            for meta in sorted(root.glob(f"*/*/{FRAMES}/zarr.json")):
                array_dir = meta.parent
                enc, var = array_dir.parent.parent.name, array_dir.parent.name
                if enc.startswith(DROPPED) or var.startswith(DROPPED):
                    continue
                if (enc, var) not in rows:
                    _remove_tree(array_dir.parent, root)
                    report.arrays_removed.append(f"{enc}/{var}")
                    continue
                unit = _compact_array(array_dir, *rows[(enc, var)])
                if unit is None:
                    report.skipped.append(f"{enc}/{var}")
                elif unit.shards_rewritten or unit.shards_deleted or unit.bytes_freed:
                    unit.encoder, unit.variant = enc, var
                    report.units.append(unit)
            for enc_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if enc_dir.name not in encoders and not any(enc_dir.glob(f"*/{FRAMES}")):
                    _remove_tree(enc_dir, root)  # an encoder group whose arrays are all gone
    report.bytes_freed = max(0, before - disk_bytes(root))
    return report


def _remove_temps(report: CompactReport, root: Path) -> None:
    for p in list(root.rglob("*")):
        if p.name.startswith(DROPPED) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            report.temp_removed += 1
        elif p.name.endswith(TEMP_SUFFIXES) and p.is_file():
            p.unlink(missing_ok=True)
            report.temp_removed += 1


def _compact_array(array_dir: Path, starts: np.ndarray, lengths: np.ndarray) -> CompactUnit | None:
    """Rewrite one array's shard files without dead chunks; None where the layout is not ours to rewrite."""
    shard = ShardLayout.from_metadata(array_dir)
    if shard is None:
        return None
    unit = CompactUnit("", "")
    files = shard.shard_files()
    cps, C = shard.chunks_per_shard, shard.chunk_frames
    live = live_chunks(starts, lengths, C, (max([*files, -1]) + 1) * cps)
    for k, path in sorted(files.items()):
        mine = live[k * cps : (k + 1) * cps]
        size = path.stat().st_blocks * 512
        if not mine.any():
            path.unlink()
            unit.shards_deleted += 1
            unit.bytes_freed += size
            continue
        if _rewrite_shard(shard, path, mine):
            unit.shards_rewritten += 1
            unit.bytes_freed += max(0, size - path.stat().st_blocks * 512)
    end = int((starts + lengths).max()) if len(starts) else 0
    _shrink_extent(array_dir, end)
    return unit


def _rewrite_shard(shard: ShardLayout, path: Path, live: np.ndarray) -> bool:
    """Replace `path` by a copy holding only its live chunks (at their linear offsets); False if it has no
    dead chunk. The copy is complete and fsynced before the atomic rename over the old file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        index = decode_index(os.pread(fd, shard.index_bytes, 0), shard) if size >= shard.index_bytes else None
        if index is None:
            return False  # unreadable index under live rows: `store verify` reports it; leave it as it is
        present = index[:, 0] != MISSING
        if not (present & ~live).any() and _linear(shard, index):
            return False
        tmp = path.with_name(path.name + COMPACTING)
        new = np.full_like(index, MISSING)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            end = shard.index_bytes
            for c in np.flatnonzero(present & live).tolist():
                off = shard.index_bytes + c * shard.chunk_bytes
                data = os.pread(fd, shard.chunk_bytes, int(index[c, 0]))
                os.pwrite(out, data, off)
                new[c] = (off, shard.chunk_bytes)
                end = off + shard.chunk_bytes
            os.ftruncate(out, end)  # a sparse file: the ranges of dropped chunks hold no blocks
            os.pwrite(out, encode_index(new), 0)
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(tmp, path)
        return True
    finally:
        os.close(fd)


def _linear(shard: ShardLayout, index: np.ndarray) -> bool:
    present = index[:, 0] != MISSING
    expect = shard.index_bytes + np.arange(len(index), dtype=np.uint64) * np.uint64(shard.chunk_bytes)
    return bool(((~present) | (index[:, 0] == expect)).all())


def _shrink_extent(array_dir: Path, end: int) -> None:
    """The array's extent down to its last committed row (zarr.json replaced atomically)."""
    meta_path = array_dir / "zarr.json"
    meta = json.loads(meta_path.read_text())
    if int(meta["shape"][0]) <= end:
        return
    meta["shape"][0] = end
    tmp = meta_path.with_name("zarr.json" + COMPACTING)
    tmp.write_text(json.dumps(meta, indent=2))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, meta_path)
