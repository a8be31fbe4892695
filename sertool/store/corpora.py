"""Writing a validated corpus into the catalog: one transaction, idempotent, never half-done.

A corpus's rows are replaced as a whole (so re-ingesting after a fix removes what the fix removed),
but only when something differs: re-ingesting an unchanged corpus writes nothing at all. ASR
transcripts written later by `sertool transcribe` survive a re-ingest wherever the corpus itself
still has no transcript for that clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from ..errors import SertoolError
from .catalog import Catalog
from .records import CorpusRecords

CLIP_COLS = ("clip_id", "corpus", "path", "split", "duration_s", "sample_rate", "n_channels",
             "speaker_id", "gender", "transcript", "transcript_source")
VOTE_COLS = ("clip_id", "annotator_id", "emotion", "secondary", "arousal", "valence", "dominance")
LABEL_COLS = ("clip_id", "emotion", "arousal", "valence", "dominance", "n_annotators", "agreement", "source")
SKIP_COLS = ("clip_id", "corpus", "path", "reason")


@dataclass(frozen=True)
class CorpusWrite:
    """What writing a corpus did."""

    changed: bool
    """False when the catalog already held exactly these rows (nothing was written)."""
    asr_transcripts_kept: int
    """Clips whose ASR transcript survived because the corpus still has none for them."""


def _frame(records: list, cols: tuple[str, ...], corpus: str | None = None):
    """Records as a DataFrame for DuckDB to scan (attrgetter, not asdict: 10x faster on a million votes)."""
    import pandas as pd

    fields = [c for c in cols if c != "corpus"]
    get = attrgetter(*fields)
    df = pd.DataFrame([get(r) for r in records], columns=fields)
    if "corpus" in cols:
        df.insert(cols.index("corpus"), "corpus", corpus)
    return df


def write_corpus(catalog: Catalog, records: CorpusRecords) -> CorpusWrite:
    """Replace the corpus's rows in one transaction if (and only if) anything differs."""
    corpus = records.name
    clips = _frame(records.clips, CLIP_COLS[:-1], corpus)
    votes = _frame(records.votes, VOTE_COLS)
    labels = _frame(records.labels, LABEL_COLS)
    skipped = _frame(records.skipped, SKIP_COLS, corpus)
    con = catalog.con
    frames = {"_in_clips": clips, "_in_votes": votes, "_in_labels": labels, "_in_skipped": skipped}
    for name, df in frames.items():
        con.register(name, df)
    try:
        with catalog.transaction():
            _refuse_foreign_clips(catalog, corpus)
            # The corpus's transcript wins; otherwise keep a transcript someone else (ASR) wrote.
            catalog.execute("""
                CREATE OR REPLACE TEMP TABLE _new_clips AS
                SELECT n.clip_id, n.corpus, n.path, n.split, CAST(n.duration_s AS DOUBLE) AS duration_s,
                       CAST(n.sample_rate AS INTEGER) AS sample_rate, CAST(n.n_channels AS INTEGER) AS n_channels,
                       n.speaker_id, n.gender,
                       CASE WHEN n.transcript IS NOT NULL THEN n.transcript
                            WHEN o.transcript_source IS DISTINCT FROM 'corpus' THEN o.transcript END AS transcript,
                       CASE WHEN n.transcript IS NOT NULL THEN 'corpus'
                            WHEN o.transcript_source IS DISTINCT FROM 'corpus' AND o.transcript IS NOT NULL
                            THEN o.transcript_source END AS transcript_source
                FROM _in_clips n LEFT JOIN clips o ON o.clip_id = n.clip_id
            """)
            pairs = {
                "clips": (f"SELECT {', '.join(CLIP_COLS)} FROM clips WHERE corpus = $c",
                          f"SELECT {', '.join(CLIP_COLS)} FROM _new_clips"),
                "votes": (f"SELECT {', '.join('v.' + c for c in VOTE_COLS)} FROM votes v "
                          "JOIN clips c USING (clip_id) WHERE c.corpus = $c",
                          f"SELECT {', '.join(VOTE_COLS)} FROM _in_votes"),
                "labels": (f"SELECT {', '.join('l.' + c for c in LABEL_COLS)} FROM labels l "
                           "JOIN clips c USING (clip_id) WHERE c.corpus = $c",
                           f"SELECT {', '.join(LABEL_COLS)} FROM _in_labels"),
                # only the skips ingest owns (clip absent from clips); `embed` records its own for present clips
                "skipped": (f"SELECT {', '.join(SKIP_COLS)} FROM skipped WHERE corpus = $c "
                            "AND clip_id NOT IN (SELECT clip_id FROM clips)",
                            f"SELECT {', '.join(SKIP_COLS)} FROM _in_skipped"),
            }
            changed = any(
                catalog.scalar(f"SELECT count(*) FROM (({old}) EXCEPT ALL ({new})"
                               f" UNION ALL (({new}) EXCEPT ALL ({old})))", {"c": corpus})
                for old, new in pairs.values()
            )
            changed = changed or catalog.scalar(
                "SELECT count(*) FROM corpora WHERE corpus = $c AND root = $r AND format = $f",
                {"c": corpus, "r": records.root, "f": records.format},
            ) == 0
            if changed:
                _replace(catalog, records)
            asr_kept = catalog.scalar(
                "SELECT count(*) FROM _new_clips WHERE transcript IS NOT NULL AND transcript_source <> 'corpus'"
            )
            catalog.execute("DROP TABLE _new_clips")
    finally:
        for name in frames:
            con.unregister(name)
    return CorpusWrite(bool(changed), int(asr_kept or 0))


