"""`sertool store verify`: does the store hold what its catalog says it holds? Reads, never writes.

Per (encoder, variant) array, against the catalog's rows:

* structure (always): the array is there and belongs to the encoder's fingerprint; every shard file a
  row needs exists, its index decodes (crc32c) and points inside the file at chunks of the right size,
  and every chunk under a committed row is present (a missing one would read as zeros); no two rows
  share a frame. Frames past the last committed row (what a killed writer left, overwritten by the
  next) and frames no row points at (rows re-made or dropped) are counted, not failed: they are waste,
  not damage (`store compact` reclaims them).
* frames (`frames=True`): every row's frames read back and match the checksum committed with them;
  rows written before checksums existed are counted as "no checksum".
* audio (`audio=True`): every row made from audio names the SHA-256 of those bytes; each file is
  hashed again and compared (changed or missing audio is a finding per row). Text-encoder rows and
  rows older than audio hashes are counted, not failed.
* text (always, from the catalog alone): every text-encoder row that records the transcript it embedded
  is compared with the clip's text of that variant now (`store.transcripts`): a transcript changed or
  gone since is a finding per row (`text-changed`; `sertool embed` with that `--text` makes them again).
  Rows older than text hashes are counted, not failed.

A problem names its kind, encoder, variant and clips (the first `EXAMPLES`, and how many in all).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .catalog import Catalog
from .checksums import matches
from .embeddings import FRAMES
from .layout import StoreLayout
from .shards import MISSING, ShardLayout, decode_index, live_chunks
from .transcripts import stale_text_rows, untracked_text_rows

EXAMPLES = 20
"""Clips a finding lists by name (its count says how many there are)."""
TEMP_SUFFIXES = (".partial", ".unshare", ".merging", ".compacting")
"""Files a killed writer, merge or compaction may leave beside a shard: harmless, removed by compact."""


@dataclass
class Finding:
    kind: str
    """missing-array, fingerprint, missing-shard, truncated-shard, bad-index, missing-chunk, overlap,
    checksum, unreadable, audio-changed, audio-missing, text-changed."""
    encoder: str | None
    variant: str | None
    clips: list[str]
    count: int
    detail: str


@dataclass
class UnitCheck:
    """What was found in one (encoder, variant) array."""

    encoder: str
    variant: str
    rows: int = 0
    frames: int = 0
    checked: int = 0
    """Rows whose frames were read and matched their checksum (`frames=True`)."""
    no_checksum: int = 0
    orphaned_frames: int = 0
    """Frames past the last committed row (a killed writer's; the next writer overwrites them)."""
    unreferenced_frames: int = 0
    """Frames below the last row that no row points at (re-made or forgotten rows)."""


@dataclass
class VerifyReport:
    units: list[UnitCheck] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    audio_checked: int = 0
    """Rows whose audio was hashed again and matched."""
    audio_unhashed: int = 0
    """Rows of audio encoders that record no audio hash (embedded before sertool kept them)."""
    text_untracked: int = 0
    """Rows of text encoders that record no transcript hash (embedded before sertool kept them)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": [asdict(p) for p in self.problems], "units": [asdict(u) for u in self.units],
                "notes": self.notes, "audio_checked": self.audio_checked, "audio_unhashed": self.audio_unhashed,
                "text_untracked": self.text_untracked}

    def add(self, kind: str, unit: tuple[str, str] | None, clips: Iterable[str], detail: str) -> None:
        clips = list(dict.fromkeys(clips))
        self.problems.append(Finding(kind, unit[0] if unit else None, unit[1] if unit else None, clips[:EXAMPLES],
                                     len(clips), detail))


@dataclass
class _Rows:
    """One unit's rows, sorted by row_start."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    checksums: list
    audio: list

    @property
    def ends(self) -> np.ndarray:
        return self.starts + self.lengths


def _unit_rows(cat: Catalog) -> dict[tuple[str, str], _Rows]:
    have = cat.columns("embeddings")
    extra = ", ".join(c if c in have else "NULL" for c in ("checksum", "audio_sha256"))
    rows = cat.execute(f"SELECT encoder, variant, clip_id, row_start, n_frames, {extra} FROM embeddings "
                       "ORDER BY encoder, variant, row_start, clip_id")
    grouped: dict[tuple[str, str], list[tuple]] = {}
    for r in rows:
        grouped.setdefault((r[0], r[1]), []).append(r[2:])
    out = {}
    for key, rs in grouped.items():
        ids, starts, lengths, sums, audio = zip(*rs)
        out[key] = _Rows(np.array(ids, dtype=object), np.array(starts, dtype=np.int64),
                         np.array(lengths, dtype=np.int64), list(sums), list(audio))
    return out


def verify_store(layout: StoreLayout, *, frames: bool = False, audio: bool = False) -> VerifyReport:
    """Check the store at `layout` (see the module docstring); the catalog is opened read-only."""
    report = VerifyReport()
    with Catalog(layout.catalog, read_only=True) as cat:
        units = _unit_rows(cat)
        fingerprints = dict(cat.execute("SELECT name, fingerprint FROM encoders"))
        text = {r[0] for r in cat.execute("SELECT name FROM encoders WHERE frame_rate IS NULL")}
        paths = _audio_paths(cat) if audio else {}
        stale_text = stale_text_rows(cat)
        report.text_untracked = untracked_text_rows(cat, sorted(text))
    hashes: dict[Path, str | None] = {}
    for (enc, var), rows in sorted(units.items()):
        unit = UnitCheck(enc, var, len(rows.ids), int(rows.lengths.sum()))
        report.units.append(unit)
        _overlaps(report, (enc, var), rows)
        if layout.remote:
            broken: set[str] = set()
        else:
            broken = _structure(report, layout, (enc, var), rows, unit, fingerprints.get(enc))
        if frames:
            _frames(report, layout, (enc, var), rows, unit, broken)
        if audio:
            _audio(report, (enc, var), rows, paths, hashes, enc in text)
        changed = [c for c, e, v in stale_text if (e, v) == (enc, var)]
        if changed:
            report.add("text-changed", (enc, var), changed, f"the transcript of {len(changed)} clip(s) changed "
                       "after these frames embedded it: `sertool embed` (with this variant's --text) makes them again")
    if layout.remote:
        report.notes.append("the arrays are remote: shard files and indexes are not checked (--frames reads through zarr)")
    else:
        _leftovers(report, layout, set(units))
    return report


# -- rows ---------------------------------------------------------------------------------------------

def _overlaps(report: VerifyReport, unit: tuple[str, str], rows: _Rows) -> None:
    """Rows sorted by start overlap when one starts before the one before it ends (empty rows never do)."""
    keep = rows.lengths > 0
    ids, starts, ends = rows.ids[keep], rows.starts[keep], rows.ends[keep]
    if len(ids) < 2:
        return
    reach = np.maximum.accumulate(ends)
    bad = np.flatnonzero(starts[1:] < reach[:-1]) + 1
    if bad.size:
        pairs = [(str(ids[i]), str(ids[int(np.searchsorted(reach, starts[i], side="right"))])) for i in bad]
        names = [c for pair in pairs for c in pair]
        report.add("overlap", unit, names, f"{len(bad)} row(s) share frames with another row, e.g. {pairs[0][0]} "
                                           f"and {pairs[0][1]}: one of them reads the other's frames")


# -- arrays and shard files ---------------------------------------------------------------------------

def _structure(report: VerifyReport, layout: StoreLayout, unit: tuple[str, str], rows: _Rows, check: UnitCheck,
               fingerprint: str | None) -> set[str]:
    """Array, shard files, indexes and chunks under every row; returns the clips whose frames cannot be read."""
    enc, var = unit
    array_dir = layout.embeddings / enc / var / FRAMES
    ids = [str(c) for c in rows.ids]
    if not (array_dir / "zarr.json").exists():
        report.add("missing-array", unit, ids, f"{array_dir}: no array, but the catalog has {len(ids)} row(s) in it")
        return set(ids)
    meta = json.loads((array_dir / "zarr.json").read_text())
    have_fp = meta.get("attributes", {}).get("fingerprint")
    if fingerprint is not None and have_fp is not None and have_fp != fingerprint:
        report.add("fingerprint", unit, [], f"{array_dir}: holds frames of fingerprint {have_fp}, the catalog's "
                                            f"encoder {enc!r} is {fingerprint}")
    extent = int(meta["shape"][0])
    end = int(rows.ends.max()) if len(ids) else 0
    check.orphaned_frames = max(0, extent - end)
    if extent < end:
        past = [c for c, e in zip(ids, rows.ends) if e > extent]
        report.add("truncated-array", unit, past, f"{array_dir}: the array ends at frame {extent}, rows reach {end}")
    shard = ShardLayout.from_metadata(array_dir)
    if shard is None:
        report.notes.append(f"{enc}/{var}: not an uncompressed array; its shard files were not checked "
                            "(--frames reads it through zarr)")
        return set()
    return _shards(report, shard, unit, rows, check, end)


def _shards(report: VerifyReport, shard: ShardLayout, unit: tuple[str, str], rows: _Rows, check: UnitCheck,
            end: int) -> set[str]:
    """Every shard file the rows need, and every one on disk: index sane, chunks under rows present;
    chunks no row touches are counted (orphaned past the last row, unreferenced below it)."""
    S, C, cps = shard.shard_frames, shard.chunk_frames, shard.chunks_per_shard
    files = shard.shard_files()
    keep = rows.lengths > 0
    ids = [str(c) for c in rows.ids[keep]]
    starts, ends = rows.starts[keep], rows.ends[keep]
    by_shard: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(zip((starts // S).tolist(), ((ends - 1) // S).tolist())):
        for k in range(a, b + 1):
            by_shard.setdefault(k, []).append(i)
    n_chunks = (max([*files, *by_shard, -1]) + 1) * cps
    live = live_chunks(rows.starts, rows.lengths, C, n_chunks)
    end_chunk = -(-end // C)
    broken: set[str] = set()
    orphaned = 0
    for k in sorted(set(files) | set(by_shard)):
        members = by_shard.get(k, [])
        names = [ids[i] for i in members]
        index, problem = _read_index(shard, k)
        if problem is not None:
            kind, detail = problem
            if not members:  # past every row: no clip is lost, but the next writer would stop on it
                detail += "; it lies past every committed row (`sertool store compact` removes it)"
            report.add(kind, unit, names, detail)
            broken.update(names)
            continue
        chunk = k * cps + np.arange(cps)
        dead = (index[:, 0] != MISSING) & ~live[k * cps : (k + 1) * cps]
        orphaned += C * int((dead & (chunk >= end_chunk)).sum())
        check.unreferenced_frames += C * int((dead & (chunk < end_chunk)).sum())
        lost = []
        for i in members:
            lo, hi = max(int(starts[i]), k * S) - k * S, min(int(ends[i]), (k + 1) * S) - k * S
            if (index[lo // C : (hi - 1) // C + 1, 0] == MISSING).any():
                lost.append(ids[i])
        if lost:
            report.add("missing-chunk", unit, lost, f"{shard.shard_path(k)}: chunks under {len(lost)} committed "
                                                    "row(s) are absent from the shard index (they would read as zeros)")
            broken.update(lost)
    check.orphaned_frames = max(check.orphaned_frames, orphaned)
    return broken


def _read_index(shard: ShardLayout, k: int) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """Shard k's index, or (kind, detail) of what is wrong with its file."""
    path = shard.shard_path(k)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(shard.index_bytes)
    except FileNotFoundError:
        return None, ("missing-shard", f"{path}: shard file {k} is missing")
    except OSError as e:
        return None, ("unreadable", f"{path}: {e.strerror}")
    if len(raw) < shard.index_bytes:
        return None, ("truncated-shard", f"{path}: {size} bytes, shorter than its own index ({shard.index_bytes})")
    try:
        index = decode_index(raw, shard)
    except ValueError:
        return None, ("bad-index", f"{path}: the shard index fails its crc32c")
    present = index[:, 0] != MISSING
    offs, sizes = index[present, 0].astype(np.int64), index[present, 1].astype(np.int64)
    if (sizes != shard.chunk_bytes).any() or (offs < shard.index_bytes).any():
        return None, ("bad-index", f"{path}: the index lists chunks of the wrong size or inside the index")
    if offs.size and int((offs + sizes).max()) > size:
        return None, ("truncated-shard", f"{path}: {size} bytes, but the index points up to byte "
                                         f"{int((offs + sizes).max())}: the file was cut short")
    order = np.sort(offs)
    if (np.diff(order) < shard.chunk_bytes).any():
        return None, ("bad-index", f"{path}: the index lists chunks that overlap in the file")
    return index, None


# -- frames and audio ---------------------------------------------------------------------------------

def _frames(report: VerifyReport, layout: StoreLayout, unit: tuple[str, str], rows: _Rows, check: UnitCheck,
            broken: set[str]) -> None:
    """Read every row not already found broken and compare it with its checksum."""
    from .reader import EmbeddingIndex, EmbeddingReader

    enc, var = unit
    index = EmbeddingIndex(enc, var, 0, rows.ids, rows.starts, rows.lengths)
    reader = EmbeddingReader(layout, {unit: index})
    bad, unreadable = [], []
    try:
        for cid, s, n, want in zip(rows.ids, rows.starts.tolist(), rows.lengths.tolist(), rows.checksums):
            if cid in broken:
                continue
            if want is None:
                check.no_checksum += 1
                continue
            try:
                got = reader._source(enc, var).read(s, n)
            except (OSError, ValueError) as e:
                unreadable.append((str(cid), str(e)))
                continue
            if matches(got, want) is False:
                bad.append(str(cid))
            else:
                check.checked += 1
    finally:
        reader.close()
    if bad:
        report.add("checksum", unit, bad, f"{len(bad)} row(s) whose frames differ from the checksum committed with "
                                          "them: changed on disk since they were written")
    if unreadable:
        report.add("unreadable", unit, [c for c, _ in unreadable], unreadable[0][1])


def _audio_paths(cat: Catalog) -> dict[str, Path]:
    from .clips import clip_sources

    return {c.clip_id: c.path for c in clip_sources(cat)}


def _audio(report: VerifyReport, unit: tuple[str, str], rows: _Rows, paths: dict[str, Path],
           hashes: dict[Path, str | None], text: bool) -> None:
    """Hash each row's audio again (once per file: `hashes`) and compare with the hash committed with the row."""
    changed, missing = [], []
    for cid, sha in zip(rows.ids, rows.audio):
        if sha is None:
            report.audio_unhashed += not text
            continue
        got = _hash(paths.get(str(cid)), hashes)
        if got is None:
            missing.append(str(cid))
        elif got != sha:
            changed.append(str(cid))
        else:
            report.audio_checked += 1
    if changed:
        report.add("audio-changed", unit, changed, f"the audio of {len(changed)} clip(s) changed after these frames "
                                                   "were made from it: `sertool embed` makes them again")
    if missing:
        report.add("audio-missing", unit, missing, f"the audio of {len(missing)} clip(s) is gone or unreadable")


def _hash(path: Path | None, hashes: dict[Path, str | None]) -> str | None:
    """A file's SHA-256 (None if unreadable), computed once per file and verify run."""
    from ..audio import file_stamp

    if path is None:
        return None
    if path not in hashes:
        try:
            hashes[path] = file_stamp(path).sha256
        except OSError:
            hashes[path] = None
    return hashes[path]


# -- what lies beside the arrays -----------------------------------------------------------------------

def _leftovers(report: VerifyReport, layout: StoreLayout, units: set[tuple[str, str]]) -> None:
    """Arrays no catalog row points at (an interrupted drop) and temporary files; notes, not problems."""
    root = layout.embeddings
    if not root.is_dir():
        return
    for meta in sorted(root.glob(f"*/*/{FRAMES}/zarr.json")):
        enc, var = meta.parent.parent.parent.name, meta.parent.parent.name
        if (enc, var) not in units:
            report.notes.append(f"{enc}/{var}: an array no catalog row points at (a drop interrupted before it "
                                "deleted the files?); `sertool store compact` removes it")
    temps = [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIXES) or p.name.startswith(".dropped-")]
    if temps:
        report.notes.append(f"{len(temps)} temporary file(s) a killed writer left (e.g. {temps[0]}); harmless, "
                            "`sertool store compact` removes them")
