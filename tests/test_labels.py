"""The vocabulary: class words and codes, how votes become a consensus, and which clips train and are
scored with which targets (the one rule training, ensembles and scoring share)."""

from collections import Counter
from statistics import fmean

import pytest

from sertool.labels import (
    CLASSES,
    CONSENSUS_CODES,
    IGNORE_INDEX,
    Targets,
    class_target,
    trains,
    UnknownClass,
    agreement,
    check_attribute,
    class_code,
    derive_consensus,
    plurality,
)


def test_task1_classes_are_the_eight_in_model_order():
    assert CLASSES == ("A", "S", "H", "U", "F", "D", "C", "N")
    assert CONSENSUS_CODES[-2:] == ("O", "X")


@pytest.mark.parametrize(
    "token, code",
    [("Angry", "A"), ("sad", "S"), ("HAPPY", "H"), ("Surprise", "U"), ("Fear", "F"), ("Disgust", "D"),
     ("Contempt", "C"), ("Neutral", "N"), ("Other", "O"), ("Other-Curious", "O"), ("Other - confused", "O"),
     ("h", "H"), ("X", "X"), (" N ", "N")],
)
def test_class_code_reads_words_and_codes(token, code):
    assert class_code(token) == code


@pytest.mark.parametrize("token", ["Hapy", "Q", "", "Otherwise", "Bored"])
def test_class_code_rejects_unknown(token):
    with pytest.raises(UnknownClass):
        class_code(token)


def test_votes_cannot_be_x():
    with pytest.raises(UnknownClass):
        class_code("X", allow_x=False)


def test_plurality_and_ties():
    assert plurality(["H", "H", "S"]) == "H"
    assert plurality(["H", "S"]) == "X"
    assert plurality(["H", "H", "S", "S", "N"]) == "X"
    assert plurality([]) == "X"


def test_derive_consensus_means_and_agreement():
    emotions = ["H", "H", "U", "N"]
    a, v, d = [5.0, 6.0, 7.0, 4.0], [6.0, 7.0, 5.0, None], [4.0, 5.0, 3.0, 4.0]
    c = derive_consensus(emotions, a, v, d)
    assert c.emotion == "H"
    assert c.arousal == pytest.approx(fmean(a))
    assert c.valence == pytest.approx(fmean([x for x in v if x is not None]))  # a missing rating is skipped
    assert c.dominance == pytest.approx(fmean(d))
    assert c.n_annotators == len(emotions)
    assert c.agreement == pytest.approx(Counter(emotions)["H"] / len(emotions))


def test_agreement_of_a_tie_is_the_plurality_share():
    assert agreement(["F", "D", "F", "D", "N"], "X") == pytest.approx(2 / 5)
    assert agreement(["F", "D"], "F") == pytest.approx(0.5)
    assert agreement([], "H") is None


@pytest.mark.parametrize("bad", [0.99, 7.01, float("nan")])
def test_ratings_outside_1_to_7_are_refused(bad):
    with pytest.raises(ValueError):
        check_attribute(bad)
    assert check_attribute(1.0) == 1.0 and check_attribute(7.0) == 7.0


def test_targets_rule_for_every_consensus_code():
    assert [class_target(c) for c in CLASSES] == list(range(8))
    # O trains the attributes only; X and unlabelled clips have no class target and never train
    assert [class_target(c) for c in ("O", "X", None)] == [IGNORE_INDEX] * 3
    assert [trains(c) for c in ("A", "O", "X", None)] == [True, True, False, False]
    assert [trains(c, o_clips="exclude") for c in ("A", "O", "X")] == [True, False, False]  # Task 1
    assert [trains(c, x_clips="regression") for c in ("A", "O", "X")] == [True, True, True]


def test_targets_from_consensus_rows():
    t = Targets.from_consensus(["H", "O", "X", None], [(5.0, 6.0, 4.0), (4.0, None, 3.0), (2, 2, 2), (None,) * 3])
    assert t.class_target.tolist() == [2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    assert t.labelled.tolist() == [True, True, True, False] and t.agreed.tolist() == [True, True, False, False]
    assert t.class_rows.tolist() == [True, False, False, False]
    assert t.attribute_rows(0).tolist() == [True, True, True, False]  # X is rated: its CCC rows count
    assert t.attribute_rows(1).tolist() == [True, False, True, False]  # (O clip not rated on valence)
    assert t.attribute_rows(0, exclude_x=True).tolist() == [True, True, False, False]
    assert t.attrs.shape == (4, 3) and t.attrs.dtype.name == "float32"
    assert t.attrs[0].tolist() == [5.0, 6.0, 4.0]
    assert [v != v for v in t.attrs[1]] == [False, True, False] and all(v != v for v in t.attrs[3])
    assert t.class_counts() == [0, 0, 1, 0, 0, 0, 0, 0]
