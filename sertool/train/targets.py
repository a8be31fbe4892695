"""Training targets beyond the consensus: soft class targets from every annotator's vote, annotator
dropout, vote-mean attributes, label smoothing, and the auxiliary heads' targets (gender, secondary
emotions).

These are the levers that separated the IS2025 challenge winners from the rest, and they need what only
a catalog that keeps every vote has. Off by default: a paper run never builds a `TargetMaker` and its
batches carry the consensus targets alone.

The votes are read once, in the main process, into flat arrays (cheap to hand to loader workers). A
worker asks `TargetMaker.batch(index, epoch)` for a batch's targets; an annotator-dropout draw depends
on (seed, epoch, clip) alone, so it is the same on every DDP rank, in whichever worker, and after a
resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..labels import (
    AUX_TASKS, CLASSES, IGNORE_INDEX, SECONDARY_EMOTIONS, gender_index, secondary_codes,
    vote_index, vote_shares,
)
from ..store.records import VoteRecord
from .data import SplitData


@dataclass(frozen=True)
class Levers:
    """The label-side levers of a run (see `TrainConfig` for each one's meaning)."""

    targets: str = "hard"
    o_votes: str = "drop"
    label_smoothing: float = 0.0
    annotator_dropout: float = 0.0
    attribute_targets: str = "consensus"
    aux: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0

    @property
    def needs_votes(self) -> bool:
        return (self.targets == "soft" or self.attribute_targets == "votes" or self.annotator_dropout > 0
                or "secondary" in self.aux)

    @property
    def active(self) -> bool:
        """Anything beyond the paper's consensus targets (else batches carry those alone)."""
        return self.needs_votes or self.label_smoothing > 0 or bool(self.aux)


@dataclass
class VoteArrays:
    """A split's votes, flattened: clip i's votes are rows `offsets[i]:offsets[i+1]`."""

    offsets: np.ndarray  # (N+1,) int64
    primary: np.ndarray  # (V,) int64: 0..7 classes, OTHER_INDEX for Other
    ratings: np.ndarray  # (V, 3) float32, NaN where the annotator gave none
    secondary: np.ndarray  # (V, 17) bool: secondary emotions the annotator named
    named_secondary: np.ndarray  # (V,) bool: the annotator named any

    @classmethod
    def build(cls, clip_ids: Sequence[str], votes: Mapping[str, list[VoteRecord]]) -> "VoteArrays":
        per_clip = [votes.get(c, []) for c in clip_ids]
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in per_clip])]).astype(np.int64)
        flat = [v for vs in per_clip for v in vs]
        secondary = np.zeros((len(flat), len(SECONDARY_EMOTIONS)), dtype=bool)
        for k, v in enumerate(flat):
            secondary[k, secondary_codes(v.secondary)] = True
        ratings = np.array([[np.nan if x is None else x for x in (v.arousal, v.valence, v.dominance)] for v in flat],
                           dtype=np.float32).reshape(-1, 3)
        return cls(offsets, np.array([vote_index(v.emotion) for v in flat], dtype=np.int64), ratings,
                   secondary, secondary.any(axis=1))

    def count(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])


@dataclass
class BatchTargets:
    """What the loss reads beyond the consensus: a class distribution per clip (None: the hard path),
    attributes (replacing the consensus ones when they come from votes), auxiliary targets by head."""

    class_dist: np.ndarray | None  # (B, 8) float32; an all-zero row has no class target
    attrs: np.ndarray | None  # (B, 3) float32, NaN where absent; None: the consensus attributes
    aux: dict[str, np.ndarray]  # gender (B,) int64 with IGNORE_INDEX; secondary (B, 17) float32, NaN rows


