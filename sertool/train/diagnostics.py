"""Runs that learn nothing must say so: a schedule too short for its learning rate, caught before
training, and near-constant dev predictions of the kept checkpoint, caught after.

With the paper's schedule (lr 2e-5, 3 warm-up epochs) a corpus of a few hundred clips gets a few
optimizer steps per epoch, and the run ends "successfully" with near-constant predictions (dev macro-F1
~0.005, CCC ~0.005). Neither check stops a run; each prints one line and tags the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..labels import ATTRIBUTES, CLASSES

if TYPE_CHECKING:
    from .config import TrainConfig
    from .data import SplitData

MIN_LR_MASS = 0.01
"""Below this sum of learning rates over all steps the weights barely move. The paper's schedule on
MSP-Podcast: 12,500 steps at a mean lr around 1e-5, about 0.13; a few hundred clips at lr 2e-5: 0.003."""
CONSTANT_CLASS_SHARE = 0.95
"""One class predicted for this share of the dev clips (or more) is a constant classifier."""
FLAT_SPREAD = 0.1
"""Attribute predictions whose standard deviation is below this share of the labels' are flat."""


def schedule_warning(config: "TrainConfig", steps_per_epoch: int) -> str | None:
    """One line when the schedule's total learning-rate mass is too small to learn anything."""
    steps = steps_per_epoch * config.epochs
    mass = steps * config.lr * 0.5  # a warm-up ramp and a cosine to ~0 average about half the peak
    if mass >= MIN_LR_MASS:
        return None
    return (f"this schedule takes {steps} optimizer steps ({steps_per_epoch} per epoch) at a peak lr of "
            f"{config.lr:g}: about {mass:.2g} of learning-rate mass, where the paper's has ~0.13; the model "
            f"will barely move. Raise --lr (e.g. {min(1e-3, 2 * MIN_LR_MASS / max(steps, 1)):.0e} or more), or "
            "--epochs / --samples-per-epoch with more data")


def constant_warning(split: "SplitData", probs: np.ndarray, attrs: np.ndarray) -> str | None:
    """One line when the kept checkpoint predicts nearly the same thing for every clip of `split`."""
    labelled = split.targets.labelled
    if not labelled.any():
        return None
    found = []
    pred = probs[labelled].argmax(axis=1)
    counts = np.bincount(pred, minlength=len(CLASSES))
    top = int(counts.argmax())
    if counts[top] >= CONSTANT_CLASS_SHARE * len(pred) and len(pred) > 1:
        found.append(f"class {CLASSES[top]} for {counts[top] / len(pred):.0%} of the clips")
    flat = []
    for j, a in enumerate(ATTRIBUTES):
        rows = split.targets.attribute_rows(j)
        if rows.sum() < 2:
            continue
        spread, truth = float(np.std(attrs[rows, j])), float(np.std(split.attrs[rows, j]))
        if truth > 0 and spread < FLAT_SPREAD * truth:
            flat.append(f"{a} (sd {spread:.3g} vs {truth:.3g})")
    if flat:
        found.append("flat " + ", ".join(flat))
    if not found:
        return None
    return (f"the kept checkpoint's {split.name} predictions are near-constant: " + "; ".join(found) +
            ": it learnt (almost) nothing")

