"""The label convention shared by the model, its losses and the metrics.

Class targets are indices 0..7 into `CLASSES` (the challenge's Task 1 order). Clips whose consensus is
`O` (other) keep their attributes but get `IGNORE_INDEX` as class target, so they train the regression
head only. Clips whose consensus is `X` (no agreement) never reach the model: the data loader drops them.
Attribute targets are (arousal, valence, dominance) on 1..7; a missing value is NaN and is masked out.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("A", "S", "H", "U", "F", "D", "C", "N")
"""Task 1 classes in target-index order: Angry, Sad, Happy, Surprise, Fear, Disgust, Contempt, Neutral."""

ATTRIBUTES: tuple[str, ...] = ("arousal", "valence", "dominance")
"""Attribute order of the regression head and of attribute targets."""

IGNORE_INDEX = -100
"""Class target of `O` clips: excluded from cross-entropy (torch's default `ignore_index`)."""

REGRESSION_ONLY = "O"
EXCLUDED = "X"


def class_target(emotion: str) -> int:
    """The class target for a consensus code: 0..7 for the task classes, `IGNORE_INDEX` for `O`.

    `X` (and anything unknown) raises: such clips must have been dropped before training.
    """
    if emotion in CLASSES:
        return CLASSES.index(emotion)
    if emotion == REGRESSION_ONLY:
        return IGNORE_INDEX
    raise ValueError(f"emotion {emotion!r} has no class target (X clips are excluded from training)")
