"""Which audio each stored embedding was made from, and which embeddings that audio has outgrown.

`sertool embed` hashes the bytes of every audio file it decodes (`audio.load_audio_stamped`: read once,
hashed and decoded from memory) and commits, with the frames' rows, the SHA-256 on each row
(`embeddings.audio_sha256`) and the file's stamp in `audio_hashes` (sha256, size, mtime: what the file
was when last read). A later embed compares each file's size and mtime with that stamp, a stat per
file; only a file whose stamp moved is read and hashed again (`refresh_audio`), and the rows made from
other bytes are deleted in the same transaction, so the run embeds those clips again instead of
silently reusing frames of audio that no longer exists. `store verify --audio` hashes every file.

Text encoders read the transcript, not the audio: their rows have no audio hash. Rows written before
this existed have none either; they are reported as such, never as changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .catalog import Catalog

if TYPE_CHECKING:
    from ..audio import FileStamp


def record_audio(catalog: Catalog, stamps: Iterable[tuple[str, "FileStamp"]]) -> None:
    """Clip -> the stamp of its audio as just read, inside the caller's transaction."""
    import pandas as pd

    rows = [(c, s.sha256, int(s.size_bytes), int(s.mtime_ns)) for c, s in stamps]
    if not rows:
        return
    catalog.con.register("_sertool_audio", pd.DataFrame(rows, columns=["clip_id", "sha256", "size_bytes", "mtime_ns"]))
    try:
        catalog.execute("INSERT OR REPLACE INTO audio_hashes (clip_id, sha256, size_bytes, mtime_ns) "
                        "SELECT clip_id, sha256, size_bytes, mtime_ns FROM _sertool_audio")
    finally:
        catalog.con.unregister("_sertool_audio")


def audio_stamps(catalog: Catalog, clip_ids: Sequence[str] | None = None) -> dict[str, tuple[str, int | None, int | None]]:
    """clip id -> (sha256, size, mtime) of its audio as embed last read it (every clip if no ids)."""
    if "clip_id" not in catalog.columns("audio_hashes"):  # a catalog no writer has migrated yet
        return {}
    if clip_ids is None:
        rows = catalog.execute("SELECT clip_id, sha256, size_bytes, mtime_ns FROM audio_hashes")
    else:
        rows = catalog.execute("SELECT a.clip_id, a.sha256, a.size_bytes, a.mtime_ns FROM audio_hashes a "
                               "JOIN (SELECT unnest(?::VARCHAR[]) AS clip_id) w USING (clip_id)", [list(clip_ids)])
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def hashed_clips(catalog: Catalog) -> set[str]:
    """Clips with at least one row that records the audio it was made from."""
    if "audio_sha256" not in catalog.columns("embeddings"):
        return set()
    return {r[0] for r in catalog.execute("SELECT DISTINCT clip_id FROM embeddings WHERE audio_sha256 IS NOT NULL")}


@dataclass
class AudioRefresh:
    """What `refresh_audio` found: rows deleted to be embedded again, and stale rows left for later."""

    remade: list[tuple[str, str, str]] = field(default_factory=list)
    """(clip, encoder, variant) rows of this run's units whose audio changed: deleted, embedded again."""
    left: list[tuple[str, str, str]] = field(default_factory=list)
    """Rows of other units made from audio that has changed since (this run does not embed them)."""


def stale_rows(catalog: Catalog) -> list[tuple[str, str, str]]:
    """(clip, encoder, variant) rows whose audio hash differs from the one `audio_hashes` last recorded."""
    if "audio_sha256" not in catalog.columns("embeddings"):
        return []
    return [tuple(r) for r in catalog.execute(
        "SELECT e.clip_id, e.encoder, e.variant FROM embeddings e JOIN audio_hashes a USING (clip_id) "
        "WHERE e.audio_sha256 IS NOT NULL AND e.audio_sha256 <> a.sha256 ORDER BY 2, 3, 1")]


def refresh_audio(catalog: Catalog, stamps: Mapping[str, "FileStamp"], units: Sequence[tuple[str, str]]) -> AudioRefresh:
    """Record freshly taken stamps, and delete the rows of `units` made from other audio, in one transaction.

    A kill before the commit changes nothing; after it the deleted clips are simply not stored, and the
    run (or a rerun) embeds them from the audio as it is now. Their old frames stay in the array,
    unreferenced, until `store compact`.
    """
    out = AudioRefresh()
    with catalog.transaction():
        record_audio(catalog, stamps.items())
        wanted = set(units)
        for row in stale_rows(catalog):
            (out.remade if (row[1], row[2]) in wanted else out.left).append(row)
        forget_rows(catalog, out.remade)
    return out


def forget_rows(catalog: Catalog, rows: Sequence[tuple[str, str, str]]) -> None:
    """Delete (clip, encoder, variant) rows, inside the caller's transaction; their frames become
    unreferenced (`store compact` reclaims them)."""
    import pandas as pd

    if not rows:
        return
    catalog.con.register("_sertool_forget", pd.DataFrame(list(rows), columns=["clip_id", "encoder", "variant"]))
    try:
        catalog.execute("DELETE FROM embeddings WHERE (clip_id, encoder, variant) IN "
                        "(SELECT (clip_id, encoder, variant) FROM _sertool_forget)")
    finally:
        catalog.con.unregister("_sertool_forget")


def unchecked_rows(catalog: Catalog, units: Sequence[tuple[str, str]]) -> int:
    """Rows of `units` without a frame checksum (written before sertool kept them): they read as ever,
    but nothing can tell whether their frames are still what was written."""
    if not units:
        return 0
    pairs = [f"{e}/{v}" for e, v in units]
    return int(catalog.scalar("SELECT count(*) FROM embeddings WHERE checksum IS NULL AND encoder || '/' || variant "
                              "IN (SELECT unnest(?::VARCHAR[]))", [pairs]) or 0)
