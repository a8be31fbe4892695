"""Reading and annotating the clips of the catalog: what to embed or transcribe, transcripts, skips,
labels and file names. Every other room reads clips through these functions (no SQL outside the store).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from .catalog import Catalog
from .records import ClipSource, VoteRecord

_SOURCES = """
    SELECT c.clip_id, c.path, co.root, c.duration_s, c.transcript
    FROM clips c LEFT JOIN corpora co ON co.corpus = c.corpus
    WHERE c.clip_id NOT IN (SELECT clip_id FROM skipped)
"""


def _source(clip_id: str, path: str, root: str | None, duration: float | None, transcript: str | None) -> ClipSource:
    p = Path(path)
    if not p.is_absolute() and root:
        p = Path(root) / p
    return ClipSource(clip_id, p, float(duration) if duration is not None else math.nan, transcript)


def clips_to_embed(cat: Catalog, splits: Sequence[str] | None = None) -> list[ClipSource]:
    """Clips to embed, sorted by clip id; clips in `skipped` (unreadable audio) are left out."""
    sql, params = _SOURCES, []
    if splits:
        sql += f" AND c.split IN ({', '.join('?' * len(splits))})"
        params += list(splits)
    return [_source(*r) for r in cat.execute(sql + " ORDER BY c.clip_id", params)]


def clip_sources(cat: Catalog) -> list[ClipSource]:
    """Every clip of the catalog, skipped ones included, with its absolute audio path (verify reads them all)."""
    rows = cat.execute("SELECT c.clip_id, c.path, co.root, c.duration_s, c.transcript FROM clips c "
                       "LEFT JOIN corpora co ON co.corpus = c.corpus ORDER BY c.clip_id")
    return [_source(*r) for r in rows]


def sources_of(cat: Catalog, clip_ids: Sequence[str]) -> list[ClipSource]:
    """These clips (skipped ones left out), shortest first: ASR batch-mates then need similar token budgets."""
    rows = cat.execute(_SOURCES + " AND c.clip_id IN (SELECT unnest(?::VARCHAR[])) "
                       "ORDER BY c.duration_s NULLS LAST, c.clip_id", [list(clip_ids)])
    return [_source(*r) for r in rows]


def corpus_transcripts(cat: Catalog, asr_source: str = "asr") -> list[str]:
    """Transcripts that came with the corpus, by clip id (what the tiny tokenizers are trained on)."""
    rows = cat.execute("SELECT transcript FROM clips WHERE transcript IS NOT NULL "
                       "AND transcript_source IS DISTINCT FROM ? ORDER BY clip_id", [asr_source])
    return [r[0] for r in rows]


def skipped_by(cat: Catalog, prefix: str, splits: Sequence[str] | None = None) -> list[ClipSource]:
    """Skipped clips whose reason starts with `prefix` (`embed:`: the ones embed recorded itself, which
    it re-checks), sorted by clip id."""
    sql = ("SELECT c.clip_id, c.path, co.root, c.duration_s, c.transcript FROM skipped s JOIN clips c USING (clip_id) "
           "LEFT JOIN corpora co ON co.corpus = c.corpus WHERE starts_with(s.reason, ?)")
    params: list = [prefix]
    if splits:
        sql += f" AND c.split IN ({', '.join('?' * len(splits))})"
        params += list(splits)
    return [_source(*r) for r in cat.execute(sql + " ORDER BY c.clip_id", params)]


def record_skips(cat: Catalog, bad: Iterable[tuple[str, str]], readmit: Iterable[str] = ()) -> None:
    """(clip id, reason) into `skipped` in one transaction (the table `ingest --skip-bad` fills too);
    clips in `readmit` leave it in the same transaction."""
    with cat.transaction():
        for clip_id in readmit:
            cat.execute("DELETE FROM skipped WHERE clip_id = ?", [clip_id])
        for clip_id, reason in bad:
            cat.execute("INSERT OR IGNORE INTO skipped SELECT clip_id, corpus, path, ? FROM clips WHERE clip_id = ?",
                        [reason, clip_id])


def consensus_labels(cat: Catalog, clip_ids: Sequence[str] | None = None) -> dict[str, tuple]:
    """clip id -> (emotion, arousal, valence, dominance) from `labels` (every labelled clip if no ids)."""
    rows = cat.execute("SELECT clip_id, emotion, arousal, valence, dominance FROM labels")
    wanted = None if clip_ids is None else set(clip_ids)
    return {r[0]: r[1:] for r in rows if wanted is None or r[0] in wanted}


def clip_votes(cat: Catalog, clip_ids: Sequence[str]) -> dict[str, list[VoteRecord]]:
    """clip id -> its annotators' votes (in annotator order), for the clips that have any."""
    rows = cat.execute(
        "SELECT v.clip_id, v.annotator_id, v.emotion, v.secondary, v.arousal, v.valence, v.dominance "
        "FROM votes v JOIN (SELECT unnest(?::VARCHAR[]) AS clip_id) w USING (clip_id) "
        "ORDER BY v.clip_id, v.annotator_id",
        [list(clip_ids)],
    )
    out: dict[str, list[VoteRecord]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(VoteRecord(*r))
    return out


def clip_genders(cat: Catalog, clip_ids: Sequence[str]) -> dict[str, str | None]:
    """clip id -> the speaker's gender as the corpus gives it (`Female`, `Male`, `Unknown`, None)."""
    rows = cat.execute("SELECT c.clip_id, c.gender FROM clips c JOIN (SELECT unnest(?::VARCHAR[]) AS clip_id) w "
                       "USING (clip_id)", [list(clip_ids)])
    return dict(rows)


def clip_paths(cat: Catalog) -> dict[str, str]:
    """clip id -> audio path as the catalog stores it."""
    return dict(cat.execute("SELECT clip_id, path FROM clips"))


def clips_in_split(cat: Catalog, split: str) -> set[str]:
    """Clip ids of a corpus split."""
    return {r[0] for r in cat.execute("SELECT clip_id FROM clips WHERE split = ?", [split])}
