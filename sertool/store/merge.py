"""Merging finished worker segments (`store.segments`) into the store: `sertool store merge`.

`merge_segments`, in one process holding the store's writer lock and every segment's:

1. reads and checks everything, writing nothing: each segment is finished (its worker's lock is
   free), its encoders match the store's, every shard file its rows need is there; each
   (encoder, variant) is given its place at the next *shard boundary* of the store's array (rows
   ``[base, base + n)``, ``base`` a multiple of the shard size);
2. moves the frames: the segment's shard files become the store's shard files
   ``base / shard_frames + j`` unchanged (a shard file is self-contained: its index holds offsets
   within the file). Full shards, which no writer appends to again, are hard-linked; the last,
   partial shard, where a writer would append, is copied (see `_move_frames`); a remote store gets
   uploads. Where the layouts differ (a remote store keeps smaller shards) the frames are copied
   through zarr, one whole destination shard at a time;
3. commits every segment's encoders, embedding rows (row_start shifted by ``base``; checksums and
   audio hashes as the worker wrote them), skipped clips and audio stamps in one transaction;
4. renames the merged segments out of the way and deletes them.

A refusal in 1 changes nothing. A kill in 2 leaves the store's catalog as it was (the placed files
lie past its committed rows, where a writer overwrites freely, never in place while a file is
shared) and the segments intact: merge again. A kill after 3 leaves segments whose rows are all in
the catalog: the next merge only deletes them. The gap a shard boundary leaves costs no disk:
chunks never written have no bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import StoreMismatch
from .catalog import Catalog
from .embeddings import FRAMES, EmbeddingStore, encoder_registered, insert_encoder
from .layout import StoreLayout
from .locking import WriterLock, as_unwritable
from .records import EncoderRecord
from .segments import list_segments, segments_root

if TYPE_CHECKING:
    import pandas as pd

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


def _array_meta_or_none(array_dir: Path | str) -> dict | None:
    """The array's metadata, or None where the store has no such array yet."""
    try:
        return _array_meta(array_dir)
    except FileNotFoundError:
        return None


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


def _place(src: Path, dst: Path | str, *, link: bool) -> None:
    """Put `src`'s bytes at `dst` atomically (replacing an orphan file a killed writer left there).

    `link` hard-links where the filesystem allows (the caller promises that no writer appends to
    either name again); otherwise the bytes are copied, so that the two stores share nothing.
    """
    if isinstance(dst, str):  # remote store: one upload (an object PUT replaces atomically)
        import fsspec

        fs, path = fsspec.core.url_to_fs(dst)
        fs.put_file(str(src), path)
        return
    tmp = dst.with_name(dst.name + ".merging")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        try:
            if not link:
                raise OSError("copy")
            os.link(src, tmp)
        except OSError:  # a copy asked for, or no hard links here (another filesystem, some network mounts)
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise as_unwritable(e, dst) or e from None


def _copy_frames(seg_dir: Path, dst, base: int, n: int, shard_frames: int) -> None:
    """Rows [0, n) of the segment's array to rows [base, base + n) of `dst`, one destination shard per write."""
    import zarr

    src = zarr.open_array(seg_dir, mode="r")
    for start in range(0, n, shard_frames):
        stop = min(n, start + shard_frames)
        dst[base + start : base + stop] = src[start:stop]


@dataclass
class _Unit:
    """One segment's (encoder, variant) as the merge plans it: checked, with its place in the store."""

    segment: StoreLayout
    record: EncoderRecord
    variant: str
    rows: "pd.DataFrame"
    """The segment's rows the store does not hold yet (row_start still the segment's)."""
    duplicates: int
    end: int
    """One past the segment's last row among `rows`."""
    base: int = -1
    """Where row 0 of the segment lands in the store's array (a shard boundary)."""


ROW_COLS = ("clip_id", "encoder", "variant", "row_start", "n_frames", "checksum", "audio_sha256", "text_source",
            "text_sha256")
"""The embedding row as a merge carries it (a segment of an older sertool has NULL checksums and texts)."""


