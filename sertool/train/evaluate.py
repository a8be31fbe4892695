"""Evaluating the model on a split: its predictions, and the figures they score.

Figures come from `metrics.score`, the official scoring that ensembles and `sertool score` use too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..labels import ATTRIBUTES, CLASSES
from ..metrics import metric_name, score

if TYPE_CHECKING:
    from ..model.losses import MultiTaskLoss
    from .data import SplitData
    from .parts import Feeds, Trainee


def predict_split(trainee: "Trainee", feeds: "Feeds", split: "SplitData") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, 8) and attributes (N, 3) of a split's clean frames, in split order."""
    import torch

    probs = np.zeros((len(split), len(CLASSES)), dtype=np.float32)
    attrs = np.zeros((len(split), len(ATTRIBUTES)), dtype=np.float32)
    trainee.module.eval()
    with torch.no_grad():
        for batch in feeds.eval_loader(split):
            idx = batch.index.numpy()
            b = batch.to(feeds.device)
            with trainee.autocast:
                out = trainee.module(b.inputs)
            probs[idx] = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
            attrs[idx] = out.attributes.float().cpu().numpy()
    return probs, attrs


def split_metrics(loss_cpu: "MultiTaskLoss", split: "SplitData", probs: np.ndarray,
                  attrs: np.ndarray) -> dict[str, float]:
    """The split's figures (`metrics.score`) and the loss over its labelled clips; {} when unlabelled."""
    import torch

    keep = split.targets.labelled
    if not keep.any():
        return {}
    m = score(split.targets, probs.argmax(axis=1), attrs)
    logits = torch.log(torch.from_numpy(probs[keep]).clamp_min(1e-12))
    with torch.no_grad():
        parts = loss_cpu(logits, torch.from_numpy(attrs[keep]),
                         torch.from_numpy(split.class_target[keep]), torch.from_numpy(split.attrs[keep]))
    m["loss"] = float(parts.total)
    return m


def select_value(metrics: dict[str, float], select: str) -> float:
    """The figure `--select` keeps checkpoints by (-inf where it is missing or NaN: never selected)."""
    v = metrics.get(metric_name(select), math.nan)
    return -math.inf if math.isnan(v) else v
