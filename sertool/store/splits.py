"""Split schemes: which clip trains, which validates, which tests.

The corpus's own splits (`clips.split`) are the default scheme, `corpus`. A derived scheme cuts a
validation set out of one corpus split, as the paper's ablation did: part of the original Train
becomes `Development` (speaker-disjoint from what stays in `Train`), and the corpus's original
`Development` becomes `Test-Development`, a test set. Every other clip keeps its corpus split.
Training reads `Train` and `Development` through `split_sql`; every other split name is a test split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidOption, NotFound, SertoolError
from .catalog import CORPUS_SCHEME, Catalog
from .records import SchemeClip

TRAIN, DEV = "Train", "Development"
TEST_DEV = "Test-Development"  # the corpus's Development, kept as a test set by derived schemes
UNKNOWN_SPEAKER = "Unknown"


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def split_sql(scheme: str = CORPUS_SCHEME) -> str:
    """A subquery yielding (clip_id, split) under `scheme`, for joining: `... JOIN (<this>) s USING (clip_id)`."""
    if scheme == CORPUS_SCHEME:
        return "SELECT clip_id, split FROM clips WHERE split IS NOT NULL"
    return f"SELECT clip_id, split FROM splits WHERE scheme = {_quote(scheme)}"


def scheme_exists(catalog: Catalog, scheme: str) -> bool:
    if scheme == CORPUS_SCHEME:
        return True
    return bool(catalog.scalar("SELECT count(*) FROM split_schemes WHERE scheme = ?", [scheme]))


def clip_splits(catalog: Catalog, scheme: str = CORPUS_SCHEME) -> dict[str, str]:
    """clip_id -> split name under `scheme`."""
    if not scheme_exists(catalog, scheme):
        raise NotFound(f"no split scheme {scheme!r} (see `sertool store info`; make one with `sertool store split`)")
    return dict(catalog.execute(split_sql(scheme) + " ORDER BY clip_id"))


@dataclass(frozen=True)
class SplitParams:
    """How a derived scheme was made; stored as JSON in `split_schemes.params` so it can be remade."""

    from_split: str = TRAIN
    holdout: float = 0.1
    by: Literal["speaker", "clip"] = "speaker"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise InvalidOption("holdout", f"must be between 0 and 1 (exclusive), got {self.holdout}")
        if self.by not in ("speaker", "clip"):
            raise InvalidOption("by", f"must be 'speaker' or 'clip', got {self.by!r}")
        if self.from_split == DEV:
            raise InvalidOption("from_split", "Development: the corpus's Development becomes the test set "
                               "Test-Development in a derived scheme; hold out from Train instead")

    def to_json(self) -> str:
        return json.dumps({"from": self.from_split, "holdout": self.holdout, "by": self.by, "seed": self.seed})


def _known(speaker: str | None) -> bool:
    return speaker is not None and speaker.strip().lower() not in ("", UNKNOWN_SPEAKER.lower())


def hold_out(clips: list[tuple[str, str | None]], params: SplitParams) -> set[str]:
    """The clip ids of the from-split that become Development.

    `by='speaker'`: whole known speakers, in a seeded random order, until the held-out clips reach
    `holdout` of the from-split (clips of unknown speakers can't be kept disjoint, so they train).
    `by='clip'`: a seeded random `holdout` share of the clips.
    """
    import numpy as np

    rng = np.random.default_rng(params.seed)
    clips = sorted(clips)
    target = max(1, round(params.holdout * len(clips)))
    if params.by == "clip":
        pick = rng.choice(len(clips), size=min(target, len(clips)), replace=False)
        return {clips[i][0] for i in pick}
    by_speaker: dict[str, list[str]] = {}
    for clip_id, spk in clips:
        if _known(spk):
            by_speaker.setdefault(spk, []).append(clip_id)
    if not by_speaker:
        raise SertoolError(f"no clip of split {params.from_split!r} has a known speaker; "
                           "a speaker-disjoint hold-out is impossible (use --by clip)")
    speakers = sorted(by_speaker)
    held: set[str] = set()
    for i in rng.permutation(len(speakers)):
        if len(held) >= target:
            break
        held.update(by_speaker[speakers[i]])
    return held


def derive_scheme(
    catalog: Catalog,
    name: str,
    params: SplitParams,
    *,
    replace: bool = False,
) -> dict[str, int]:
    """Record scheme `name` in `split_schemes` + `splits`; returns clips per split of the new scheme."""
    if not name or name == CORPUS_SCHEME:
        raise SertoolError(f"{name!r} is reserved for the corpus's own splits; pick another scheme name")
    if scheme_exists(catalog, name) and not replace:
        raise SertoolError(f"split scheme {name!r} exists already; pass --replace to overwrite it")
    rows = catalog.execute("SELECT clip_id, split, speaker_id FROM clips WHERE split IS NOT NULL ORDER BY clip_id")
    source = [(c, spk) for c, s, spk in rows if s == params.from_split]
    if not source:
        present = sorted({s for _, s, _ in rows})
        raise NotFound(f"no clips in split {params.from_split!r} (splits: {', '.join(present) or 'none'})")
    held = hold_out(source, params)
    assigned = []
    for clip_id, split, _ in rows:
        if split == params.from_split:
            new = DEV if clip_id in held else TRAIN
        elif split == DEV:
            new = TEST_DEV
        else:
            new = split
        assigned.append((name, clip_id, new))
    import pandas as pd

    df = pd.DataFrame(assigned, columns=["scheme", "clip_id", "split"])
    catalog.con.register("_new_splits", df)
    try:
        with catalog.transaction():
            catalog.execute("DELETE FROM splits WHERE scheme = ?", [name])
            catalog.execute("DELETE FROM split_schemes WHERE scheme = ?", [name])
            catalog.execute("INSERT INTO split_schemes VALUES (?, ?, now()::TIMESTAMP)", [name, params.to_json()])
            catalog.execute("INSERT INTO splits (scheme, clip_id, split) SELECT scheme, clip_id, split FROM _new_splits")
    finally:
        catalog.con.unregister("_new_splits")
    counts: dict[str, int] = {}
    for _, _, s in assigned:
        counts[s] = counts.get(s, 0) + 1
    return dict(sorted(counts.items()))


def ensure_scheme(catalog: Catalog, name: str, params: SplitParams) -> str | None:
    """Make scheme `name` as `params` say if the catalog lacks it; returns the name when made here. One
    of the same name made with other parameters is refused: a recipe must not train on a different split."""
    rows = catalog.execute("SELECT params FROM split_schemes WHERE scheme = ?", [name])
    if rows:
        if json.loads(rows[0][0]) != json.loads(params.to_json()):
            raise SertoolError(f"split scheme {name!r} exists with other parameters ({rows[0][0]}, the recipe says "
                               f"{params.to_json()}): rename one, or remake it with `sertool store split --replace`")
        return None
    derive_scheme(catalog, name, params)
    return name


def scheme_clips(catalog: Catalog, scheme: str, encoders: list[str]) -> list[SchemeClip]:
    """Every clip of `scheme` with its consensus labels, marked complete when all `encoders` have its
    `clean` frames; ordered by split, then clip id."""
    if not scheme_exists(catalog, scheme):
        raise NotFound(f"no split scheme {scheme!r} in the catalog (see `sertool store info`)")
    ph = ", ".join("?" for _ in encoders)
    rows = catalog.execute(
        f"""
        WITH s AS ({split_sql(scheme)}),
        complete AS (
            SELECT clip_id FROM embeddings WHERE variant = 'clean' AND encoder IN ({ph})
            GROUP BY clip_id HAVING count(DISTINCT encoder) = {len(encoders)}
        )
        SELECT s.clip_id, s.split, l.emotion, l.arousal, l.valence, l.dominance, f.clip_id IS NOT NULL
        FROM s LEFT JOIN labels l USING (clip_id) LEFT JOIN complete f USING (clip_id)
        ORDER BY s.split, s.clip_id
        """,
        list(encoders),
    )
    return [SchemeClip(*r) for r in rows]


def clips_with_frames(catalog: Catalog, encoder: str, variant: str) -> set[str]:
    """Clips that have `encoder`'s frames of `variant`."""
    return {r[0] for r in catalog.execute("SELECT clip_id FROM embeddings WHERE encoder = ? AND variant = ?",
                                          [encoder, variant])}


def usable_variants(catalog: Catalog, encoders: list[str]) -> dict[str, list[str]]:
    """clip id -> its augmented variants that every audio encoder storing that variant at all has for it
    (a text encoder's variants are text choices, `store.transcripts`, never augmentations)."""
    ph = ", ".join("?" for _ in encoders)
    rows = catalog.execute(
        f"""
        WITH e AS (SELECT clip_id, encoder, variant FROM embeddings WHERE variant <> 'clean' AND encoder IN ({ph})
                   AND encoder NOT IN (SELECT name FROM encoders WHERE frame_rate IS NULL)),
        need AS (SELECT variant, count(DISTINCT encoder) AS n FROM e GROUP BY variant),
        have AS (SELECT clip_id, variant, count(DISTINCT encoder) AS n FROM e GROUP BY clip_id, variant)
        SELECT have.clip_id, have.variant FROM have JOIN need USING (variant) WHERE have.n = need.n
        ORDER BY have.clip_id, have.variant
        """,
        list(encoders),
    )
    out: dict[str, list[str]] = {}
    for clip_id, variant in rows:
        out.setdefault(clip_id, []).append(variant)
    return out
