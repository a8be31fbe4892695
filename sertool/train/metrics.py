"""The challenge's metrics: macro-F1 over the 8 classes (Task 1) and CCC per attribute (Task 2).

The names returned here are the names the tracker logs (with a `dev_` / `best_dev_` prefix); they are an
interface that ensembles and users' run searches rely on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..model.labels import ATTRIBUTES, CLASSES

F1 = "f1_macro"
CCC_NAMES: tuple[str, ...] = tuple(f"ccc_{a}" for a in ATTRIBUTES) + ("ccc_mean",)
METRIC_NAMES: tuple[str, ...] = (F1, *CCC_NAMES)
"""f1_macro, ccc_arousal, ccc_valence, ccc_dominance, ccc_mean."""

SELECT_ALIASES: dict[str, str] = {"f1": F1, "ccc": "ccc_mean"} | {n: n for n in METRIC_NAMES}
"""`--select` values -> metric name (every metric name is also accepted as itself)."""


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Concordance correlation coefficient as the challenge computes it (population variances):
    `2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))^2)`.

    If the denominator is 0 both series are the same constant, which is perfect agreement: 1.0.
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"ccc needs two non-empty series of equal length, got {t.size} and {p.size}")
    mt, mp = t.mean(), p.mean()
    cov = np.mean((t - mt) * (p - mp))
    denom = t.var() + p.var() + (mt - mp) ** 2
    return 1.0 if denom == 0 else float(2 * cov / denom)


def ccc_per_attribute(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """CCC of each attribute column (arousal, valence, dominance order) and their mean.

    Rows whose true value of an attribute is NaN (unlabelled) are left out of that attribute's CCC.
    """
    t = np.asarray(y_true, dtype=np.float64).reshape(-1, len(ATTRIBUTES))
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1, len(ATTRIBUTES))
    out: dict[str, float] = {}
    for j, name in enumerate(ATTRIBUTES):
        keep = ~np.isnan(t[:, j])
        out[f"ccc_{name}"] = ccc(t[keep, j], p[keep, j])
    out["ccc_mean"] = float(np.mean([out[f"ccc_{a}"] for a in ATTRIBUTES]))
    return out


def f1_macro(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Macro-F1 over the 8 task classes (sklearn; a class never true nor predicted counts as F1 0).

    Clips whose truth is not a task class (`O`, target `IGNORE_INDEX`) are left out: Task 1 scores
    only the 8 classes, and counting them would charge every prediction on them as a false positive.
    """
    from sklearn.metrics import f1_score

    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    keep = (t >= 0) & (t < len(CLASSES))
    return float(
        f1_score(t[keep], p[keep], average="macro", labels=list(range(len(CLASSES))), zero_division=0)
    )


def all_metrics(
    class_true: ArrayLike, class_pred: ArrayLike, attr_true: ArrayLike, attr_pred: ArrayLike
) -> dict[str, float]:
    """Every metric of `METRIC_NAMES` for one evaluation pass (predicted classes, not logits)."""
    return {F1: f1_macro(class_true, class_pred), **ccc_per_attribute(attr_true, attr_pred)}
