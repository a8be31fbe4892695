"""Stacking: a meta-model over the members' dev predictions, cross-fitted so no dev figure is in-sample.

Why: an average can only weight whole members, a meta-model can learn that one member is to be trusted
for some classes and another for others (the Task 1 winner, NTUA MEDUSA, stacked a meta-classifier over
its members' posteriors and beat soft and hard voting). The price is that the meta-model is fit on dev,
the very set the ensemble is judged on, so every dev figure it reports is *cross-fitted*: the scored dev
rows are split into K folds (stratified by class for Task 1) and each fold's predictions come from a
meta-model fit on the other K-1 folds only. The Development predictions file holds those out-of-fold
predictions; the meta-model kept for the test split and `sertool predict` is refit on all scored rows.
Rows a target does not score (O and X clips for the classes, unrated clips for an attribute) never
enter a fit: they get the kept model's predictions.

Meta-models: Task 1, multinomial logistic regression on the members' log class probabilities side by
side; Task 2, ridge regression per attribute on the members' predictions of it, clipped to the rating
range. They are saved in the ensemble's spec as plain numbers (members in feature order, classes,
coefficients, intercepts), so loading one runs no code, unlike a pickle.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidOption, SertoolError
from ..labels import ATTRIBUTE_RANGE, ATTRIBUTES, CLASSES
from .spec import CLASS, EnsembleSpec, blend

LOG_FLOOR = 1e-6
"""Probabilities are floored here before their log (a member's hard 0 would be -inf)."""
LOGISTIC_C = 1.0
RIDGE_ALPHA = 1.0
"""sklearn's default regularisation: dev sets are small and the members' predictions correlated."""


def design(target: str, arrays: np.ndarray) -> np.ndarray:
    """The meta-model's inputs (N, F) from the members' predictions of `target`, in member order:
    (M, N, 8) class probabilities -> their logs side by side (F = 8 M); (M, N) attribute -> (N, M)."""
    a = np.asarray(arrays, dtype=np.float64)
    if target == CLASS:
        return np.log(np.clip(a, LOG_FLOOR, 1.0)).transpose(1, 0, 2).reshape(a.shape[1], -1)
    return a.T.copy()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class MetaModel:
    """One target's fitted meta-model: logistic (`class`) or ridge (an attribute), as plain arrays."""

    target: str
    members: list[str]
    """Run ids in feature order."""
    coef: np.ndarray
    """Logistic: (C, F), one row per class in `classes`; ridge: (F,)."""
    intercept: np.ndarray
    """Logistic: (C,); ridge: ()."""
    classes: list[str] = field(default_factory=list)
    """Logistic: the class codes the fit saw (absent classes get probability 0)."""

    @property
    def kind(self) -> str:
        return "logistic" if self.target == CLASS else "ridge"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, 8) class probabilities or (N,) attribute predictions from inputs (N, F) (`design`)."""
        x = np.asarray(x, dtype=np.float64)
        if self.target != CLASS:
            return np.clip(x @ self.coef + self.intercept, *ATTRIBUTE_RANGE)
        out = np.zeros((len(x), len(CLASSES)))
        out[:, [CLASSES.index(c) for c in self.classes]] = _softmax(x @ self.coef.T + self.intercept)
        return out

    def apply(self, probs: Mapping[str, np.ndarray], attrs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Its prediction from each member's (N, 8) probabilities and (N, 3) attributes."""
        lacking = [m for m in self.members if m not in (probs if self.target == CLASS else attrs)]
        if lacking:
            raise SertoolError(f"the stacked meta-model of {self.target} needs member {lacking[0]}, which has no "
                               "predictions here")
        if self.target == CLASS:
            arrays = np.stack([probs[m] for m in self.members])
        else:
            j = ATTRIBUTES.index(self.target)
            arrays = np.stack([np.asarray(attrs[m])[:, j] for m in self.members])
        return self.predict(design(self.target, arrays))

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "model": self.kind, "members": list(self.members),
                "classes": list(self.classes), "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetaModel:
        """Back from `to_dict`, shapes checked (a spec edited by hand fails here, not in a matrix product)."""
        try:
            target, members = str(d["target"]), [str(m) for m in d["members"]]
            coef = np.asarray(d["coef"], dtype=np.float64)
            intercept = np.asarray(d["intercept"], dtype=np.float64)
            classes = [str(c) for c in d.get("classes", [])]
        except (KeyError, TypeError, ValueError) as e:
            raise SertoolError(f"ensemble spec: a stacked meta-model is malformed ({e})") from None
        width = len(members) * (len(CLASSES) if target == CLASS else 1)
        if target == CLASS:
            ok = (coef.shape == (len(classes), width) and intercept.shape == (len(classes),)
                  and bool(classes) and set(classes) <= set(CLASSES))
        else:
            ok = target in ATTRIBUTES and coef.shape == (width,) and intercept.shape == ()
        if not ok or not members or not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise SertoolError(f"ensemble spec: the stacked meta-model of {target!r} does not fit its "
                               f"{len(members)} member(s)")
        return cls(target, members, coef, intercept, classes)


