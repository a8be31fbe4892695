"""What an ensemble is, saved with its run: which runs it averages for which target, and how often.

Targets are the three attributes (Task 2) or `class` (Task 1: the 8 class probabilities). A target's
members are a *bag* of run ids: greedy selection draws with replacement, so a run chosen twice counts
twice in the average. The external baseline, when one was included, appears as the member `baseline`.

The other outputs of an ensemble follow from its bags so that its predictions table has every column a
training run's has: a Task 2 ensemble's class probabilities average every distinct run it uses, a Task 1
ensemble's attributes average its class bag. `weights()` states those rules once, for the ensemble's own
tables and for `sertool predict`.

A stacked ensemble (`method` stack) has, besides, a meta-model per target (`meta`, see `stack`) that
replaces that target's average: its members are the meta-model's inputs, each once, in feature order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InvalidOption, SertoolError
from ..labels import ATTRIBUTES

BASELINE = "baseline"
"""Member id of the external baseline's predictions."""
CLASS = "class"
TARGETS: dict[int, tuple[str, ...]] = {1: (CLASS,), 2: ATTRIBUTES}
"""What each task selects members for."""
ALL_TARGETS: tuple[str, ...] = (CLASS, *ATTRIBUTES)

Method = Literal["topk", "greedy", "stack"]
METHODS: tuple[str, ...] = ("topk", "greedy", "stack")
"""topk and greedy average members; stack fits a meta-model over them."""


@dataclass
class EnsembleSpec:
    """An ensemble's recipe: task, selection, and the member bag of each target."""

    task: int
    method: str
    top: int
    members: dict[str, list[str]]
    """Target -> run ids (repeats allowed; `baseline` for the external file)."""
    baseline: str | None = None
    """Path of the baseline predictions file, if one was averaged in."""
    test_split: str = "Test3"
    candidates: int = 0
    """How many runs were eligible."""
    extra: dict[str, Any] = field(default_factory=dict)
    """What else the command was asked (pins, stages, baseline attributes; a stack's folds and seed)."""
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Stacked ensembles: target -> its meta-model as plain numbers (`stack.MetaModel.to_dict`)."""

    def __post_init__(self) -> None:
        if self.task not in TARGETS:
            raise InvalidOption("task", f"must be 1 or 2, got {self.task}")
        if self.method not in METHODS:
            raise InvalidOption("method", f"must be {', '.join(METHODS[:-1])} or {METHODS[-1]}, got {self.method!r}")
        missing = [t for t in TARGETS[self.task] if not self.members.get(t)]
        if missing:
            raise SertoolError(f"ensemble spec: no members for {', '.join(missing)}")
        if self.method == "stack":
            unfit = [t for t in TARGETS[self.task] if (self.meta.get(t) or {}).get("members") != self.members[t]]
            if unfit:
                raise SertoolError(f"ensemble spec: stacked, but no meta-model over the members of {', '.join(unfit)}")
        elif self.meta:
            raise SertoolError(f"ensemble spec: meta-models in a {self.method} ensemble (only stack has them)")

    def run_ids(self) -> list[str]:
        """Distinct member runs (baseline excluded), in first-chosen order."""
        seen: dict[str, None] = {}
        for t in TARGETS[self.task]:
            for m in self.members[t]:
                if m != BASELINE:
                    seen.setdefault(m)
        return list(seen)

    def weights(self, target: str) -> dict[str, float]:
        """Member -> weight (summing to 1) of `target`, any of `class`, arousal, valence, dominance.

        The selected targets use their bags; Task 2's class probabilities use every distinct run once,
        Task 1's attributes use the class bag. The baseline only ever has attributes.
        """
        if target not in ALL_TARGETS:
            raise SertoolError(f"unknown ensemble target {target!r}")
        if target in self.members:
            bag = list(self.members[target])
        elif self.task == 2:
            bag = self.run_ids()
        else:
            bag = list(self.members[CLASS])
        if target == CLASS:
            bag = [m for m in bag if m != BASELINE]
        counts = Counter(bag)
        total = sum(counts.values())
        return {m: n / total for m, n in counts.items()}

    def all_weights(self) -> dict[str, dict[str, float]]:
        """`weights()` of every target, as `blend` takes them."""
        return {t: self.weights(t) for t in ALL_TARGETS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "method": self.method, "top": self.top, "members": self.members,
            "baseline": self.baseline, "test_split": self.test_split, "candidates": self.candidates,
            "extra": self.extra, **({"meta": self.meta} if self.meta else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnsembleSpec":
        return cls(
            task=int(d["task"]), method=str(d["method"]), top=int(d["top"]),
            members={k: list(v) for k, v in d["members"].items()}, baseline=d.get("baseline"),
            test_split=d.get("test_split", "Test3"), candidates=int(d.get("candidates", 0)),
            extra=dict(d.get("extra", {})), meta={k: dict(v) for k, v in d.get("meta", {}).items()},
        )

    def params(self) -> dict[str, Any]:
        """Flat params for the tracker: `ensemble.members.<target>` = comma-joined run ids (a stack's also
        its folds, seed and `ensemble.meta.<target>` = logistic or ridge)."""
        stacked = {"ensemble.folds": self.extra.get("folds"), "ensemble.seed": self.extra.get("seed"),
                   **{f"ensemble.meta.{t}": m.get("model") for t, m in self.meta.items()}} if self.meta else {}
        return {
            "ensemble.task": self.task, "ensemble.method": self.method, "ensemble.top": self.top,
            "ensemble.test_split": self.test_split, "ensemble.candidates": self.candidates,
            "ensemble.baseline": self.baseline or "none",
            **{f"ensemble.members.{t}": ",".join(ms) for t, ms in self.members.items()}, **stacked,
        }


def blend(
    weights: Mapping[str, Mapping[str, float]],
    probs: Mapping[str, np.ndarray],
    attrs: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted averages: class probabilities (N, 8) and attributes (N, 3) from each member's arrays.

    `weights`: target (`class`, arousal, ...) -> member -> weight. `probs` / `attrs`: member ->
    (N, 8) / (N, 3). Members without an array (the baseline has no probabilities, and no predictions
    at all on new audio) are left out and the others' weights renormalised.
    """
    def mix(target: str, arrays: Mapping[str, np.ndarray], col: slice | int) -> np.ndarray:
        w = {m: x for m, x in weights[target].items() if m in arrays}
        if not w:
            raise SertoolError(f"no member of the ensemble has predictions for {target}")
        total = sum(w.values())
        return sum((x / total) * np.asarray(arrays[m], dtype=np.float64)[:, col] for m, x in w.items())

    p = mix(CLASS, probs, slice(None))
    a = np.stack([mix(t, attrs, j) for j, t in enumerate(ATTRIBUTES)], axis=1)
    return p, a
