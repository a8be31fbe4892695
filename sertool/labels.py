"""The domain's vocabulary, defined once: emotion classes, O and X, the attributes and their range, how
votes become a consensus, and which clips train and count in the metrics with which targets.

Everything that speaks of labels asks here: the corpus readers (codes and words, the consensus rule),
the model and its losses (class order, `IGNORE_INDEX`), the training data, the ensembles' dev truth and
the scoring. Keeping the rule in one place is what makes "an ensemble scores exactly like training"
hold by construction rather than by copying.

MSP-Podcast's consensus files use one-letter codes, its per-annotator files use words (and `Other` may
carry the annotator's own description, `Other-Curious`). Everything in the catalog is a code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

CLASSES: tuple[str, ...] = ("A", "S", "H", "U", "F", "D", "C", "N")
"""Task 1 classes in target-index order (the model's logits): Angry, Sad, Happy, Surprise, Fear,
Disgust, Contempt, Neutral."""

OTHER = "O"
"""Consensus `Other`: kept for the attribute regression, excluded from the classification loss."""
NO_AGREEMENT = "X"
"""No plurality among the votes: never trains (its attributes are still valid ratings)."""
CONSENSUS_CODES: tuple[str, ...] = CLASSES + (OTHER, NO_AGREEMENT)

CLASS_NAMES: dict[str, str] = {
    "A": "Angry", "S": "Sad", "H": "Happy", "U": "Surprise", "F": "Fear", "D": "Disgust",
    "C": "Contempt", "N": "Neutral", "O": "Other", "X": "No agreement",
}

ATTRIBUTES: tuple[str, ...] = ("arousal", "valence", "dominance")
"""Attribute order of the regression head, of targets and of prediction tables."""
ATTRIBUTE_RANGE: tuple[float, float] = (1.0, 7.0)
"""Ratings are on 1..7; the model's attribute head is squashed into this range."""

IGNORE_INDEX = -100
"""Class target of clips without one of the 8 classes (O, X, unlabelled): torch's `ignore_index`."""

# Words as release files write them, plus the noun/adjective variants annotation tools produce.
_WORDS: dict[str, str] = {
    "angry": "A", "anger": "A",
    "sad": "S", "sadness": "S",
    "happy": "H", "happiness": "H",
    "surprise": "U", "surprised": "U",
    "fear": "F", "fearful": "F",
    "disgust": "D", "disgusted": "D",
    "contempt": "C", "contemptuous": "C",
    "neutral": "N",
    "other": "O",
}


class UnknownClass(ValueError):
    """A class code or word that is none of the 9 primary categories (nor X where X is allowed)."""


def class_code(token: str, *, allow_x: bool = True) -> str:
    """The one-letter code for a class code or word: `H`, `Happy`, `other-curious` -> `H`, `H`, `O`.

    `X` is a consensus outcome, not something an annotator can choose, so votes pass `allow_x=False`.
    """
    t = token.strip()
    up = t.upper()
    if up in CONSENSUS_CODES and (allow_x or up != NO_AGREEMENT):
        return up
    low = t.lower()
    if low in _WORDS:
        return _WORDS[low]
    # `Other` followed by the annotator's description: Other-Curious, Other: confused, Other (bored)
    if low.startswith("other") and low[5:6] in {"-", ":", " ", "(", "_", "/"}:
        return OTHER
    allowed = ", ".join(CONSENSUS_CODES if allow_x else CONSENSUS_CODES[:-1])
    raise UnknownClass(f"unknown emotion class {token!r} (codes {allowed} or their words, e.g. Happy, Other-Curious)")


def check_attribute(value: float | None) -> float | None:
    """Arousal/valence/dominance are ratings on 1-7; anything else is a broken file, not data."""
    if value is None:
        return None
    lo, hi = ATTRIBUTE_RANGE
    if not (lo <= value <= hi):  # also rejects NaN
        raise ValueError(f"{value:g} is outside the rating range {lo:g}-{hi:g}")
    return value


# -- votes -> consensus ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Consensus:
    """What a set of votes says about one clip."""

    emotion: str
    arousal: float | None
    valence: float | None
    dominance: float | None
    n_annotators: int
    agreement: float | None


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return fmean(vals) if vals else None


def plurality(emotions: Sequence[str]) -> str:
    """Majority (plurality) vote of primary emotions; a tie for first place is `X`."""
    if not emotions:
        return NO_AGREEMENT
    (top, n), *rest = Counter(emotions).most_common()
    return NO_AGREEMENT if rest and rest[0][1] == n else top


def agreement(emotions: Sequence[str], consensus: str) -> float | None:
    """Share of votes for the consensus class; for `X`, the share of the most-voted class.

    For X the consensus class got no votes by definition, so the plurality share is the figure that
    still says how split the annotators were.
    """
    if not emotions:
        return None
    counts = Counter(emotions)
    n = counts[consensus] if consensus != NO_AGREEMENT else max(counts.values())
    return n / len(emotions)


def derive_consensus(
    emotions: Sequence[str],
    arousal: Sequence[float | None],
    valence: Sequence[float | None],
    dominance: Sequence[float | None],
) -> Consensus:
    """Consensus from votes: plurality class (ties -> X) and the mean of each attribute."""
    emotion = plurality(emotions)
    return Consensus(
        emotion=emotion,
        arousal=_mean(arousal),
        valence=_mean(valence),
        dominance=_mean(dominance),
        n_annotators=len(emotions),
        agreement=agreement(emotions, emotion),
    )


# -- consensus -> targets: which clips train, which are scored ------------------------------------

def class_target(emotion: str | None) -> int:
    """Index into `CLASSES`, or `IGNORE_INDEX` for O (regression only), X and unlabelled clips."""
    return CLASSES.index(emotion) if emotion in CLASSES else IGNORE_INDEX


def trains(emotion: str | None) -> bool:
    """A clip takes part in training when it is labelled and its annotators agreed (not X); O clips
    train the attributes only (their class target is `IGNORE_INDEX`)."""
    return emotion is not None and emotion != NO_AGREEMENT


def is_scored(emotion: str | None) -> bool:
    """A clip counts in dev/test metrics when it is labelled and not X (no agreement)."""
    return emotion is not None and emotion != NO_AGREEMENT


@dataclass
class Targets:
    """Consensus labels of a list of clips, in the model's terms (same order as the clips)."""

    emotion: list[str | None]
    """Consensus code per clip; None = unlabelled (e.g. the challenge's Test3)."""
    class_target: "np.ndarray"  # (N,) int64: 0..7, IGNORE_INDEX for O / X / unlabelled
    attrs: "np.ndarray"  # (N, 3): arousal, valence, dominance; NaN where unrated or unlabelled

    @classmethod
    def from_consensus(
        cls,
        emotion: Sequence[str | None],
        attrs: Sequence[Sequence[float | None]],
        dtype: str = "float32",
    ) -> "Targets":
        """Targets from consensus rows: one emotion code (or None) and one (a, v, d) triple per clip."""
        import numpy as np

        values = np.array([[np.nan if x is None else x for x in row] for row in attrs], dtype=dtype)
        return cls(
            list(emotion),
            np.array([class_target(e) for e in emotion], dtype=np.int64),
            values.reshape(-1, len(ATTRIBUTES)),
        )

    def __len__(self) -> int:
        return len(self.emotion)

    @property
    def scored(self) -> "np.ndarray":
        """(N,) bool: the clips that count in the metrics (`is_scored`)."""
        import numpy as np

        return np.array([is_scored(e) for e in self.emotion], dtype=bool)

    def class_counts(self) -> list[int]:
        """Clips per task class (CLASSES order), the counts behind the class weights."""
        return [int((self.class_target == i).sum()) for i in range(len(CLASSES))]
