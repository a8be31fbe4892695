"""`sertool score`: any challenge-format file, scored against the catalog's consensus labels the
official way (`metrics.score`), with the same bad-input rules as ingest.

A file must hold every clip of the split once and nothing else: an unknown FileName, a clip of another
split, a clip listed twice, a missing clip, a rating outside 1-7 or an unknown class code is one line
naming the file, the row and the field (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput, NotFound
from ..labels import ATTRIBUTES, CLASSES, Targets
from ..metrics import CCC, F1, F1_8, score
from ..store.catalog import Catalog
from ..store.clips import consensus_labels
from ..store.layout import StoreLayout
from ..store.splits import DEV, clip_splits
from .challenge import read_challenge

TASK_FIGURES: dict[int, tuple[str, ...]] = {1: (F1, F1_8), 2: tuple(CCC.values())}
"""What each task's file is scored by (the official figures, and macro-F1 over all 8 classes)."""


@dataclass
class FileScore:
    path: Path
    task: int
    split: str
    n: int
    """Clips in the file (every clip of the split)."""
    figures: dict[str, float]

    def to_dict(self) -> dict:
        return {"task": self.task, "n": self.n, **self.figures}


def score_file(layout: StoreLayout, path: str | Path, split: str = DEV, scheme: str = "corpus") -> FileScore:
    """Check a challenge file against the split's clips, then score it."""
    f = read_challenge(path)
    with Catalog(layout.catalog, read_only=True) as cat:
        splits = clip_splits(cat, scheme)
        labels = consensus_labels(cat)
    wanted = sorted(c for c, s in splits.items() if s == split)
    if not wanted:
        raise NotFound(f"{layout.catalog}: no clip in split {split!r} (scheme {scheme!r})")
    for clip, line in zip(f.clip_ids, f.lines):
        if clip not in splits:
            raise BadInput(f.path, f"{clip}: no such clip in the catalog", row=line, field="FileName")
        if splits[clip] != split:
            raise BadInput(f.path, f"{clip} belongs to {splits[clip]}, not {split}", row=line, field="FileName")
    missing = sorted(set(wanted) - set(f.clip_ids))
    if missing:
        raise BadInput(f.path, f"no prediction for {len(missing)} of the {len(wanted)} {split} clips "
                       f"(first: {missing[0]}.wav)", field="FileName")
    rows = [labels.get(c, (None, None, None, None)) for c in f.clip_ids]
    targets = Targets.from_consensus([r[0] for r in rows], [r[1:] for r in rows], dtype="float64")
    if not targets.labelled.any():
        raise NotFound(f"no clip of {split} has a consensus label in {layout.catalog}: nothing to score against")
    if f.task == 1:
        pred = np.array([CLASSES.index(c) for c in f.classes or []])
        attrs = np.full((len(pred), len(ATTRIBUTES)), np.nan)
    else:
        pred, attrs = np.zeros(len(f.clip_ids), dtype=np.int64), f.attrs
    figures = score(targets, pred, attrs)
    return FileScore(f.path, f.task, split, len(f.clip_ids), {n: figures[n] for n in TASK_FIGURES[f.task]})