def _segment_rows(seg: StoreLayout) -> tuple[list[tuple[str, str]], "pd.DataFrame", "pd.DataFrame"]:
    """A finished segment's (encoder, variant) units, embedding rows and skipped clips; the audio stamps
    its worker took ride along with its skipped clips (`attrs["audio_hashes"]`), committed with them."""
    import pandas as pd

    if not seg.catalog.exists():  # a worker killed before its first commit left no catalog
        return [], pd.DataFrame(columns=list(ROW_COLS)), pd.DataFrame()
    with Catalog(seg.catalog, read_only=True) as sc:
        units = sc.execute("SELECT DISTINCT encoder, variant FROM embeddings ORDER BY encoder, variant")
        have = sc.columns("embeddings")
        cols = ", ".join(c if c in have else f"NULL::VARCHAR AS {c}" for c in ROW_COLS)
        rows = sc.df(f"SELECT {cols} FROM embeddings")
        skipped = sc.df("SELECT * FROM skipped")
        stamps = sc.df("SELECT * FROM audio_hashes") if sc.columns("audio_hashes") else pd.DataFrame()
    skipped.attrs["audio_hashes"] = stamps
    return [tuple(u) for u in units], rows, skipped


def _check_shards(unit: _Unit, seg_dir: Path, meta: dict) -> None:
    """Every shard file holding a row to merge is there (a damaged segment is refused before any move)."""
    S = _shard_frames(meta)
    rows = unit.rows[unit.rows.n_frames > 0]  # a clip of no frames occupies no shard
    first = rows.row_start.to_numpy() // S
    last = (rows.row_start.to_numpy() + rows.n_frames.to_numpy() - 1) // S
    needed = set(first.tolist()) | set(last.tolist())
    missing = [k for k in sorted(needed) if not Path(_shard_file(seg_dir, meta, int(k))).exists()]
    if missing:
        raise StoreMismatch(f"{seg_dir}: shard file(s) {missing[:3]} of committed clips are missing; this "
                            f"segment is damaged: delete it and run its part again (nothing was merged)")


