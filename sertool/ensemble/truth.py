"""Dev truth from the catalog and the dev scores members are chosen by.

Scores follow the training loop exactly (same metric functions, same clips): only labelled clips whose
consensus is not `X` count; an attribute's CCC leaves out clips without that rating; macro-F1 leaves out
`O` clips (no task class).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NotFound
from ..model.labels import ATTRIBUTES, CLASSES, EXCLUDED, IGNORE_INDEX
from ..store.catalog import Catalog


@dataclass
class Truth:
    """Labels of a list of clips (in that order)."""

    clip_ids: list[str]
    attrs: np.ndarray  # (N, 3) float64, NaN where unlabelled
    class_target: np.ndarray  # (N,) int64, IGNORE_INDEX for O / X / unlabelled
    scored: np.ndarray  # (N,) bool: labelled and not X

    def ccc_scorer(self, attribute: str):
        """Score function of one attribute's predictions (N,) -> CCC on the scored clips."""
        from ..train.metrics import ccc

        j = ATTRIBUTES.index(attribute)
        keep = self.scored & ~np.isnan(self.attrs[:, j])
        t = self.attrs[keep, j]
        if t.size == 0:
            raise NotFound(f"no dev clip has a {attribute} rating: cannot choose members by CCC")
        return lambda p: ccc(t, np.asarray(p)[keep])

    def f1_scorer(self):
        """Score function of class probabilities (N, 8) -> macro-F1 of their argmax on the scored clips."""
        from ..train.metrics import f1_macro

        keep = self.scored & (self.class_target >= 0)
        t = self.class_target[keep]
        if t.size == 0:
            raise NotFound("no dev clip has one of the 8 task classes: cannot choose members by macro-F1")
        return lambda p: f1_macro(t, np.asarray(p)[keep].argmax(axis=1))


def load_truth(catalog_path: str | Path, clip_ids: list[str]) -> Truth:
    """Consensus labels of `clip_ids` from the catalog's `labels` table (read-only)."""
    with Catalog(catalog_path, read_only=True) as cat:
        rows = cat.execute("SELECT clip_id, emotion, arousal, valence, dominance FROM labels")
    by_id = {r[0]: r[1:] for r in rows}
    n = len(clip_ids)
    attrs = np.full((n, len(ATTRIBUTES)), np.nan)
    target = np.full(n, IGNORE_INDEX, dtype=np.int64)
    scored = np.zeros(n, dtype=bool)
    for i, c in enumerate(clip_ids):
        row = by_id.get(c)
        if row is None:
            continue
        emotion, *values = row
        if emotion is None or emotion == EXCLUDED:
            continue
        scored[i] = True
        attrs[i] = [np.nan if v is None else v for v in values]
        if emotion in CLASSES:
            target[i] = CLASSES.index(emotion)
    if not scored.any():
        raise NotFound(f"{catalog_path}: none of the runs' {n} dev clips has a label in this store's catalog "
                       "(is this the store the runs were trained on? see --store)")
    return Truth(list(clip_ids), attrs, target, scored)
