import math

import numpy as np
import pytest
import torch

from sertool.labels import IGNORE_INDEX
from sertool.model.losses import MultiTaskLoss, class_weights, cross_entropy, gaussian_mse, mse

LOGITS = torch.tensor([[2.0, 0.5, -1.0, 0, 0, 0, 0, 0], [0.1, 0.2, 3.0, 0, 0, 0, 0, 1.0], [1.0, 1, 1, 1, 1, 1, 1, 1]])
PRED = torch.tensor([[2.0, 4.0, 6.5], [3.0, 5.0, 1.5], [4.0, 4.0, 4.0]])
TRUE = torch.tensor([[3.0, 4.5, 6.0], [1.0, float("nan"), 2.0], [7.0, 1.0, 4.0]])


def nll(row: torch.Tensor, c: int) -> float:
    z = row.numpy().astype(np.float64)
    return float(np.log(np.exp(z).sum()) - z[c])


def test_class_weights_formula():
    counts = [10, 20, 5, 0, 5, 5, 5, 50]
    n = sum(counts)
    expected = [n / (8 * c) if c else 0.0 for c in counts]
    np.testing.assert_allclose(class_weights(counts).numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError):
        class_weights([0] * 8)


def test_plain_cross_entropy_by_hand():
    target = torch.tensor([0, 2, 7])
    expected = np.mean([nll(LOGITS[i], int(c)) for i, c in enumerate(target)])
    assert cross_entropy(LOGITS, target).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_cross_entropy_by_hand_and_o_clips_ignored():
    w = torch.tensor([2.0, 1, 0.5, 1, 1, 1, 1, 4.0])
    target = torch.tensor([0, IGNORE_INDEX, 7])
    expected = (2.0 * nll(LOGITS[0], 0) + 4.0 * nll(LOGITS[2], 7)) / (2.0 + 4.0)
    assert cross_entropy(LOGITS, target, w).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_of_an_all_o_batch_is_zero_not_nan():
    logits = LOGITS.clone().requires_grad_(True)
    loss = cross_entropy(logits, torch.full((3,), IGNORE_INDEX))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_mse_by_hand_masks_missing_values():
    sq = [(3 - 2) ** 2, (4.5 - 4) ** 2, (6 - 6.5) ** 2, (1 - 3) ** 2, (2 - 1.5) ** 2, 3**2, 3**2, 0.0]
    assert mse(PRED, TRUE).item() == pytest.approx(sum(sq) / 8)
    assert mse(PRED, torch.full_like(TRUE, float("nan"))).item() == 0.0


@pytest.mark.parametrize("sigma", [3.0, 5.0, 7.0])
def test_gaussian_mse_by_hand(sigma):
    total, n = 0.0, 0
    for yhat_row, y_row in zip(PRED.tolist(), TRUE.tolist()):
        for yhat, y in zip(yhat_row, y_row):
            if math.isnan(y):
                continue
            total += math.exp(-((yhat - 4.0) ** 2) / (2 * sigma**2)) * (y - yhat) ** 2
            n += 1
    assert gaussian_mse(PRED, TRUE, sigma).item() == pytest.approx(total / n, rel=1e-6)


def test_multitask_total_and_parts():
    w = class_weights([3, 1, 2, 1, 1, 1, 1, 5])
    target = torch.tensor([0, 2, IGNORE_INDEX])
    loss = MultiTaskLoss(alpha=0.75, beta=0.25, class_weights=w, gaussian_sigma=5.0)
    parts = loss(LOGITS, PRED, target, TRUE)
    reg = gaussian_mse(PRED, TRUE, 5.0)
    cls = cross_entropy(LOGITS, target, w)
    assert parts.regression.item() == pytest.approx(reg.item())
    assert parts.classification.item() == pytest.approx(cls.item())
    assert parts.total.item() == pytest.approx(0.75 * reg.item() + 0.25 * cls.item())
    assert "class_weights" in loss.state_dict()


def test_o_clips_train_regression_only():
    logits = LOGITS.clone().requires_grad_(True)
    attrs = PRED.clone().requires_grad_(True)
    target = torch.tensor([0, IGNORE_INDEX, 7])
    MultiTaskLoss(alpha=1.0, beta=1.0)(logits, attrs, target, TRUE).total.backward()
    assert torch.equal(logits.grad[1], torch.zeros(8))  # the O clip: no classification gradient
    assert logits.grad[0].abs().sum() > 0 and logits.grad[2].abs().sum() > 0
    assert attrs.grad[1, 0] != 0 and attrs.grad[1, 2] != 0  # ... but its attributes do train
    assert attrs.grad[1, 1] == 0  # missing valence: masked


@pytest.mark.parametrize("kw", [{"alpha": 0, "beta": 0}, {"alpha": -1, "beta": 1}, {"alpha": 1, "beta": 0, "gaussian_sigma": 0}])
def test_multitask_rejects_bad_settings(kw):
    with pytest.raises(ValueError):
        MultiTaskLoss(**kw)
