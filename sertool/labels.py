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


# -- votes -> soft targets -------------------------------------------------------------------------

TARGET_KINDS: tuple[str, ...] = ("hard", "soft")
"""Class targets: the consensus class (the paper), or the distribution of the annotators' votes."""
O_VOTE_USES: tuple[str, ...] = ("drop", "uniform")
"""What a soft target does with `Other` votes (the classifier has no Other output): leave them out and
renormalise over the class votes, or spread each evenly over the 8 classes."""
OTHER_INDEX = len(CLASSES)
"""A vote for `Other` in integer-coded vote arrays (class votes are 0..7)."""

SECONDARY_EMOTIONS: tuple[str, ...] = (
    "Angry", "Sad", "Happy", "Surprise", "Fear", "Disgust", "Contempt", "Neutral",
    "Frustrated", "Depressed", "Disappointed", "Concerned", "Excited", "Confused", "Amused", "Annoyed", "Other",
)
"""MSP-Podcast's secondary-emotion choices (the 8 primary classes, 8 more, and Other): the targets of
the multi-label `secondary` auxiliary head, in its output order."""
_SECONDARY_INDEX = {w.lower(): i for i, w in enumerate(SECONDARY_EMOTIONS)} | {
    w: SECONDARY_EMOTIONS.index(CLASS_NAMES[c]) for w, c in _WORDS.items() if c != OTHER}

GENDERS: tuple[str, ...] = ("Female", "Male")
"""Targets of the `gender` auxiliary head; anything else (`Unknown`, missing) does not train it."""


AUX_TASKS: dict[str, int] = {"gender": len(GENDERS), "secondary": len(SECONDARY_EMOTIONS)}
"""Auxiliary heads a run may add (`--aux NAME[:weight]`) and their output widths: the speaker's gender
(single-label) and the secondary emotions the annotators named (multi-label, the share naming each)."""


def vote_index(code: str) -> int:
    """A vote's class as an integer: 0..7 for the classes, `OTHER_INDEX` for Other."""
    return OTHER_INDEX if code == OTHER else CLASSES.index(code)


def vote_shares(votes: "Sequence[int] | np.ndarray", o_votes: str = "drop") -> "np.ndarray | None":
    """(8,) share of a clip's primary votes per class (`vote_index` codes): the soft class target.

    `o_votes`: `drop` leaves Other votes out and renormalises over the class votes; `uniform` spreads
    each Other vote evenly over the 8 classes. None when no class vote is left (no votes, or only Other
    votes with `drop`): such a clip has no class target.
    """
    import numpy as np

    v = np.asarray(votes, dtype=np.int64)
    counts = np.bincount(v, minlength=OTHER_INDEX + 1).astype(np.float64)
    shares = counts[:OTHER_INDEX]
    if o_votes == "uniform":
        shares = shares + counts[OTHER_INDEX] / OTHER_INDEX
    elif o_votes != "drop":
        raise ValueError(f"o_votes must be one of {', '.join(O_VOTE_USES)}, got {o_votes!r}")
    total = shares.sum()
    return None if total == 0 else shares / total


def secondary_codes(text: str | None) -> list[int]:
    """Indices into `SECONDARY_EMOTIONS` of an annotator's secondary-emotion field
    (`"Frustrated,Annoyed"`, `"Other-bored"`); words it does not know are left out."""
    if not text:
        return []
    out = []
    for word in text.replace(";", ",").split(","):
        w = word.strip().lower()
        if w.startswith("other"):
            w = "other"
        if w in _SECONDARY_INDEX and _SECONDARY_INDEX[w] not in out:
            out.append(_SECONDARY_INDEX[w])
    return out


def gender_index(gender: str | None) -> int:
    """0/1 for `GENDERS`, `IGNORE_INDEX` for unknown or missing."""
    g = (gender or "").strip().capitalize()
    return GENDERS.index(g) if g in GENDERS else IGNORE_INDEX


# -- consensus -> targets: which clips train, which are scored ------------------------------------

CLIP_USES: tuple[str, ...] = ("regression", "exclude")
"""What training does with O or X clips: train the attribute loss with them, or leave them out."""


def class_target(emotion: str | None) -> int:
    """Index into `CLASSES`, or `IGNORE_INDEX` for O (regression only), X and unlabelled clips."""
    return CLASSES.index(emotion) if emotion in CLASSES else IGNORE_INDEX


def trains(emotion: str | None, *, o_clips: str = "regression", x_clips: str = "exclude",
           soft: bool = False) -> bool:
    """Whether a labelled clip takes part in training. The paper's rule is the default: X clips (no
    agreement) are left out, O clips train the attributes only (their class target is `IGNORE_INDEX`).
    Task 1 fine-tuning leaves O out too (`o_clips="exclude"`); SAIL's Task 2 finding keeps X for the
    attributes, whose ratings are valid (`x_clips="regression"`). With soft targets X clips train the
    classifier (their votes say what they are), so they are in the sample whatever `x_clips` says."""
    if emotion is None:
        return False
    if emotion == NO_AGREEMENT:
        return x_clips == "regression" or soft
    if emotion == OTHER:
        return o_clips == "regression"
    return True


@dataclass
class Targets:
    """Consensus labels of a list of clips, in the model's terms (same order as the clips).

    Which rows a metric scores follows the official challenge scoring: macro-F1 over the clips whose
    consensus is one of the 8 classes; an attribute's CCC over every clip rated on it, X included
    (X only means no class plurality: its ratings are valid). Unlabelled clips (Test3) have neither.
    """

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
    def labelled(self) -> "np.ndarray":
        """(N,) bool: clips with a consensus label."""
        import numpy as np

        return np.array([e is not None for e in self.emotion], dtype=bool)

    @property
    def agreed(self) -> "np.ndarray":
        """(N,) bool: labelled clips whose annotators reached a consensus (not X)."""
        import numpy as np

        return np.array([e is not None and e != NO_AGREEMENT for e in self.emotion], dtype=bool)

    @property
    def class_rows(self) -> "np.ndarray":
        """(N,) bool: the clips macro-F1 scores (consensus one of the 8 classes)."""
        return self.class_target >= 0

    def attribute_rows(self, j: int, *, exclude_x: bool = False) -> "np.ndarray":
        """(N,) bool: the clips an attribute's CCC scores (rated on attribute `j`; optionally not X)."""
        import numpy as np

        rows = ~np.isnan(self.attrs[:, j])
        return rows & self.agreed if exclude_x else rows

    def class_counts(self) -> list[int]:
        """Clips per task class (CLASSES order), the counts behind the class weights."""
        return [int((self.class_target == i).sum()) for i in range(len(CLASSES))]
