"""Emotion class codes, the words annotators write for them, and how votes become a consensus.

MSP-Podcast's consensus files use one-letter codes; its per-annotator files use words, and `Other`
may carry the annotator's own description (`Other-Curious`). Everything in the catalog is a code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

# The 8 classes of Task 1, in the order of the model's logits.
TASK1_CLASSES: tuple[str, ...] = ("A", "S", "H", "U", "F", "D", "C", "N")
OTHER = "O"  # kept for regression, excluded from the classification loss
NO_AGREEMENT = "X"  # no plurality among the votes; always excluded
ALL_CLASSES: tuple[str, ...] = TASK1_CLASSES + (OTHER, NO_AGREEMENT)

CLASS_NAMES: dict[str, str] = {
    "A": "Angry",
    "S": "Sad",
    "H": "Happy",
    "U": "Surprise",
    "F": "Fear",
    "D": "Disgust",
    "C": "Contempt",
    "N": "Neutral",
    "O": "Other",
    "X": "No agreement",
}

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

ATTRIBUTE_RANGE = (1.0, 7.0)


class UnknownClass(ValueError):
    """A class code or word that is none of the 9 primary categories (nor X where X is allowed)."""


def class_code(token: str, *, allow_x: bool = True) -> str:
    """The one-letter code for a class code or word: `H`, `Happy`, `other-curious` -> `H`, `H`, `O`.

    `X` is a consensus outcome, not something an annotator can choose, so votes pass `allow_x=False`.
    """
    t = token.strip()
    up = t.upper()
    if up in ALL_CLASSES and (allow_x or up != NO_AGREEMENT):
        return up
    low = t.lower()
    if low in _WORDS:
        return _WORDS[low]
    # `Other` followed by the annotator's description: Other-Curious, Other: confused, Other (bored)
    if low.startswith("other") and low[5:6] in {"-", ":", " ", "(", "_", "/"}:
        return OTHER
    allowed = ", ".join(ALL_CLASSES if allow_x else ALL_CLASSES[:-1])
    raise UnknownClass(f"unknown emotion class {token!r} (codes {allowed} or their words, e.g. Happy, Other-Curious)")


def check_attribute(value: float | None) -> float | None:
    """Arousal/valence/dominance are ratings on 1-7; anything else is a broken file, not data."""
    if value is None:
        return None
    lo, hi = ATTRIBUTE_RANGE
    if not (lo <= value <= hi):  # also rejects NaN
        raise ValueError(f"{value:g} is outside the rating range {lo:g}-{hi:g}")
    return value


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