def fit(target: str, members: Sequence[str], x: np.ndarray, y: np.ndarray) -> MetaModel:
    """A meta-model on inputs `x` (N, F) and truth `y` (class indices or ratings, N)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if target != CLASS:
        m = Ridge(alpha=RIDGE_ALPHA).fit(x, y)
        return MetaModel(target, list(members), np.asarray(m.coef_, dtype=np.float64), np.asarray(float(m.intercept_)))
    present = np.unique(y)
    classes = [CLASSES[int(i)] for i in present]
    if len(present) == 1:  # one class to learn: it always wins
        return MetaModel(target, list(members), np.zeros((1, x.shape[1])), np.zeros(1), classes)
    m = LogisticRegression(C=LOGISTIC_C, max_iter=2000).fit(x, y)
    coef, intercept = np.asarray(m.coef_, dtype=np.float64), np.asarray(m.intercept_, dtype=np.float64)
    if len(present) == 2:  # sklearn's binary form, sigmoid(w x + b), is the softmax of (0, w x + b)
        coef, intercept = np.vstack([np.zeros_like(coef[0]), coef[0]]), np.array([0.0, intercept[0]])
    return MetaModel(target, list(members), coef, intercept, classes)


def fold_ids(y: np.ndarray, folds: int, seed: int, *, stratify: bool) -> np.ndarray:
    """Fold (0..K-1) of each row: shuffled with `seed`, stratified by `y` where every fold can hold a
    row of its largest class (sklearn's StratifiedKFold); a rarer class just spreads over fewer folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    out = np.full(len(y), -1, dtype=np.int64)
    if stratify and np.bincount(np.asarray(y, dtype=np.int64)).max() >= folds:
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test) in enumerate(splitter.split(np.zeros((len(y), 1)), y)):
            out[test] = k
    return out


@dataclass
class StackFit:
    """One target's stacking: the kept meta-model and the cross-fitted dev predictions."""

    model: MetaModel
    """Refit on every scored dev row: for the test split and new audio."""
    oof: np.ndarray
    """(N, 8) or (N,) dev predictions: out-of-fold on scored rows, the kept model's on the others."""
    fold: np.ndarray
    """(N,) the fold whose meta-model (fit without that fold) predicted the row; -1: not scored, the
    kept model predicted it."""


def cross_fit(target: str, members: Sequence[str], arrays: np.ndarray, y: np.ndarray, rows: np.ndarray,
              folds: int, seed: int) -> StackFit:
    """Cross-fitted stacking of `target` on the members' dev `arrays` ((M, N, 8) or (M, N)), truth `y`
    (N,) and the scored `rows` (N,) bool."""
    x = design(target, arrays)
    rows = np.asarray(rows, dtype=bool)
    n = int(rows.sum())
    if n < folds:
        raise InvalidOption("folds", f"{folds} folds need at least {folds} scored dev clips, "
                                     f"{target} has {n}")
    idx = np.flatnonzero(rows)
    fold = np.full(len(x), -1, dtype=np.int64)
    fold[idx] = fold_ids(y[idx], folds, seed, stratify=target == CLASS)
    kept = fit(target, members, x[idx], y[idx])
    oof = kept.predict(x)
    for k in range(folds):
        seen = fold[idx] != k
        oof[idx[~seen]] = fit(target, members, x[idx[seen]], y[idx[seen]]).predict(x[idx[~seen]])
    return StackFit(kept, oof, fold)


def meta_models(spec: EnsembleSpec) -> dict[str, MetaModel]:
    """The stacked targets' meta-models of a spec (none for an averaging ensemble)."""
    return {t: MetaModel.from_dict(d) for t, d in spec.meta.items()}


def combine(spec: EnsembleSpec, probs: Mapping[str, np.ndarray],
            attrs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """An ensemble's (N, 8) probabilities and (N, 3) attributes from its members' arrays: the averages
    `spec.weights()` states, with each stacked target's meta-model in place of its average."""
    p, a = blend(spec.all_weights(), probs, attrs)
    for target, model in meta_models(spec).items():
        if target == CLASS:
            p = model.apply(probs, attrs)
        else:
            a[:, ATTRIBUTES.index(target)] = model.apply(probs, attrs)
    return p, a


def out_of_fold(probs: np.ndarray, attrs: np.ndarray, fits: Mapping[str, StackFit]) -> tuple[np.ndarray, np.ndarray]:
    """Dev arrays with each stacked target's columns replaced by its cross-fitted predictions."""
    p, a = probs.copy(), attrs.copy()
    for target, f in fits.items():
        if target == CLASS:
            p = f.oof.copy()
        else:
            a[:, ATTRIBUTES.index(target)] = f.oof
    return p, a
