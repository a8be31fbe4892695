"""Dev truth from the catalog and the dev scores members are chosen by.

Scores follow the training loop by construction: the same targets (`labels.Targets`), the same rows
and the same official metric functions (`sertool.metrics`): an attribute's CCC over every clip rated on
it (X included), macro-F1 over the clips whose consensus is one of the 8 classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NotFound
from ..labels import ATTRIBUTES, Targets
from ..metrics import ccc, f1_macro
from ..store.catalog import Catalog
from ..store.clips import consensus_labels


@dataclass
class Truth:
    """Labels of a list of clips (in that order)."""

    clip_ids: list[str]
    targets: Targets

    def ccc_scorer(self, attribute: str):
        """Score function of one attribute's predictions (N,) -> CCC on the scored clips."""
        j = ATTRIBUTES.index(attribute)
        keep = self.targets.attribute_rows(j)
        t = self.targets.attrs[keep, j]
        if t.size == 0:
            raise NotFound(f"no dev clip has a {attribute} rating: cannot choose members by CCC")
        return lambda p: ccc(t, np.asarray(p)[keep])

    def f1_scorer(self):
        """Score function of class probabilities (N, 8) -> macro-F1 of their argmax on the scored clips."""
        keep = self.targets.class_rows
        t = self.targets.class_target[keep]
        if t.size == 0:
            raise NotFound("no dev clip has one of the 8 task classes: cannot choose members by macro-F1")
        return lambda p: f1_macro(t, np.asarray(p)[keep].argmax(axis=1))


def load_truth(catalog_path: str | Path, clip_ids: list[str]) -> Truth:
    """Consensus labels of `clip_ids` from the catalog (read-only)."""
    with Catalog(catalog_path, read_only=True) as cat:
        labels = consensus_labels(cat, clip_ids)
    targets = Targets.from_consensus([labels[c][0] if c in labels else None for c in clip_ids],
                                     [labels[c][1:] if c in labels else (None,) * 3 for c in clip_ids],
                                     dtype="float64")
    if not targets.labelled.any():
        raise NotFound(f"{catalog_path}: none of the runs' {len(clip_ids)} dev clips has a label in this store's "
                       "catalog (is this the store the runs were trained on? see --store)")
    return Truth(list(clip_ids), targets)
