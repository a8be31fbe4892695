"""Training data from the feature store: which clips of a split scheme, with which targets and variants.

Everything the catalog knows (splits, labels, which augmented variants each clip has) is read once,
up front, in the main process; the DataLoader's workers then only read frames (`train.batches`).
Which clips train and what their targets are is `sertool.labels`' rule, the same one ensembles and
scoring use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NotFound
from ..labels import NO_AGREEMENT, Targets, trains
from ..store.catalog import Catalog
from ..store.embeddings import stored_encoders
from ..store.records import SchemeClip, StoredEncoder
from ..store.splits import DEV, TRAIN, clips_with_frames, scheme_clips, usable_variants
from ..store.transcripts import CLEAN

if TYPE_CHECKING:
    from .config import TextPlan


@dataclass
class SplitData:
    """One split's clips with their targets, in a fixed order (sorted by clip id)."""

    name: str
    clip_ids: list[str]
    targets: Targets
    variants: list[tuple[str, ...]] = field(default_factory=list)
    """Augmented variants each clip has for every audio encoder (empty tuple: clean only)."""
    text_variant: str = CLEAN
    """The variant the text encoders' frames are read from: the split's text choice (`TextPlan`)."""

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def class_target(self) -> np.ndarray:
        return self.targets.class_target  # (N,) int64: 0..7, IGNORE_INDEX for O / X / unlabelled

    @property
    def attrs(self) -> np.ndarray:
        return self.targets.attrs  # (N, 3) float32, NaN where unlabelled



@dataclass
class TrainingData:
    """Everything the loop needs from the catalog, loaded once."""

    encoders: dict[str, StoredEncoder]
    """In the model's input order."""
    train: SplitData
    dev: SplitData
    tests: dict[str, SplitData]
    """Every split other than Train and Development (labelled or not), by name."""
    missing: int = 0
    """Clips of the scheme left out because some encoder has no clean frames for them."""

    @property
    def class_counts(self) -> list[int]:
        """Training clips per task class (CLASSES order), for the class weights."""
        return self.train.targets.class_counts()

    def encoder_meta(self) -> dict[str, dict[str, Any]]:
        """What a checkpoint records of each encoder: enough to check frames and to rebuild it for prediction."""
        return {n: {"dim": e.dim, "fingerprint": e.fingerprint, "kind": e.kind, "layer": e.layer}
                for n, e in self.encoders.items()}


def load_encoders(catalog: Catalog, names: Sequence[str]) -> dict[str, StoredEncoder]:
    known = stored_encoders(catalog)
    missing = [n for n in names if n not in known]
    if missing:
        have = ", ".join(sorted(known)) or "none (run `sertool embed` first)"
        raise NotFound(f"encoder(s) {', '.join(missing)} not in the store (it has: {have})")
    return {n: known[n] for n in names}


def _text_complete(catalog: Catalog, scheme: str, rows: list[SchemeClip], infos: dict[str, StoredEncoder],
                   text: "TextPlan") -> list[SchemeClip]:
    """`rows` marked complete when every audio encoder has their clean frames and every text encoder the
    frames of their split's text choice. Refuses, naming what to run, a choice whose frames Train or
    Development lacks entirely (no such transcripts, or not embedded)."""
    from ..store.transcripts import CORPUS, clip_texts

    audio = [n for n, e in infos.items() if not e.text]
    texts = [n for n, e in infos.items() if e.text]
    audio_ok = {r.clip_id for r in scheme_clips(catalog, scheme, audio) if r.complete} if audio else None
    have: dict[tuple[str, str], set[str]] = {}
    for split in sorted({r.split for r in rows}):
        variant, choice = text.variant(split), text.choice(split)
        ids = {r.clip_id for r in rows if r.split == split}
        for enc in texts:
            if (enc, variant) not in have:
                have[(enc, variant)] = clips_with_frames(catalog, enc, variant)
            if split not in (TRAIN, DEV) or have[(enc, variant)] & ids:
                continue  # a test split without them (Test3 has no corpus text) is left out, as missing frames
            if not clip_texts(catalog, choice):
                how = ("ingest a corpus that has transcripts" if choice == CORPUS else
                       f"run `sertool transcribe --all`, then `sertool embed --encoders {enc} --text {choice}`")
                raise NotFound(f"--text {choice} for {split}: the catalog has no {choice} transcripts; {how}")
            raise NotFound(f"--text {choice} for {split}: {enc} has no frames of the {choice} transcripts "
                           f"(variant {variant}); run `sertool embed --encoders {enc} --text {choice}`")
    return [replace(r, complete=(audio_ok is None or r.clip_id in audio_ok)
                    and all(r.clip_id in have[(e, text.variant(r.split))] for e in texts)) for r in rows]


def load_training_data(catalog: Catalog, encoders: Sequence[str], scheme: str = "corpus", *,
                       o_clips: str = "regression", x_clips: str = "exclude", soft: bool = False,
                       refit: bool = False, text: "TextPlan | None" = None) -> TrainingData:
    """Clips of every split of `scheme` that have clean frames for all `encoders`, with targets and variants.

    Train keeps the clips that train (`labels.trains`, with what to do with O and X clips; with `soft`
    targets X clips train the classifier, and their attributes only if `x_clips` says so); Development
    and the test splits keep every clip (predictions are written for all of them; `metrics.score` picks
    the rows each figure counts). `refit`: Development's clips train too, and no split selects.
    """
    names = list(encoders)
    rows = scheme_clips(catalog, scheme, names)
    infos = load_encoders(catalog, names)
    variants = usable_variants(catalog, names)
    if text is not None and not text.is_preferred and rows:
        rows = _text_complete(catalog, scheme, rows, infos, text)

    by_split: dict[str, list[SchemeClip]] = {}
    missing = 0
    for r in rows:
        if not r.complete:
            missing += 1
            continue
        by_split.setdefault(r.split, []).append(r)

    def make(name: str, items: list[SchemeClip]) -> SplitData:
        targets = Targets.from_consensus([r.emotion for r in items],
                                         [(r.arousal, r.valence, r.dominance) for r in items])
        return SplitData(name, [r.clip_id for r in items], targets,
                         [tuple(variants.get(r.clip_id, ())) for r in items],
                         text.variant(name) if text is not None else CLEAN)

    pool = by_split.pop(TRAIN, []) + (by_split.pop(DEV, []) if refit else [])
    train = make(TRAIN, sorted((r for r in pool if trains(r.emotion, o_clips=o_clips, x_clips=x_clips, soft=soft)),
                               key=lambda r: r.clip_id))
    if soft and x_clips == "exclude":  # in the sample for their votes only: no attribute targets
        train.targets.attrs[[e == NO_AGREEMENT for e in train.targets.emotion]] = np.nan
    dev = make(DEV, by_split.pop(DEV, []))
    tests = {name: make(name, items) for name, items in sorted(by_split.items())}
    if len(train) == 0:
        raise NotFound(f"split scheme {scheme!r} has no labelled {TRAIN} clip with frames of {', '.join(names)}")
    if not refit and not dev.targets.labelled.any():
        raise NotFound(f"split scheme {scheme!r} has no labelled {DEV} clip with frames of {', '.join(names)}")
    return TrainingData(infos, train, dev, tests, missing)
