"""Transcripts as data: every transcript a clip has, where it came from, and which text each text
encoder's row embedded.

A clip may have two transcripts side by side in `transcripts`, one per source: `corpus` (what the corpus
ships; ingest writes it, only ingest replaces it) and `asr` (what `sertool transcribe` wrote, with the
model's checkpoint, revision, decoding settings and their fingerprint). `clips.transcript` stays the
*preferred* text, the corpus's where there is one, else ASR's, so every query written before this
existed keeps its meaning.

A text choice (`TEXT_CHOICES`) names which of them a text encoder reads: `preferred`, `corpus` or `asr`.
Each choice is its own embedding variant (`text_variant`): `preferred` is `clean`, as it always was, so a
store embedded before choices existed stays valid. Every text-encoder row records the source and the
SHA-256 of the exact text it embedded (`embeddings.text_source`, `text_sha256`); a row whose text has
changed since (re-ingested corpus transcripts, ASR redone) is found by `stale_text_rows` and embedded
again, never silently reused. Rows written before this existed record no text and are counted, not
judged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import InvalidOption
from .catalog import Catalog
from .records import TranscriberRecord

CORPUS = "corpus"
"""A transcript the corpus shipped."""
ASR = "asr"
"""A transcript `sertool transcribe` wrote."""
PREFERRED = "preferred"
"""The corpus's transcript where there is one, else ASR's: `clips.transcript`."""
TEXT_CHOICES = (PREFERRED, CORPUS, ASR)
"""Which transcript a text encoder reads (`embed --text`, `train --text`)."""

CLEAN = "clean"
_VARIANTS = {PREFERRED: CLEAN, CORPUS: "text-corpus", ASR: "text-asr"}


def check_text_choice(choice: str, option: str = "text") -> str:
    if choice not in TEXT_CHOICES:
        raise InvalidOption(option, f"unknown text {choice!r}: choose from {', '.join(TEXT_CHOICES)}")
    return choice


def text_variant(choice: str) -> str:
    """The embedding variant a text encoder stores choice `choice` under (`preferred` is `clean`: the
    variant every store made before text choices existed holds)."""
    return _VARIANTS[check_text_choice(choice)]


def text_choice_of(variant: str) -> str | None:
    """The text choice a text encoder's variant holds (None: not a text variant)."""
    return next((c for c, v in _VARIANTS.items() if v == variant), None)


TEXT_VARIANTS = tuple(_VARIANTS.values())
"""Every variant a text encoder stores; the text-only ones are never audio augmentations."""


def text_sha256(text: str) -> str:
    """Hex SHA-256 of the UTF-8 text (DuckDB's `sha256()` computes the same, so SQL can compare)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- reading --------------------------------------------------------------------------------------------

def clip_texts(cat: Catalog, choice: str) -> dict[str, tuple[str, str]]:
    """clip id -> (text, source) of text choice `choice`, for the clips that have one."""
    check_text_choice(choice)
    if choice == PREFERRED:
        rows = cat.execute("SELECT clip_id, transcript, transcript_source FROM clips WHERE transcript IS NOT NULL")
    else:
        rows = cat.execute("SELECT clip_id, text, source FROM transcripts WHERE source = ?", [choice])
    return {r[0]: (r[1], r[2]) for r in rows}


def transcript_pairs(cat: Catalog) -> list[tuple[str, str | None, str, str]]:
    """(clip id, split, corpus text, asr text) of every clip that has both, by split and clip id: what
    ASR quality is measured on."""
    return [tuple(r) for r in cat.execute(
        "SELECT c.clip_id, c.split, t.text, a.text FROM clips c "
        "JOIN transcripts t ON t.clip_id = c.clip_id AND t.source = 'corpus' "
        "JOIN transcripts a ON a.clip_id = c.clip_id AND a.source = 'asr' ORDER BY c.split NULLS LAST, c.clip_id")]


@dataclass(frozen=True)
class AsrWriter:
    """One ASR configuration whose transcripts the catalog holds, and how many."""

    fingerprint: str | None
    """None: ASR transcripts written before sertool recorded the model."""
    checkpoint: str | None
    revision: str | None
    decoding: dict | None
    clips: int

    def describe(self) -> str:
        if self.fingerprint is None:
            return "an unrecorded model (written before sertool kept ASR provenance)"
        return f"{self.checkpoint} (fingerprint {self.fingerprint})"


def asr_writers(cat: Catalog) -> list[AsrWriter]:
    """The ASR configurations the catalog's `asr` transcripts came from, most clips first."""
    rows = cat.execute("SELECT fingerprint, any_value(model), any_value(revision), any_value(decoding), count(*) "
                       "FROM transcripts WHERE source = 'asr' GROUP BY fingerprint ORDER BY 5 DESC, 1")
    return [AsrWriter(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None, int(r[4])) for r in rows]


