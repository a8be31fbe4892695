"""What a finished run leaves behind besides its weights and prediction tables: metric names per split, plots."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from ..labels import ATTRIBUTES, CLASSES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .data import SplitData


def metric_prefix(split: str) -> str:
    """Metric-name prefix for a split: `Development` -> `dev`, `Test1` -> `test1`, `Test-Development` -> `test_development`."""
    if split == "Development":
        return "dev"
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")


def confusion_figure(split: "SplitData", probs: np.ndarray) -> "Figure | None":
    """Confusion matrix over the 8 classes on the clips that have one (None if there are none)."""
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    keep = (split.class_target >= 0) & split.scored
    if not keep.any():
        return None
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        split.class_target[keep], probs[keep].argmax(axis=1), labels=list(range(len(CLASSES))),
        display_labels=list(CLASSES), normalize="true", values_format=".2f", ax=ax, colorbar=False,
    )
    ax.set_title(f"{split.name}: confusion (rows normalised), n={int(keep.sum())}")
    return fig


def scatter_figure(split: "SplitData", attrs: np.ndarray) -> "Figure | None":
    """Predicted against true ratings, one panel per attribute (None if the split has no such labels)."""
    from matplotlib.figure import Figure

    from ..metrics import ccc

    if not split.scored.any():
        return None
    fig = Figure(figsize=(12, 4))
    for j, (ax, attribute) in enumerate(zip(fig.subplots(1, len(ATTRIBUTES)), ATTRIBUTES)):
        keep = split.scored & ~np.isnan(split.attrs[:, j])
        t, p = split.attrs[keep, j], attrs[keep, j]
        ax.scatter(t, p, s=6, alpha=0.5)
        ax.plot([1, 7], [1, 7], color="grey", lw=1, ls="--")
        ax.set_xlim(1, 7)
        ax.set_ylim(1, 7)
        ax.set_xlabel(f"true {attribute}")
        ax.set_ylabel(f"predicted {attribute}")
        ax.set_title(f"{split.name} {attribute}: CCC {ccc(t, p):.3f}" if keep.any() else attribute)
    return fig