def _refuse_foreign_clips(catalog: Catalog, corpus: str) -> None:
    """clip_id is global: a clip already ingested under another corpus name is a user mistake."""
    rows = catalog.execute(
        "SELECT n.clip_id, o.corpus FROM _in_clips n JOIN "
        "(SELECT clip_id, corpus FROM clips UNION ALL SELECT clip_id, corpus FROM skipped) o "
        "USING (clip_id) WHERE o.corpus <> $c ORDER BY 1 LIMIT 1",
        {"c": corpus},
    )
    if rows:
        clip_id, other = rows[0]
        raise SertoolError(
            f"clip {clip_id} is already in the catalog as part of corpus {other!r}; "
            f"re-ingest with --name {other} or remove that corpus first"
        )


def _replace(catalog: Catalog, records: CorpusRecords) -> None:
    corpus = {"c": records.name}
    own = "SELECT clip_id FROM clips WHERE corpus = $c"
    catalog.execute(f"DELETE FROM votes WHERE clip_id IN ({own}) OR clip_id IN (SELECT clip_id FROM _in_votes)", corpus)
    catalog.execute(f"DELETE FROM labels WHERE clip_id IN ({own}) OR clip_id IN (SELECT clip_id FROM _in_labels)", corpus)
    catalog.execute(
        "DELETE FROM skipped WHERE (corpus = $c AND (clip_id NOT IN (SELECT clip_id FROM clips)"
        " OR clip_id NOT IN (SELECT clip_id FROM _new_clips))) OR clip_id IN (SELECT clip_id FROM _in_skipped)",
        corpus,
    )
    catalog.execute("DELETE FROM clips WHERE corpus = $c", corpus)
    catalog.execute(f"INSERT INTO clips ({', '.join(CLIP_COLS)}) SELECT {', '.join(CLIP_COLS)} FROM _new_clips")
    catalog.execute(f"INSERT INTO votes ({', '.join(VOTE_COLS)}) SELECT {', '.join(VOTE_COLS)} FROM _in_votes")
    catalog.execute(f"INSERT INTO labels ({', '.join(LABEL_COLS)}) SELECT {', '.join(LABEL_COLS)} FROM _in_labels")
    catalog.execute(f"INSERT INTO skipped ({', '.join(SKIP_COLS)}) SELECT {', '.join(SKIP_COLS)} FROM _in_skipped")
    catalog.execute(
        "INSERT OR REPLACE INTO corpora (corpus, root, format, ingested_at) VALUES ($c, $r, $f, now()::TIMESTAMP)",
        {"c": records.name, "r": records.root, "f": records.format},
    )
