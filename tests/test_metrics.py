import numpy as np
import pytest
from sklearn.metrics import f1_score

from sertool.metrics import METRIC_NAMES, all_metrics, ccc, ccc_per_attribute, f1_macro


def challenge_ccc(t: np.ndarray, p: np.ndarray) -> float:
    """The challenge formula written independently: population (ddof=0) moments via np.cov/np.var."""
    cov = np.cov(t, p, ddof=0)[0, 1]
    return 2 * cov / (np.var(t, ddof=0) + np.var(p, ddof=0) + (np.mean(t) - np.mean(p)) ** 2)


def test_ccc_matches_the_challenge_formula_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = rng.uniform(1, 7, 200)
        p = 0.6 * t + rng.normal(0.5, 1.0, 200)
        assert ccc(t, p) == pytest.approx(challenge_ccc(t, p), rel=1e-12)


def test_ccc_is_one_for_identical_inputs_and_penalises_bias():
    t = np.random.default_rng(1).uniform(1, 7, 50)
    assert ccc(t, t) == pytest.approx(1.0)
    assert ccc(t, t + 1.0) < 1.0  # perfectly correlated but shifted: not concordant
    assert ccc([4.0, 4.0], [4.0, 4.0]) == 1.0


def test_ccc_per_attribute_names_and_nan_truth():
    rng = np.random.default_rng(2)
    t = rng.uniform(1, 7, (60, 3))
    p = t + rng.normal(0, 1, (60, 3))
    t[5, 1] = np.nan
    got = ccc_per_attribute(t, p)
    assert list(got) == ["ccc_arousal", "ccc_valence", "ccc_dominance", "ccc_mean"]
    keep = ~np.isnan(t[:, 1])
    assert got["ccc_valence"] == pytest.approx(challenge_ccc(t[keep, 1], p[keep, 1]))
    assert got["ccc_arousal"] == pytest.approx(challenge_ccc(t[:, 0], p[:, 0]))
    assert got["ccc_mean"] == pytest.approx(np.mean([got["ccc_arousal"], got["ccc_valence"], got["ccc_dominance"]]))


def test_f1_macro_equals_sklearn_over_the_8_classes():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 6, 300)  # classes 6 and 7 never true
    p = rng.integers(0, 8, 300)
    expected = f1_score(t, p, average="macro", labels=list(range(8)), zero_division=0)
    assert f1_macro(t, p) == pytest.approx(expected)
    assert f1_macro(t, t) == pytest.approx(6 / 8)  # absent classes count as F1 0: macro over all 8


def test_f1_macro_leaves_o_clips_out():
    t = np.array([0, 1, 2, -100, -100])
    p = np.array([0, 1, 2, 5, 6])
    assert f1_macro(t, p) == pytest.approx(f1_score(t[:3], p[:3], average="macro", labels=list(range(8)), zero_division=0))


def test_all_metrics_has_the_logged_names():
    rng = np.random.default_rng(4)
    attrs = rng.uniform(1, 7, (20, 3))
    got = all_metrics(rng.integers(0, 8, 20), rng.integers(0, 8, 20), attrs, attrs)
    assert tuple(got) == METRIC_NAMES == ("f1_macro", "ccc_arousal", "ccc_valence", "ccc_dominance", "ccc_mean")
    assert got["ccc_mean"] == pytest.approx(1.0)
