"""Per-worker segments of a store, and merging them into it: how N embedding workers share one store.

zarr loses data when two writers touch one chunk or shard file, and DuckDB allows one writer per
file, so a worker never writes the store itself. Worker I of N (part I/N of the work) writes a
*segment*: a small store at ``<store>/segments/part-I-of-N/`` with its own catalog (a copy of the clip rows it plans from, plus
the embedding rows it commits) and its own Zarr arrays, through the ordinary crash-safe
`EmbeddingWriter`. `merge_segments` then, in one process holding the store's catalog:

1. places each segment's (encoder, variant) array at the next *shard boundary* of the store's array
   (rows ``[base, base + n)``, ``base`` a multiple of the shard size), so its shard files become the
   store's shard files ``base / shard_frames + j`` unchanged: a shard file is self-contained (its
   index holds offsets within the file), so they are hard-linked (copied where links are not
   possible, uploaded to a remote store), never rewritten. Where the layouts differ (a remote store
   keeps smaller shards) the frames are copied through zarr, one whole destination shard at a time;
2. commits every segment's embedding rows (row_start shifted by ``base``) and skipped clips in one
   transaction;
3. deletes the merged segments.

A kill before 2 leaves the store's catalog as it was (the linked files sit past its committed rows,
where a writer overwrites freely) and the segments intact: merge again. A kill after 2 leaves
segments whose rows are all in the catalog: the next merge only deletes them. The gap a shard
boundary leaves costs no disk: chunks never written have no bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidOption, StoreInUse
from .catalog import Catalog
from .embeddings import FRAMES, EmbeddingStore, register_encoder
from .layout import StoreLayout
from .records import EncoderRecord

SEGMENTS_DIR = "segments"
_SEGMENT = re.compile(r"^part-(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class PartSpec:
    """Which part of the work one worker does: part `index` of `count` (0-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InvalidOption("part", f"{self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> "PartSpec":
        """`I/N` as users type it (`--part 0/2`)."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise InvalidOption("part", f"{text!r}: expected I/N, e.g. 0/4")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def name(self) -> str:
        return f"part-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def segments_root(layout: StoreLayout) -> Path:
    return layout.root / SEGMENTS_DIR


def segment_layout(layout: StoreLayout, part: PartSpec) -> StoreLayout:
    """The segment store worker `part` writes (its catalog and arrays live there, nothing else)."""
    return StoreLayout(segments_root(layout) / part.name)


def list_segments(layout: StoreLayout) -> list[StoreLayout]:
    """Segments present under the store, in part order."""
    root = segments_root(layout)
    if not root.is_dir():
        return []
    found = [(tuple(map(int, m.groups())), p) for p in root.iterdir() if (m := _SEGMENT.match(p.name))]
    return [StoreLayout(p) for _, p in sorted(found, key=lambda t: (t[0][1], t[0][0]))]


SEEDED_TABLES = ("corpora", "clips", "skipped", "encoders")
"""Tables a segment copies from the store: what planning reads, and the encoder provenance to check against."""


def seed_segment(layout: StoreLayout, segment: StoreLayout) -> dict[tuple[str, str], set[str]]:
    """Create (or refresh) a segment's catalog from the store's; return the store's finished clips per
    (encoder, variant), so the worker skips them. The store's catalog is opened read-only and only for
    this: N workers may do it at once, and a merge of finished segments can run while others work."""
    with Catalog(layout.catalog, read_only=True) as main:
        tables = {t: main.df(f"SELECT * FROM {t}") for t in SEEDED_TABLES}
        done_rows = main.execute("SELECT encoder, variant, clip_id FROM embeddings")
    with Catalog(segment.catalog) as seg, seg.transaction():
        for t, df in tables.items():
            seg.con.register("_seed", df)
            try:
                seg.execute(f"INSERT OR IGNORE INTO {t} SELECT * FROM _seed")
            finally:
                seg.con.unregister("_seed")
    done: dict[tuple[str, str], set[str]] = {}
    for enc, var, cid in done_rows:
        done.setdefault((enc, var), set()).add(cid)
    return done


# -- merging -----------------------------------------------------------------------------------------

@dataclass
class MergedUnit:
    segment: str
    encoder: str
    variant: str
    clips: int
    frames: int
    base_row: int
    duplicates: int = 0
    """Clips the store already held (kept as they were; the segment's copy is dropped)."""


@dataclass
class MergeReport:
    units: list[MergedUnit] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    """Names of the segments merged (and deleted)."""

    @property
    def clips(self) -> int:
        return sum(u.clips for u in self.units)


def _array_meta(array_dir: Path | str) -> dict:
    if isinstance(array_dir, str):  # a remote store's array (fsspec URL)
        import fsspec

        with fsspec.open(f"{array_dir}/zarr.json", "rb") as f:
            return json.loads(f.read())
    return json.loads((array_dir / "zarr.json").read_text())


def _layout_key(meta: dict) -> tuple:
    """What must agree for shard files to move between two arrays unchanged."""
    return (meta["data_type"], meta["shape"][1], json.dumps(meta["chunk_grid"], sort_keys=True),
            json.dumps(meta["codecs"], sort_keys=True), json.dumps(meta["chunk_key_encoding"], sort_keys=True))


def _shard_frames(meta: dict) -> int:
    return int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])


def _shard_file(array_dir: Path | str, meta: dict, k: int) -> Path | str:
    sep = meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")
    key = f"c/{k}/0" if sep == "/" else f"c{sep}{k}{sep}0"
    return f"{array_dir}/{key}" if isinstance(array_dir, str) else array_dir / key


def _place(src: Path, dst: Path | str) -> None:
    """Put `src`'s bytes at `dst` atomically (replacing an orphan file a killed writer left there)."""
    if isinstance(dst, str):  # remote store: one upload (an object PUT replaces atomically)
        import fsspec

        fs, path = fsspec.core.url_to_fs(dst)
        fs.put_file(str(src), path)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".merging")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # no hard links here (another filesystem, some network mounts): copy
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _copy_frames(seg_dir: Path, dst, base: int, n: int, shard_frames: int) -> None:
    """Rows [0, n) of the segment's array to rows [base, base + n) of `dst`, one destination shard per write."""
    import zarr

    src = zarr.open_array(seg_dir, mode="r")
    for start in range(0, n, shard_frames):
        stop = min(n, start + shard_frames)
        dst[base + start : base + stop] = src[start:stop]


