"""The digest of the data a run was given: what `runs --stale` compares with the store as it is now.

A run's figures mean something only for the data it saw. `DatasetSpec` says which data (the split
scheme, its splits, the encoders whose frames feed the model, and whether the annotators' votes or the
speakers' genders make targets); `dataset_digest` hashes what the store holds for it now:

* the clips of those splits that have `clean` frames of every encoder (the clips training reads),
  with their split and consensus labels (emotion, arousal, valence, dominance);
* every vote on them when vote-derived targets are used (annotator, class, secondary, ratings), and
  their genders when a gender head trains;
* each encoder's name and fingerprint, and per clip the SHA-256 of the audio its `clean` frames were
  made from, or for a text encoder of the transcript its frames of the run's text choice embedded
  (where the row records one: audio or text re-embedded after a change is other data).

A re-ingest that revises one label, a new clip embedded, a re-made encoder: each changes the digest.
The spec travels with the dataset (MLflow's profile), so any later command can recompute it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .catalog import Catalog
from .splits import scheme_exists, split_sql

DIGEST_CHARS = 32
"""Hex characters kept (128 bits; MLflow stores at most 36)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Which of the store's data: enough to recompute the digest at any later time."""

    scheme: str
    splits: tuple[str, ...]
    encoders: tuple[str, ...]
    votes: bool = False
    """The annotators' votes make targets (soft class targets, vote-mean attributes, annotator dropout)."""
    genders: bool = False
    """The speakers' genders make targets (an auxiliary gender head)."""
    text_variant: str = "clean"
    """The variant the text encoders' frames come from: the text choice (`store.transcripts`); `clean`,
    the preferred transcript, is left out of the spec's dict, so digests made before text choices stay."""

    def to_dict(self) -> dict:
        d = {**asdict(self), "splits": list(self.splits), "encoders": list(self.encoders)}
        if self.text_variant == "clean":
            del d["text_variant"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetSpec":
        return cls(str(d["scheme"]), tuple(d["splits"]), tuple(d["encoders"]), bool(d.get("votes", False)),
                   bool(d.get("genders", False)), str(d.get("text_variant", "clean")))


@dataclass(frozen=True)
class DatasetDigest:
    spec: DatasetSpec
    digest: str
    clips: int
    """Clips covered (with frames of every encoder)."""
    exists: bool = True
    """False when the split scheme is gone from the store (then nothing can match)."""


def store_name(root: str | Path) -> str:
    """How datasets name a store: its directory's name."""
    return Path(str(root).rstrip("/")).name or str(root)


def dataset_digest(catalog: Catalog, spec: DatasetSpec) -> DatasetDigest:
    """The digest of what the store holds for `spec` now (see the module docstring)."""
    if not scheme_exists(catalog, spec.scheme):
        return DatasetDigest(spec, "", 0, exists=False)
    h = hashlib.sha256()
    h.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    fps = dict(catalog.execute("SELECT name, fingerprint FROM encoders"))
    h.update(json.dumps([[e, fps.get(e)] for e in spec.encoders]).encode())
    enc = list(spec.encoders)
    ph = ", ".join("?" for _ in enc)
    split_ph = ", ".join("?" for _ in spec.splits)
    have = catalog.columns("embeddings")
    audio = "e.audio_sha256" if "audio_sha256" in have else "NULL"
    if "text_sha256" in have:  # the text a text row embedded, like the audio an audio row was made from
        audio = f"coalesce({audio}, e.text_sha256)"
    text_encs = [r[0] for r in catalog.execute("SELECT name FROM encoders WHERE frame_rate IS NULL")]
    rows = catalog.execute(
        f"""
        WITH s AS ({split_sql(spec.scheme)}),
        e AS (SELECT clip_id, encoder, {audio} AS audio FROM embeddings e WHERE encoder IN ({ph})
              AND variant = CASE WHEN encoder IN (SELECT unnest(?::VARCHAR[])) THEN ? ELSE 'clean' END),
        complete AS (SELECT clip_id, list(audio ORDER BY encoder) AS audio FROM e GROUP BY clip_id
                     HAVING count(DISTINCT encoder) = {len(enc)})
        SELECT s.clip_id, s.split, l.emotion, l.arousal, l.valence, l.dominance, f.audio
        FROM s JOIN complete f USING (clip_id) LEFT JOIN labels l USING (clip_id)
        WHERE s.split IN ({split_ph}) ORDER BY s.clip_id
        """,
        [*enc, text_encs, spec.text_variant, *spec.splits],
    )
    for r in rows:
        h.update(repr(r).encode())
    ids = [r[0] for r in rows]
    if spec.votes and ids:
        for r in catalog.execute(
                "SELECT v.clip_id, v.annotator_id, v.emotion, v.secondary, v.arousal, v.valence, v.dominance "
                "FROM votes v JOIN (SELECT unnest(?::VARCHAR[]) AS clip_id) w USING (clip_id) "
                "ORDER BY v.clip_id, v.annotator_id", [ids]):
            h.update(repr(r).encode())
    if spec.genders and ids:
        for r in catalog.execute("SELECT c.clip_id, c.gender FROM clips c JOIN (SELECT unnest(?::VARCHAR[]) AS "
                                 "clip_id) w USING (clip_id) ORDER BY 1", [ids]):
            h.update(repr(r).encode())
    return DatasetDigest(spec, h.hexdigest()[:DIGEST_CHARS], len(ids))