def clips_for_asr(cat: Catalog, *, every: bool = False, redo: str | None = None) -> list[str]:
    """Clip ids ASR has to transcribe (skipped clips never): those without any transcript; with `every`,
    also those without an ASR transcript; with `redo` (a fingerprint), also those whose ASR transcript
    another configuration wrote."""
    cond = ["c.transcript IS NULL"]
    params: list = []
    if every:
        cond.append("a.clip_id IS NULL")
    if redo is not None:
        cond.append("(a.clip_id IS NOT NULL AND a.fingerprint IS DISTINCT FROM ?)")
        params.append(redo)
    rows = cat.execute(
        "SELECT c.clip_id FROM clips c LEFT JOIN transcripts a ON a.clip_id = c.clip_id AND a.source = 'asr' "
        f"WHERE c.clip_id NOT IN (SELECT clip_id FROM skipped) AND ({' OR '.join(cond)}) ORDER BY c.clip_id", params)
    return [r[0] for r in rows]


# -- writing --------------------------------------------------------------------------------------------

def write_asr(cat: Catalog, texts: Iterable[tuple[str, str]], model: TranscriberRecord) -> None:
    """ASR transcripts with their model, in one transaction: each replaces the clip's `asr` row, and
    becomes the preferred text (`clips.transcript`) unless the corpus has one, which is never touched."""
    import pandas as pd

    rows = list(texts)
    if not rows:
        return
    df = pd.DataFrame(rows, columns=["clip_id", "text"])
    with cat.transaction():
        cat.con.register("_sertool_asr", df)
        try:
            cat.execute("DELETE FROM transcripts WHERE source = 'asr' AND clip_id IN (SELECT clip_id FROM _sertool_asr)")
            cat.execute("INSERT INTO transcripts (clip_id, source, text, model, revision, fingerprint, decoding, "
                        "created_at) SELECT clip_id, 'asr', text, ?, ?, ?, ?, now()::TIMESTAMP FROM _sertool_asr",
                        [model.checkpoint, model.revision, model.fingerprint,
                         json.dumps(model.decoding, sort_keys=True)])
            cat.execute("UPDATE clips SET transcript = n.text, transcript_source = 'asr' FROM _sertool_asr n "
                        "WHERE clips.clip_id = n.clip_id AND clips.transcript_source IS DISTINCT FROM 'corpus'")
        finally:
            cat.con.unregister("_sertool_asr")


# -- which text each row embedded ------------------------------------------------------------------------

def _current_texts_sql() -> str:
    """(clip_id, variant, text) of every text variant as the catalog holds it now."""
    return (f"SELECT clip_id, '{CLEAN}' AS variant, transcript AS text FROM clips "
            f"UNION ALL SELECT clip_id, CASE source WHEN 'corpus' THEN '{_VARIANTS[CORPUS]}' "
            f"WHEN 'asr' THEN '{_VARIANTS[ASR]}' END, text FROM transcripts")


def stale_text_rows(cat: Catalog, encoders: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
    """(clip, encoder, variant) rows whose recorded text is no longer the clip's text of that variant
    (changed, or gone), for every text encoder or those named."""
    if "text_sha256" not in cat.columns("embeddings"):  # a catalog no writer has migrated yet
        return []
    sql = (f"SELECT e.clip_id, e.encoder, e.variant FROM embeddings e LEFT JOIN ({_current_texts_sql()}) t "
           "ON t.clip_id = e.clip_id AND t.variant = e.variant "
           "WHERE e.text_sha256 IS NOT NULL AND (t.text IS NULL OR sha256(t.text) <> e.text_sha256)")
    params: list = []
    if encoders is not None:
        sql += " AND e.encoder IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(encoders))
    return [tuple(r) for r in cat.execute(sql + " ORDER BY 2, 3, 1", params)]


def untracked_text_rows(cat: Catalog, encoders: Sequence[str]) -> int:
    """Rows of these text encoders that record no text (embedded before sertool kept it): read as ever,
    but nothing can tell whether their text is still the clip's."""
    if not encoders or "text_sha256" not in cat.columns("embeddings"):
        return 0
    return int(cat.scalar("SELECT count(*) FROM embeddings WHERE text_sha256 IS NULL "
                          "AND encoder IN (SELECT unnest(?::VARCHAR[]))", [list(encoders)]) or 0)


def refresh_text(cat: Catalog, units: Sequence[tuple[str, str]]) -> tuple[list, list]:
    """Delete the rows of `units` (text encoder, variant) whose text has changed, in one transaction, so
    the run embeds them again; returns (deleted rows, stale rows of other units, left for their own run).
    Their frames stay in the array, unreferenced, until `store compact` (as `provenance.refresh_audio`)."""
    from .provenance import forget_rows

    wanted = set(units)
    remade, left = [], []
    with cat.transaction():
        for row in stale_text_rows(cat):
            (remade if (row[1], row[2]) in wanted else left).append(row)
        forget_rows(cat, remade)
    return remade, left

