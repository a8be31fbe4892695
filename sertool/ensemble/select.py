"""Choosing members on dev: top-K by a score, and greedy forward selection with replacement.

Greedy is Caruana et al. (2004), "Ensemble selection from libraries of models": start from the
top-K ensemble ("sorted ensemble initialisation"), then repeatedly add, with replacement, the
candidate whose addition gives the best dev score, and keep the best bag seen. Because the start bag
is itself a bag it may keep, the result never scores below top-K on dev.

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


def greedy(
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
        if trial[i] > best.score + 1e-12:
            best, stale = Selection(list(bag), float(trial[i])), 0
        else:
            stale += 1
            if stale >= patience:
                break
    return best