def _plan(main: Catalog, store: EmbeddingStore, segments: list[StoreLayout], report: MergeReport,
          skipped: list) -> list[_Unit]:
    """Read and check every segment, and place each unit past the store's committed rows; writes nothing."""
    ends = {(e, v): int(n) for e, v, n in main.execute(
        "SELECT encoder, variant, max(row_start + n_frames) FROM embeddings GROUP BY encoder, variant")}
    have: dict[tuple[str, str], set[str]] = {}
    records: dict[str, EncoderRecord] = {}
    plan: list[_Unit] = []
    for seg in segments:
        units, rows, seg_skipped = _segment_rows(seg)
        skipped.append(seg_skipped)
        for enc, var in units:
            key = (enc, var)
            record = EncoderRecord.from_dict(json.loads((seg.embeddings / enc / "zarr.json").read_text())["attributes"])
            if records.setdefault(enc, record).fingerprint != record.fingerprint:
                raise StoreMismatch(f"{seg.root}: encoder {enc!r} has another configuration than in an earlier "
                                    "segment; frames of two configurations never mix (nothing was merged)")
            encoder_registered(main, record)  # refuses another configuration under the same name
            store.check_array(record, var)
            if key not in have:
                have[key] = {r[0] for r in main.execute(
                    "SELECT clip_id FROM embeddings WHERE encoder = ? AND variant = ?", [enc, var])}
            unit_rows = rows[(rows.encoder == enc) & (rows.variant == var)]
            dup = unit_rows.clip_id.isin(have[key])
            unit = _Unit(seg, record, var, unit_rows[~dup].copy(), int(dup.sum()), 0)
            if unit.rows.empty:
                report.units.append(MergedUnit(seg.root.name, enc, var, 0, 0, -1, unit.duplicates))
                continue
            seg_dir = seg.embeddings / enc / var / FRAMES
            _check_shards(unit, seg_dir, _array_meta(seg_dir))
            main_meta = _array_meta_or_none(store.array_dir(enc, var))
            S = _shard_frames(main_meta) if main_meta is not None else store.config.shard_frames
            unit.end = int((unit.rows.row_start + unit.rows.n_frames).max())
            unit.base = -(-ends.get(key, 0) // S) * S  # the next shard boundary past the store's rows
            ends[key] = unit.base + unit.end
            have[key] |= set(unit.rows.clip_id)
            plan.append(unit)
            report.units.append(MergedUnit(seg.root.name, enc, var, len(unit.rows), int(unit.rows.n_frames.sum()),
                                           unit.base, unit.duplicates))
        report.segments.append(seg.root.name)
    return plan


def _move_frames(store: EmbeddingStore, unit: _Unit) -> None:
    """The unit's frames into the store's array at rows [base, base + end), past every committed row.

    With the same layout the segment's shard files become the store's. A shard file whose every row
    lies below the segment's end is full: neither store appends to it again (a writer appends only
    past its committed end, and after this merge the store's end is past it), so it is hard-linked.
    The last, partial shard is where a writer would go on appending, so it is copied: no file is
    ever shared with a segment that someone writes. (Should a kill stop the merge before its commit,
    a linked shard lies past the store's committed end, where the store's next writer may write:
    `shards.ShardAppender` gives such a file a name of its own first, never writing a shared one.)
    """
    enc, var = unit.record.name, unit.variant
    seg_dir = unit.segment.embeddings / enc / var / FRAMES
    try:
        arr = store._open_array(unit.record, var)
        if arr.shape[0] < unit.base + unit.end:  # the array's extent first, as the writer does
            arr.resize((unit.base + unit.end, arr.shape[1]))
    except OSError as e:
        raise as_unwritable(e, store.array_dir(enc, var)) or e from None
    main_dir = store.array_dir(enc, var)
    seg_meta, main_meta = _array_meta(seg_dir), _array_meta(main_dir)
    S = _shard_frames(main_meta)
    if unit.base % S:
        raise RuntimeError(f"{main_dir}: shard size changed while merging")
    if _layout_key(seg_meta) != _layout_key(main_meta):  # another shard size or codec (a remote store's arrays)
        _copy_frames(seg_dir, arr, unit.base, unit.end, S)
        return
    for j in range(-(-unit.end // S)):
        src = Path(_shard_file(seg_dir, seg_meta, j))
        if src.exists():
            _place(src, _shard_file(main_dir, main_meta, unit.base // S + j), link=(j + 1) * S <= unit.end)


def _commit(main: Catalog, plan: list[_Unit], skipped: list) -> None:
    """One transaction: every segment's encoders, rows and skips appear in the catalog together, or none do."""
    import pandas as pd

    with main.transaction():
        for record in {u.record.name: u.record for u in plan}.values():
            if not encoder_registered(main, record):
                insert_encoder(main, record)
        if plan:
            rows = []
            for u in plan:
                df = u.rows.copy()
                df["row_start"] = df.row_start.astype(np.int64) + u.base
                rows.append(df)
            main.con.register("_merged", pd.concat(rows, ignore_index=True))
            cols = ", ".join(ROW_COLS)
            main.execute(f"INSERT INTO embeddings ({cols}) SELECT {cols} FROM _merged")
            main.con.unregister("_merged")
        for df in skipped:
            if len(df):
                main.con.register("_skipped", df)
                main.execute("INSERT OR IGNORE INTO skipped SELECT * FROM _skipped")
                main.con.unregister("_skipped")
            stamps = df.attrs.get("audio_hashes")
            if stamps is not None and len(stamps):
                main.con.register("_stamps", stamps)
                main.execute("INSERT OR REPLACE INTO audio_hashes BY NAME SELECT * FROM _stamps")
                main.con.unregister("_stamps")


_TRASH = ".merged-"
"""Merged segments are renamed to this prefix before deletion, so a half-deleted one is never merged again."""


def _delete(layout: StoreLayout, segments: list[StoreLayout]) -> None:
    root = segments_root(layout)
    for seg in segments:
        trash = root / f"{_TRASH}{seg.root.name}-{os.getpid()}"
        if seg.root.exists():
            os.replace(seg.root, trash)
        shutil.rmtree(trash, ignore_errors=True)
    if root.is_dir():
        for left in root.glob(f"{_TRASH}*"):  # what a merge killed while deleting left behind
            shutil.rmtree(left, ignore_errors=True)
        if not any(root.iterdir()):
            root.rmdir()


def merge_segments(layout: StoreLayout, segments: list[StoreLayout] | None = None) -> MergeReport:
    """Commit the segments' embeddings into the store (see the module docstring); returns what moved.

    Everything is checked before anything moves: the store's writer lock (no other writer), every
    segment's writer lock (`StoreInUse` while its worker still runs), each segment's rows, encoders
    and shard files against the store. Refusals leave the store and the segments as they were.
    """
    segments = list_segments(layout) if segments is None else segments
    report = MergeReport()
    if not segments:
        return report
    store = EmbeddingStore(layout)
    skipped: list = []
    with ExitStack() as held:
        # The store's writer lock for the whole merge; the DuckDB file is let go while readers ask for it.
        main = held.enter_context(Catalog(layout.catalog, hold=False))
        for seg in segments:
            held.enter_context(WriterLock(seg.catalog, what=(
                f"{seg.root}: this segment is still being written by its worker; merge once it has finished "
                "(nothing was merged)")))
        plan = _plan(main, store, segments, report, skipped)
        for unit in plan:
            _move_frames(store, unit)
        _commit(main, plan, skipped)
        _delete(layout, segments)
    return report
