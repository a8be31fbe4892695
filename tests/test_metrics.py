"""Scoring the official way: our metrics equal a faithful transliteration of the organisers' code on
random data and on its edge cases (absent classes, constant series, one clip, X rows).

The official code (msplabresearch/MSP-Podcast_Challenge, `utils/loss_manager.py::CCC_loss` and
`eval_cat_ser_weighted.py`): CCC in torch with population moments through Pearson's r, over every
Development row of `labels_consensus.csv` (no EmoClass filter: X and O included); macro-F1 as
`f1_score(y_true, y_pred, average='macro')` over the rows whose EmoClass is one of the 8 codes.
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from sertool.labels import CLASSES, Targets
from sertool.metrics import CCC, CCC_NO_X, COMPANION_NAMES, F1, F1_8, METRIC_NAMES, ccc, f1_macro, score


def official_ccc_loss(pred: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
    """`CCC_loss` from the organisers' utils/loss_manager.py, line for line (float64 here)."""
    m_pred = torch.mean(pred, 0, keepdim=True)
    m_lab = torch.mean(lab, 0, keepdim=True)
    d_pred = pred - m_pred
    d_lab = lab - m_lab
    v_pred = torch.var(pred, 0, unbiased=False)
    v_lab = torch.var(lab, 0, unbiased=False)
    corr = torch.sum(d_pred * d_lab, 0) / (torch.sqrt(torch.sum(d_pred ** 2, 0)) * torch.sqrt(torch.sum(d_lab ** 2, 0)))
    s_pred = torch.std(pred, 0, unbiased=False)
    s_lab = torch.std(lab, 0, unbiased=False)
    return (2 * corr * s_pred * s_lab) / (v_pred + v_lab + (m_pred[0] - m_lab[0]) ** 2)


def official(t: np.ndarray, p: np.ndarray) -> float:
    return float(official_ccc_loss(torch.tensor(p, dtype=torch.float64)[:, None], torch.tensor(t, dtype=torch.float64)[:, None])[0])


def same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_ccc_equals_the_official_code_on_random_data():
    rng = np.random.default_rng(0)
    for n in (2, 3, 50, 500):
        t = rng.uniform(1, 7, n)
        p = 0.6 * t + rng.normal(0.5, 1.0, n)
        assert same(ccc(t, p), official(t, p))


@pytest.mark.parametrize("t, p", [
    ([4.0, 4.0, 4.0], [1.0, 2.0, 3.0]),        # constant truth
    ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]),        # constant predictions (a model that learnt nothing)
    ([3.0], [4.0]),                            # one clip
    ([2.0, 6.0], [2.0, 6.0]),                  # two clips, perfect
    ([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]),
])
def test_ccc_edge_cases_like_the_official_code(t, p):
    assert same(ccc(t, p), official(np.array(t), np.array(p)))
    if len(set(t)) == 1 or len(set(p)) == 1:
        assert np.isnan(ccc(t, p))  # officially NaN, where 2 cov / (...) alone would say 0


def official_f1(emotions: list, pred_idx: np.ndarray) -> float:
    """eval_cat_ser_weighted.py: rows whose EmoClass is one of the 8 codes; sklearn's defaults."""
    rows = [i for i, e in enumerate(emotions) if e in CLASSES]
    y_true = np.array([CLASSES.index(emotions[i]) for i in rows])
    return f1_score(y_true, pred_idx[rows], average="macro", zero_division=0)


def test_f1_equals_the_official_call_with_absent_classes():
    rng = np.random.default_rng(1)
    emotions = list(rng.choice(["A", "S", "H", "N", "O", "X"], 60))  # U, F, D, C never true
    pred = rng.choice([0, 1, 2, 7, 3], 60)  # and U (3) sometimes predicted
    targets = Targets.from_consensus(emotions, [(4.0, 4.0, 4.0)] * 60)
    rows = targets.class_rows
    assert f1_macro(targets.class_target[rows], pred[rows]) == pytest.approx(official_f1(emotions, pred))
    # over all 8 classes, the absent ones count 0: lower, as `f1_macro_8` says
    full = f1_score(targets.class_target[rows], pred[rows], average="macro", labels=list(range(8)), zero_division=0)
    assert score(targets, pred, np.full((60, 3), 4.0))[F1_8] == pytest.approx(full)
    assert full < official_f1(emotions, pred)


def test_score_counts_x_in_ccc_and_not_in_f1():
    rng = np.random.default_rng(2)
    n = 80
    emotions = list(rng.choice([*CLASSES, "O", "X"], n)) + [None] * 5  # Test3-like unlabelled rows too
    truth = rng.uniform(1, 7, (n + 5, 3))
    truth[n:] = np.nan
    truth[3, 1] = np.nan  # a clip not rated on valence
    targets = Targets.from_consensus(emotions, truth.tolist(), dtype="float64")
    pred_attrs = truth + rng.normal(0, 1.0, truth.shape)
    pred_attrs[n:] = 4.0
    pred_cls = rng.integers(0, 8, n + 5)
    got = score(targets, pred_cls, pred_attrs)
    assert set(got) == set(METRIC_NAMES) | set(COMPANION_NAMES)
    labelled = np.arange(n)
    for j, a in enumerate(("arousal", "valence", "dominance")):
        rows = [i for i in labelled if not np.isnan(truth[i, j])]  # every rated Development row, X included
        assert same(got[CCC[a]], official(truth[rows, j], pred_attrs[rows, j]))
        no_x = [i for i in rows if emotions[i] != "X"]
        assert same(got[CCC_NO_X[a]], official(truth[no_x, j], pred_attrs[no_x, j]))
    assert got[CCC["mean"]] == pytest.approx(np.mean([got[CCC[a]] for a in ("arousal", "valence", "dominance")]))
    assert got[F1] == pytest.approx(official_f1(emotions + [None] * 0, pred_cls[: n + 5]))


def test_a_split_without_rows_for_a_metric_gives_nan():
    targets = Targets.from_consensus(["X", "O"], [(3.0, 4.0, 5.0), (4.0, 4.0, 4.0)])
    got = score(targets, np.array([0, 1]), np.array([[3.0, 4.0, 5.0], [4.0, 4.5, 4.0]]))
    assert np.isnan(got[F1]) and np.isnan(got[F1_8])  # no clip of the 8 classes
    assert np.isnan(got[CCC_NO_X["arousal"]])  # one agreed clip only: officially NaN
    assert got[CCC["arousal"]] == pytest.approx(official(np.array([3.0, 4.0]), np.array([3.0, 4.0])))