def _open_segment(segment: StoreLayout) -> Catalog:
    try:
        return Catalog(segment.catalog, read_only=True)
    except StoreInUse:
        raise StoreInUse(
            f"{segment.root}: this segment is still being written by its worker; merge once it has finished"
        ) from None


def merge_segments(layout: StoreLayout, segments: list[StoreLayout] | None = None) -> MergeReport:
    """Commit the segments' embeddings into the store (see the module docstring); returns what moved."""
    import pandas as pd

    segments = list_segments(layout) if segments is None else segments
    report = MergeReport()
    if not segments:
        return report
    store = EmbeddingStore(layout)
    with Catalog(layout.catalog) as main:
        # The store's committed end per (encoder, variant): new segments go past it.
        ends = {(e, v): int(n) for e, v, n in main.execute(
            "SELECT encoder, variant, max(row_start + n_frames) FROM embeddings GROUP BY encoder, variant")}
        have = {}
        rows_out: list[pd.DataFrame] = []
        skipped_out: list[pd.DataFrame] = []
        arrays: dict[tuple[str, str], object] = {}
        for seg in segments:
            with _open_segment(seg) as sc:
                units = sc.execute("SELECT DISTINCT encoder, variant FROM embeddings ORDER BY encoder, variant")
                rows = sc.df("SELECT clip_id, encoder, variant, row_start, n_frames FROM embeddings")
                skipped_out.append(sc.df("SELECT * FROM skipped"))
            for enc, var in units:
                key = (enc, var)
                if key not in have:
                    have[key] = {r[0] for r in main.execute(
                        "SELECT clip_id FROM embeddings WHERE encoder = ? AND variant = ?", [enc, var])}
                seg_dir = seg.embeddings / enc / var / FRAMES
                record = EncoderRecord.from_dict(
                    json.loads((seg.embeddings / enc / "zarr.json").read_text())["attributes"])
                register_encoder(main, record)  # refuses another configuration under the same name
                if key not in arrays:
                    arrays[key] = store._open_array(record, var)
                main_dir = store.array_dir(enc, var)
                seg_meta, main_meta = _array_meta(seg_dir), _array_meta(main_dir)
                unit = rows[(rows.encoder == enc) & (rows.variant == var)].copy()
                dup = unit.clip_id.isin(have[key])
                unit = unit[~dup]
                if unit.empty:
                    report.units.append(MergedUnit(seg.root.name, enc, var, 0, 0, -1, int(dup.sum())))
                    continue
                S = _shard_frames(main_meta)
                seg_end = int((unit.row_start + unit.n_frames).max())
                base = -(-ends.get(key, 0) // S) * S  # next shard boundary
                arr = arrays[key]
                if arr.shape[0] < base + seg_end:  # the array's extent first, as the writer does
                    arr.resize((base + seg_end, arr.shape[1]))
                if _layout_key(seg_meta) == _layout_key(main_meta):
                    for j in range(-(-seg_end // S)):  # same layout: the shard files themselves move
                        src = Path(_shard_file(seg_dir, seg_meta, j))
                        if src.exists():
                            _place(src, _shard_file(main_dir, main_meta, base // S + j))
                else:  # another shard size or codec (a remote store's arrays): copy through zarr, shard by shard
                    _copy_frames(seg_dir, arr, base, seg_end, S)
                unit["row_start"] = unit.row_start.astype(np.int64) + base
                rows_out.append(unit)
                have[key] |= set(unit.clip_id)
                ends[key] = base + seg_end
                report.units.append(MergedUnit(seg.root.name, enc, var, len(unit), int(unit.n_frames.sum()), base,
                                               int(dup.sum())))
            report.segments.append(seg.root.name)
        # One transaction: every segment's rows appear in the catalog together, or none do.
        with main.transaction():
            if rows_out:
                main.con.register("_merged", pd.concat(rows_out, ignore_index=True))
                main.execute("INSERT INTO embeddings (clip_id, encoder, variant, row_start, n_frames) "
                             "SELECT clip_id, encoder, variant, row_start, n_frames FROM _merged")
            for df in skipped_out:
                if len(df):
                    main.con.register("_skipped", df)
                    main.execute("INSERT OR IGNORE INTO skipped SELECT * FROM _skipped")
    for seg in segments:
        shutil.rmtree(seg.root, ignore_errors=True)
    root = segments_root(layout)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    return report
