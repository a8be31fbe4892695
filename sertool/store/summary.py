"""The figures `sertool store info` shows, as plain data (the CLI only renders them).

Each figure is a small table computed by one DuckDB query, so what the summary says is exactly what
`sertool store query` would say.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .catalog import Catalog

# Corpus splits first in their natural order, then derived and unknown names alphabetically.
_SPLIT_ORDER = ("Train", "Development", "Test-Development", "Test1", "Test2", "Test3")


def _split_key(name: str | None) -> tuple[int, str]:
    if name in _SPLIT_ORDER:
        return (_SPLIT_ORDER.index(name), "")
    return (len(_SPLIT_ORDER) + (name is None or name == "(none)"), name or "")


@dataclass(frozen=True)
class SummaryTable:
    """One figure: a title, column names and rows (values are numbers or text, never formatted)."""

    title: str
    columns: list[str]
    rows: list[tuple] = field(default_factory=list)
    empty_note: str = "none"

    def to_dict(self) -> dict:
        return {"title": self.title, "rows": [dict(zip(self.columns, r)) for r in self.rows]}


def corpora(cat: Catalog) -> SummaryTable:
    cols, rows = cat.query("""
        SELECT c.corpus, c.format, count(k.clip_id) AS clips, sum(k.duration_s) / 3600 AS hours,
               (SELECT count(*) FROM skipped s WHERE s.corpus = c.corpus) AS skipped, c.ingested_at, c.root
        FROM corpora c LEFT JOIN clips k USING (corpus) GROUP BY ALL ORDER BY c.corpus""")
    return SummaryTable("Corpora", cols, rows, "no corpus ingested yet (sertool ingest ...)")


def clips_per_split(cat: Catalog) -> SummaryTable:
    cols, rows = cat.query("""
        SELECT coalesce(c.split, '(none)') AS split, count(*) AS clips, sum(c.duration_s) / 3600 AS hours,
               count(l.clip_id) AS labelled,
               count(DISTINCT c.speaker_id) FILTER (WHERE lower(c.speaker_id) <> 'unknown') AS speakers
        FROM clips c LEFT JOIN labels l USING (clip_id) GROUP BY 1""")
    return SummaryTable("Clips per split (corpus scheme)", cols, sorted(rows, key=lambda r: _split_key(r[0])))


def class_distribution(cat: Catalog) -> SummaryTable:
    """Consensus classes (rows, most frequent first) by corpus split (columns)."""
    rows = cat.execute("""
        SELECT l.emotion, coalesce(c.split, '(none)'), count(*)
        FROM labels l JOIN clips c USING (clip_id) GROUP BY 1, 2""")
    splits = sorted({r[1] for r in rows}, key=_split_key)
    table: dict[str, dict[str, int]] = {}
    for emo, split, n in rows:
        table.setdefault(emo, {})[split] = n
    body = [(emo, *(counts.get(s, 0) for s in splits), sum(counts.values())) for emo, counts in table.items()]
    body.sort(key=lambda r: (-r[-1], r[0]))
    return SummaryTable("Class distribution (consensus)", ["emotion", *splits, "total"], body, "no labels")


def annotators_per_clip(cat: Catalog) -> SummaryTable:
    cols, rows = cat.query("""
        SELECT n_annotators, count(*) AS clips, avg(agreement) AS mean_agreement,
               count(*) FILTER (WHERE source = 'corpus') AS imported,
               count(*) FILTER (WHERE source = 'votes') AS derived
        FROM labels GROUP BY 1 ORDER BY 1""")
    return SummaryTable("Annotators per labelled clip", cols, rows, "no labels")


def transcript_coverage(cat: Catalog) -> SummaryTable:
    cols, rows = cat.query("""
        SELECT coalesce(transcript_source, 'none') AS source, count(*) AS clips,
               count(*) / sum(count(*)) OVER () AS share
        FROM clips GROUP BY 1 ORDER BY 2 DESC, 1""")
    return SummaryTable("Transcript coverage", cols, rows, "no clips")


def transcripts_by_model(cat: Catalog) -> SummaryTable:
    """Every transcript the catalog keeps, by source and (ASR) the model that wrote it."""
    cols = ["source", "model", "fingerprint", "clips"]
    if not cat.columns("transcripts"):  # a catalog no writer has migrated yet
        return SummaryTable("Transcripts by source and model", cols, [], "none recorded (schema before 3)")
    rows = cat.execute("SELECT source, coalesce(model, CASE source WHEN 'asr' THEN '(unrecorded)' END), fingerprint, "
                       "count(*) FROM transcripts GROUP BY ALL ORDER BY 1, 4 DESC")
    return SummaryTable("Transcripts by source and model", cols, rows, "no transcripts")


def split_schemes(cat: Catalog) -> SummaryTable:
    corpus = cat.execute("SELECT split, count(*) FROM clips WHERE split IS NOT NULL GROUP BY 1")
    derived = cat.execute("""
        SELECT s.scheme, s.params, s.created_at, p.split, count(p.clip_id)
        FROM split_schemes s LEFT JOIN splits p USING (scheme) GROUP BY ALL""")

    def fmt(counts: list[tuple[str, int]]) -> str:
        return ", ".join(f"{s} {n}" for s, n in sorted(counts, key=lambda c: _split_key(c[0])) if s is not None)

    rows = [("corpus", "the corpus's own splits (default)", None, fmt(corpus))] if corpus else []
    schemes: dict[str, tuple] = {}
    for scheme, params, created, split, n in derived:
        schemes.setdefault(scheme, (params, created, []))[2].append((split, n))
    rows += [(s, p, c, fmt(counts)) for s, (p, c, counts) in sorted(schemes.items())]
    return SummaryTable("Split schemes", ["scheme", "params", "created_at", "clips per split"], rows, "no clips")


def embeddings(cat: Catalog) -> SummaryTable:
    cols, rows = cat.query("""
        SELECT e.encoder, e.variant, count(*) AS clips, sum(e.n_frames) AS frames,
               any_value(x.dim) AS dim, any_value(x.checkpoint) AS checkpoint
        FROM embeddings e LEFT JOIN encoders x ON x.name = e.encoder GROUP BY 1, 2 ORDER BY 1, 2""")
    return SummaryTable("Embeddings per encoder and variant", cols, rows, "no embeddings yet (sertool embed)")


def store_summary(cat: Catalog) -> list[SummaryTable]:
    """Every figure `store info` shows, in display order."""
    return [
        corpora(cat),
        clips_per_split(cat),
        class_distribution(cat),
        annotators_per_clip(cat),
        transcript_coverage(cat),
        transcripts_by_model(cat),
        split_schemes(cat),
        embeddings(cat),
    ]
