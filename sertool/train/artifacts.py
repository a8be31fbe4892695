"""What a finished run leaves behind (rank 0): the selected checkpoint with its description, the
prediction table of Development and of every test split, their figures, and plots.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..labels import ATTRIBUTES, CLASSES
from ..metrics import METRIC_NAMES, best
from ..predictions import Predictions
from ..tracking.names import PLOTS_DIR, WARNING_CONSTANT_TAG
from .checkpoint import CheckpointInfo, save_checkpoint
from .diagnostics import constant_warning
from .evaluate import predict_split, split_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..tracking.logger import RunLogger
    from .data import SplitData
    from .loop import TrainResult
    from .parts import Feeds, Trainee


def log_outcome(run: "RunLogger", trainee: "Trainee", feeds: "Feeds", result: "TrainResult", tmp: Path) -> None:
    """Log the selected checkpoint, every split's predictions and figures, and the plots."""
    final = {**{best(m): result.best.get(m) for m in METRIC_NAMES}, "best_epoch": float(result.best_epoch)}
    run.log_metrics(final, step=result.best_epoch)
    info = CheckpointInfo(
        fusion=trainee.module.config.to_dict(), encoders=feeds.data.encoder_meta(), classes=list(CLASSES),
        attributes=list(ATTRIBUTES), train=feeds.config.to_dict(), epoch=result.best_epoch,
        metrics={f"dev_{k}": v for k, v in result.best.items()},
    )
    weights = save_checkpoint(tmp / "checkpoint", trainee.module.state_dict(), info)
    run.log_checkpoint(weights, info.to_dict(), name=feeds.config.run_label, step=result.best_epoch)
    data = feeds.data
    for split in [data.dev, *data.tests.values()]:
        if len(split) == 0:
            continue
        probs, attrs = predict_split(trainee, feeds, split)
        run.log_predictions(split.name, Predictions(split.clip_ids, probs, attrs).to_frame())
        if split is data.dev and (flat := constant_warning(split, probs, attrs)):
            result.warnings.append(flat)
            run.set_tags({WARNING_CONSTANT_TAG: flat})
        if split is not data.dev:
            m = {k: v for k, v in split_metrics(trainee.loss_cpu, split, probs, attrs).items() if k != "loss"}
            if m:
                result.tests[split.name] = m
                run.log_metrics({f"{metric_prefix(split.name)}_{k}": v for k, v in m.items()}, step=result.best_epoch)
        tag = metric_prefix(split.name)
        fig = confusion_figure(split, probs)
        if fig is not None:
            run.log_figure(fig, f"{PLOTS_DIR}/confusion_{tag}.png")
        fig = scatter_figure(split, attrs)
        if fig is not None:
            run.log_figure(fig, f"{PLOTS_DIR}/scatter_{tag}.png")


def metric_prefix(split: str) -> str:
    """Metric-name prefix for a split: `Development` -> `dev`, `Test1` -> `test1`, `Test-Development` -> `test_development`."""
    if split == "Development":
        return "dev"
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")


def confusion_figure(split: "SplitData", probs: np.ndarray) -> "Figure | None":
    """Confusion matrix over the 8 classes on the clips that have one (None if there are none)."""
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    keep = split.targets.class_rows
    if not keep.any():
        return None
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        split.class_target[keep], probs[keep].argmax(axis=1), labels=list(range(len(CLASSES))),
        display_labels=list(CLASSES), normalize="true", values_format=".2f", ax=ax, colorbar=False,
    )
    ax.set_title(f"{split.name}: confusion (rows normalised), n={int(keep.sum())}")
    return fig


def scatter_figure(split: "SplitData", attrs: np.ndarray) -> "Figure | None":
    """Predicted against true ratings, one panel per attribute (None if the split has no such labels)."""
    from matplotlib.figure import Figure

    from ..metrics import ccc

    if not split.targets.labelled.any():
        return None
    fig = Figure(figsize=(12, 4))
    for j, (ax, attribute) in enumerate(zip(fig.subplots(1, len(ATTRIBUTES)), ATTRIBUTES)):
        keep = split.targets.attribute_rows(j)
        t, p = split.attrs[keep, j], attrs[keep, j]
        ax.scatter(t, p, s=6, alpha=0.5)
        ax.plot([1, 7], [1, 7], color="grey", lw=1, ls="--")
        ax.set_xlim(1, 7)
        ax.set_ylim(1, 7)
        ax.set_xlabel(f"true {attribute}")
        ax.set_ylabel(f"predicted {attribute}")
        ax.set_title(f"{split.name} {attribute}: CCC {ccc(t, p):.3f}" if keep.any() else attribute)
    return fig
