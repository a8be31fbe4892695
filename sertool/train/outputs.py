"""What a finished run leaves behind besides its weights: prediction tables and plots.

Prediction tables have one row per clip of a split (labelled or not, X clips included: a challenge
submission needs every clip) with the columns the ensembles read: `clip_id`, `p_<class>` for the 8
classes, `pred_class`, `arousal`, `valence`, `dominance`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from ..model.labels import ATTRIBUTES, CLASSES

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .data import SplitData


def predictions_table(split: "SplitData", probs: np.ndarray, attrs: np.ndarray) -> "pd.DataFrame":
    """One row per clip of the split: class probabilities (B, 8), the predicted class code, the 3 attributes."""
    return predictions_frame(list(split.clip_ids), probs, attrs)


def predictions_frame(clip_ids: list[str], probs: np.ndarray, attrs: np.ndarray) -> "pd.DataFrame":
    """The predictions layout every run logs (ensembles too): clip_id, p_<class>..., pred_class,
    arousal, valence, dominance."""
    import pandas as pd

    df = pd.DataFrame({"clip_id": clip_ids})
    for j, c in enumerate(CLASSES):
        df[f"p_{c}"] = probs[:, j]
    df["pred_class"] = [CLASSES[i] for i in probs.argmax(axis=1)]
    for j, a in enumerate(ATTRIBUTES):
        df[a] = attrs[:, j]
    return df


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

    from .metrics import ccc

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
