"""Choosing members on dev: top-K by a score, and greedy forward selection with replacement.

Greedy is Caruana et al. (2004), "Ensemble selection from libraries of models": start from a top-k
ensemble ("sorted ensemble initialisation"), then repeatedly add, with replacement, the candidate
whose addition gives the best dev score, and keep the best bag seen. It starts from every top-k,
k = 1..K, and keeps the best outcome: the k = 1 start is the best single run, so the result never
scores below its best member on dev (with weak members, a top-K start alone can end below it).

Everything here is plain numpy on aligned prediction arrays; which runs they came from is the
caller's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Score = Callable[[np.ndarray], float]
"""Dev score of an (averaged) prediction array: higher is better."""


@dataclass(frozen=True)
class Selection:
    bag: list[int]
    """Candidate indices, repeats allowed, in the order they were added."""
    score: float
    """Dev score of the bag's average."""


def rank(scores: Sequence[float]) -> list[int]:
    """Candidate indices best first (NaN last; ties keep the candidates' order)."""
    s = np.asarray(scores, dtype=np.float64)
    key = np.where(np.isnan(s), -np.inf, s)
    return [int(i) for i in np.argsort(-key, kind="stable")]


def average(preds: np.ndarray, bag: Sequence[int]) -> np.ndarray:
    """Mean of the bag's predictions (a candidate counted as often as it occurs)."""
    return preds[list(bag)].mean(axis=0)


def top_k(preds: np.ndarray, score: Score, k: int, *, always: Sequence[int] = ()) -> Selection:
    """The `k` candidates with the best individual scores (plus the `always` ones, e.g. a baseline)."""
    singles = [score(preds[i]) for i in range(len(preds))]
    pool = [i for i in rank(singles) if i not in set(always)]
    bag = pool[:k] + list(always)
    return Selection(bag, score(average(preds, bag)))


def _key(score: float) -> float:
    return -np.inf if np.isnan(score) else score


def greedy(
    preds: np.ndarray,
    score: Score,
    k_max: int,
    *,
    always: Sequence[int] = (),
    max_steps: int = 25,
    patience: int = 5,
) -> Selection:
    """Greedy forward selection with replacement from every top-k start (k = 1..k_max, plus the
    `always` members); the best bag any start reached."""
    best: Selection | None = None
    for k in range(1, max(1, k_max) + 1):
        sel = greedy_from(preds, score, top_k(preds, score, k, always=always).bag, max_steps=max_steps,
                          patience=patience)
        if best is None or _key(sel.score) > _key(best.score) + 1e-12:
            best = sel
    assert best is not None
    return best


def greedy_from(
    preds: np.ndarray,
    score: Score,
    init: Sequence[int],
    *,
    max_steps: int = 25,
    patience: int = 5,
) -> Selection:
    """Greedy forward selection with replacement from `init`; returns the best bag seen.

    `preds`: (M, ...) one prediction array per candidate. Stops after `max_steps` additions or
    `patience` additions in a row that did not beat the best bag.
    """
    bag = list(init)
    total = preds[bag].sum(axis=0)
    best = Selection(list(bag), score(total / len(bag)))
    stale = 0
    for _ in range(max_steps):
        n = len(bag) + 1
        trial = [score((total + preds[i]) / n) for i in range(len(preds))]
        i = rank(trial)[0]
        bag.append(i)
        total = total + preds[i]
        if _key(trial[i]) > _key(best.score) + 1e-12:
            best, stale = Selection(list(bag), float(trial[i])), 0
        else:
            stale += 1
            if stale >= patience:
                break
    return best