class TargetMaker:
    """Targets of a training split under a run's `Levers`; picklable, so loader workers call it."""

    def __init__(self, split: SplitData, levers: Levers, votes: VoteArrays | None = None,
                 genders: Sequence[str | None] | None = None) -> None:
        self.levers = levers
        self.n = len(split)
        self.class_target = split.class_target
        self.attr_present = ~np.isnan(split.attrs)  # (N, 3): rows a run leaves out of the regression stay out
        self.votes = votes
        self.gender = (np.array([gender_index(g) for g in genders], dtype=np.int64) if genders is not None
                       else np.full(self.n, IGNORE_INDEX, dtype=np.int64))
        self.fallback = 0
        """Clips that take the consensus as their soft target: the catalog has no vote for them."""
        self.soft = self._soft_all() if levers.targets == "soft" else None

    # -- whole-split views ---------------------------------------------------------------------------
    def _hard(self, rows: np.ndarray) -> np.ndarray:
        dist = np.zeros((len(rows), len(CLASSES)), dtype=np.float32)
        t = self.class_target[rows]
        dist[t >= 0, t[t >= 0]] = 1.0
        return dist

    def _soft_all(self) -> np.ndarray:
        dist = self._hard(np.arange(self.n))
        for i in range(self.n):
            if self.votes is None or self.votes.count(i) == 0:
                self.fallback += 1  # no votes in the catalog: the consensus stays the target
                continue
            shares = self._shares(i, None)
            dist[i] = 0.0 if shares is None else shares  # only Other votes (dropped): no class target
        return dist

    def class_mass(self) -> list[float]:
        """Training mass per class behind the class weights: the soft targets summed (MEDUSA's f_c), or
        the consensus counts."""
        if self.soft is not None:
            return self.soft.sum(axis=0).astype(np.float64).tolist()
        return [float((self.class_target == c).sum()) for c in range(len(CLASSES))]

    def summary(self) -> dict[str, int]:
        """Counts a run logs as params: what the levers could and could not use."""
        out: dict[str, int] = {}
        if self.levers.targets == "soft":
            out["data.soft_fallback"] = self.fallback
        if "gender" in self.levers.aux:
            out["data.aux_gender_known"] = int((self.gender != IGNORE_INDEX).sum())
        if "secondary" in self.levers.aux and self.votes is not None:
            out["data.aux_secondary_known"] = sum(
                bool(self.votes.named_secondary[self.votes.offsets[i]:self.votes.offsets[i + 1]].any())
                for i in range(self.n))
        return out

    # -- one clip ------------------------------------------------------------------------------------
    def _kept(self, i: int, epoch: int | None) -> slice | np.ndarray:
        """Clip i's vote rows, thinned by annotator dropout when `epoch` is given (at least one kept)."""
        assert self.votes is not None
        a, b = int(self.votes.offsets[i]), int(self.votes.offsets[i + 1])
        p = self.levers.annotator_dropout
        if epoch is None or p <= 0 or b - a <= 1:
            return slice(a, b)
        rng = np.random.default_rng([self.levers.seed, epoch, 3, i])
        keep = rng.random(b - a) >= p
        if not keep.any():
            keep[rng.integers(b - a)] = True
        return np.arange(a, b)[keep]

    def _shares(self, i: int, epoch: int | None) -> np.ndarray | None:
        if self.votes is None or self.votes.count(i) == 0:
            return None
        return vote_shares(self.votes.primary[self._kept(i, epoch)], self.levers.o_votes)

    # -- a batch -------------------------------------------------------------------------------------
    def batch(self, index: np.ndarray, epoch: int) -> BatchTargets:
        lv = self.levers
        dropout = lv.annotator_dropout > 0
        dist = None
        if lv.targets == "soft":
            assert self.soft is not None
            dist = self.soft[index].copy()
            if dropout:
                for r, i in enumerate(index.tolist()):
                    if (s := self._shares(i, epoch)) is not None:
                        dist[r] = s
        elif lv.label_smoothing > 0:
            dist = self._hard(index)
        if dist is not None and lv.label_smoothing > 0:
            has = dist.sum(axis=1, keepdims=True) > 0
            dist = np.where(has, (1 - lv.label_smoothing) * dist + lv.label_smoothing / len(CLASSES), 0.0)
        attrs = None
        if lv.attribute_targets == "votes" and self.votes is not None:
            attrs = np.full((len(index), 3), np.nan, dtype=np.float32)
            for r, i in enumerate(index.tolist()):
                rows = self._kept(i, epoch if dropout else None)
                rated = self.votes.ratings[rows]  # (k, 3), NaN where a vote gave no rating
                n = (~np.isnan(rated)).sum(axis=0)
                attrs[r] = np.where(n > 0, np.nansum(rated, axis=0) / np.maximum(n, 1), np.nan)
            attrs = np.where(self.attr_present[index], attrs, np.nan).astype(np.float32)
        aux: dict[str, np.ndarray] = {}
        if "gender" in lv.aux:
            aux["gender"] = self.gender[index]
        if "secondary" in lv.aux:
            aux["secondary"] = self._secondary(index, epoch if dropout else None)
        return BatchTargets(None if dist is None else dist.astype(np.float32), attrs, aux)

    def _secondary(self, index: np.ndarray, epoch: int | None) -> np.ndarray:
        """Share of the (kept) annotators naming each secondary emotion; NaN rows where none named any."""
        out = np.full((len(index), AUX_TASKS["secondary"]), np.nan, dtype=np.float32)
        if self.votes is None:
            return out
        for r, i in enumerate(index.tolist()):
            rows = self._kept(i, epoch)
            named = self.votes.named_secondary[rows]
            if named.any():
                out[r] = self.votes.secondary[rows].mean(axis=0)
        return out

