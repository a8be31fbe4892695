"""The challenge's metrics and their names: macro-F1 (Task 1) and CCC per attribute and their mean (Task 2).

The names here are an interface: the tracker logs them per epoch as `dev_<name>` and for the selected
checkpoint as `best_dev_<name>`; ensembles choose members by them; users sort and filter runs by them.
One table of short names (`f1`, `ccc`, `valence`, ...) serves `--select`, `--sort` and the runs table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .labels import ATTRIBUTES, CLASSES

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

F1 = "f1_macro"
CCC: dict[str, str] = {a: f"ccc_{a}" for a in ATTRIBUTES} | {"mean": "ccc_mean"}
"""Attribute (or `mean`) -> metric name: ccc_arousal, ccc_valence, ccc_dominance, ccc_mean."""
METRIC_NAMES: tuple[str, ...] = (F1, *CCC.values())
"""f1_macro, ccc_arousal, ccc_valence, ccc_dominance, ccc_mean."""

ALIASES: dict[str, str] = {
    "f1": F1, "ccc": CCC["mean"], **{a: CCC[a] for a in ATTRIBUTES}, **{m: m for m in METRIC_NAMES},
}
"""Short names users type -> metric name (every metric name is also accepted as itself)."""

SELECT_CHOICES: tuple[str, ...] = ("f1", "ccc", *(CCC[a] for a in ATTRIBUTES))
"""What `--select` offers: the dev metric that keeps a run's checkpoint."""

RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("F1", F1), ("Aro", CCC["arousal"]), ("Val", CCC["valence"]), ("Dom", CCC["dominance"]),
    ("CCC mean", CCC["mean"]),
)
"""(column title, metric) of the runs table, in display order."""

DEV_PREFIX = "dev_"
BEST_PREFIX = "best_dev_"


def metric_name(alias: str) -> str:
    """The metric an alias names (`ccc_valence`, `valence`, `f1`); unknown names raise ValueError."""
    try:
        return ALIASES[alias]
    except KeyError:
        raise ValueError(f"unknown metric {alias!r} (known: {', '.join(ALIASES)})") from None


def dev(metric: str) -> str:
    """Per-epoch name: `dev_ccc_mean`."""
    return DEV_PREFIX + metric


def best(metric: str) -> str:
    """Name of the selected checkpoint's figure: `best_dev_ccc_mean`."""
    return BEST_PREFIX + metric


BEST_METRICS: tuple[str, ...] = tuple(best(m) for m in METRIC_NAMES)


def tracked_name(name: str) -> str:
    """What `--sort` means: an alias of a metric (`ccc_valence`, `f1`) names its `best_dev_` figure;
    anything else is taken as a tracked metric name as it is."""
    return best(ALIASES[name]) if name in ALIASES else name


def ccc(y_true: "ArrayLike", y_pred: "ArrayLike") -> float:
    """Concordance correlation coefficient as the challenge computes it (population variances):
    `2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))^2)`.

    If the denominator is 0 both series are the same constant, which is perfect agreement: 1.0.
    """
    import numpy as np

    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"ccc needs two non-empty series of equal length, got {t.size} and {p.size}")
    mt, mp = t.mean(), p.mean()
    cov = np.mean((t - mt) * (p - mp))
    denom = t.var() + p.var() + (mt - mp) ** 2
    return 1.0 if denom == 0 else float(2 * cov / denom)


def ccc_per_attribute(y_true: "ArrayLike", y_pred: "ArrayLike") -> dict[str, float]:
    """CCC of each attribute column (arousal, valence, dominance order) and their mean.

    Rows whose true value of an attribute is NaN (unlabelled) are left out of that attribute's CCC.
    """
    import numpy as np

    t = np.asarray(y_true, dtype=np.float64).reshape(-1, len(ATTRIBUTES))
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1, len(ATTRIBUTES))
    out: dict[str, float] = {}
    for j, name in enumerate(ATTRIBUTES):
        keep = ~np.isnan(t[:, j])
        out[CCC[name]] = ccc(t[keep, j], p[keep, j])
    out[CCC["mean"]] = float(np.mean([out[CCC[a]] for a in ATTRIBUTES]))
    return out


def f1_macro(y_true: "ArrayLike", y_pred: "ArrayLike") -> float:
    """Macro-F1 over the 8 task classes (sklearn; a class never true nor predicted counts as F1 0).

    Clips whose truth is not a task class (`O`, target `IGNORE_INDEX`) are left out: Task 1 scores
    only the 8 classes, and counting them would charge every prediction on them as a false positive.
    """
    import numpy as np
    from sklearn.metrics import f1_score

    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    keep = (t >= 0) & (t < len(CLASSES))
    return float(
        f1_score(t[keep], p[keep], average="macro", labels=list(range(len(CLASSES))), zero_division=0)
    )


def all_metrics(
    class_true: "ArrayLike", class_pred: "ArrayLike", attr_true: "ArrayLike", attr_pred: "ArrayLike"
) -> dict[str, float]:
    """Every metric of `METRIC_NAMES` for one evaluation pass (predicted classes, not logits)."""
    return {F1: f1_macro(class_true, class_pred), **ccc_per_attribute(attr_true, attr_pred)}
