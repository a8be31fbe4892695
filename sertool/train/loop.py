"""The training loop: one `TrainConfig` and one run logger in, one trained and logged run out.

    feeds = catalog -> TrainingData + loaders (once)      trainee = FusionModel (or a logged checkpoint)
    per epoch: plan a sample -> workers read batches from the store -> AdamW steps on the warm-up
               cosine schedule -> evaluate on Development -> keep the best state by --select
               -> save the resume state (a killed run goes on from here: `train.resume`)
    at the end: the best checkpoint, predictions of Development and every test split, plots

Under torchrun every rank trains on its share of the epoch's sample (DDP averages the gradients);
rank 0 alone evaluates, and only rank 0's run logger writes.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from ..metrics import METRIC_NAMES, best
from ..progress import progress_bar
from ..store.layout import StoreLayout
from ..tracking.names import DATA_DIGEST_TAG, PRUNED_TAG, TRAINING, WARNING_SCHEDULE_TAG, encoder_tag
from . import distributed
from .artifacts import log_outcome
from .batches import iter_timed
from .config import TrainConfig
from .evaluate import predict_split, select_value, split_metrics
from .parts import Feeds, InitCheckpoint, Trainee, build_feeds, build_trainee, resolve_device
from .resume import ResumeState, restore_rng, rng_state

if TYPE_CHECKING:
    from rich.console import Console

    from ..tracking.logger import RunLogger


@dataclass
class EpochStats:
    """One epoch's figures (what is logged at step = epoch)."""

    epoch: int
    loss: float
    loss_reg: float
    loss_class: float
    lr: float
    samples: int
    seconds: float
    data_wait_s: float
    dev: dict[str, float] = field(default_factory=dict)
    padded_share: float = 0.0
    """Share of the frames fed to the model that were padding (what bucketed batching cuts)."""
    """Dev metrics: f1_macro, ccc_arousal, ccc_valence, ccc_dominance, ccc_mean, loss."""

    def metrics(self) -> dict[str, float]:
        out = {
            "train_loss": self.loss, "train_loss_reg": self.loss_reg, "train_loss_class": self.loss_class,
            "lr": self.lr, "train_samples": float(self.samples), "samples_per_s": self.samples / max(self.seconds, 1e-9),
            "data_wait_share": self.data_wait_s / max(self.seconds, 1e-9), "padded_share": self.padded_share,
        }
        out.update({f"dev_{k}": v for k, v in self.dev.items()})
        return out


@dataclass
class TrainResult:
    """What a finished run reports back (rank 0 has the dev figures; other ranks only their timings)."""

    config: TrainConfig
    run_id: str | None
    best_epoch: int
    best: dict[str, float]
    """The selected epoch's dev metrics (f1_macro, ccc_*)."""
    history: list[EpochStats]
    tests: dict[str, dict[str, float]] = field(default_factory=dict)
    """Metrics of the labelled test splits, by split name, for the selected checkpoint."""
    n_parameters: int = 0
    n_train: int = 0
    warnings: list[str] = field(default_factory=list)
    """What the user should know about this run (a schedule too short to learn, constant predictions)."""
    stopped_epoch: int | None = None
    """The last epoch trained when `early_stop` ended the run before its planned epochs."""
    refit: "TrainResult | None" = None
    """The run's refit on Train + Development (`refit_epochs`), a child run."""
    pruned: str | None = None
    """Why an `EpochHook` stopped the run (a search's pruner): it ends KILLED, without a checkpoint."""

    @property
    def samples_per_s(self) -> float:
        return sum(e.samples for e in self.history) / max(sum(e.seconds for e in self.history), 1e-9)

    @property
    def data_wait_share(self) -> float:
        return sum(e.data_wait_s for e in self.history) / max(sum(e.seconds for e in self.history), 1e-9)


EpochHook = Callable[[str | None, EpochStats], str | None]
"""Called on rank 0 after every epoch (its figures logged, its resume state saved) with the run id and
the epoch's figures; returns None to go on, or a reason to stop the run here. A sweep reports progress
through it and a search's pruner stops hopeless trials (the loop knows neither)."""


@dataclass
class Session:
    """A run's parts, built before any run is started (a data problem never leaves a failed run behind).
    A context manager: leaving it leaves the DDP process group this process joined."""

    config: TrainConfig
    device: str
    dist: distributed.DistInfo
    feeds: Feeds
    trainee: Trainee

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        distributed.shutdown(self.dist)


def prepare(config: TrainConfig, layout: StoreLayout, *, init: InitCheckpoint | None = None,
            refit: bool = False) -> Session:
    """Read the data, build the loaders and the model (from `init`, a checkpoint to fine-tune, if given).
    `refit`: Train and Development both train, and nothing selects (the last epoch is kept)."""
    device = resolve_device(config)
    dist = distributed.init(device)
    try:
        feeds = build_feeds(config, layout, device, dist, refit=refit)
        return Session(config, device, dist, feeds, build_trainee(config, feeds, device, dist, init))
    except BaseException:
        distributed.shutdown(dist)
        raise


def fit(
    session: Session,
    run: "RunLogger",
    *,
    resume: ResumeState | None = None,
    resume_path: Path | None = None,
    logged_epochs: frozenset[int] = frozenset(),
    console: "Console | None" = None,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train the session's model, logging to `run` (the caller started it).

    `resume`: the state of a killed run to go on from, and `logged_epochs` the epochs whose figures that
    run logged already (a kill can fall between logging an epoch and saving its state: that epoch is
    trained again, identically, but not logged twice). `resume_path`: where to save the state after
    every epoch (rank 0). `console`: rich progress there. `on_epoch`: see `EpochHook`; a run it stops
    logs its selected epoch's figures but no checkpoint or predictions, and is marked KILLED with the
    reason in its `sertool.pruned` tag (a pruned trial is no model to ensemble or fine-tune).
    """
    from .diagnostics import schedule_warning

    config, feeds, trainee, dist = session.config, session.feeds, session.trainee, session.dist
    data = feeds.data
    run.set_tags({encoder_tag(n): e.fingerprint for n, e in data.encoders.items()})
    run.log_datasets(feeds.datasets)  # again on a resume: MLflow keeps one entry per dataset and run
    run.set_tags({DATA_DIGEST_TAG: d.digest for d in feeds.datasets if d.context == TRAINING})
    early = schedule_warning(config, len(feeds.sampler) * dist.world)
    if early and resume is None:
        run.set_tags({WARNING_SCHEDULE_TAG: early})
        if console is not None and dist.is_main:
            console.print(f"[bold yellow]warning:[/] {escape(early)}", highlight=False)
    if resume is None:
        run.log_config({**config.to_dict(), "device": session.device})
        run.log_params({
            "data.n_train": len(data.train), "data.n_dev": len(data.dev),
            "data.tests": ",".join(data.tests) or "none", "data.missing_frames": data.missing,
            "data.world_size": dist.world, "model.n_parameters": trainee.module.num_parameters(),
            "data.class_counts": data.class_counts,
            **(feeds.targets.summary() if feeds.targets is not None else {}),
            **({"view.dtype": feeds.resident.info.spec.dtype, "view.frame_rate": feeds.resident.info.spec.frame_rate,
                "view.resident": feeds.resident.device, "view.bytes": feeds.resident.info.bytes}
               if feeds.resident is not None else {}),
        })
    result = _epochs(trainee, feeds, dist, run, resume, resume_path if dist.is_main else None, logged_epochs, console,
                     on_epoch)
    result.run_id = run.run_id
    result.warnings += [early] if early else []
    if result.stopped_epoch is not None:
        run.log_metrics({"stopped_epoch": float(result.stopped_epoch)}, step=result.stopped_epoch)
    if result.pruned is not None:
        if dist.is_main:
            run.log_metrics({**{best(m): result.best.get(m) for m in METRIC_NAMES},
                             "best_epoch": float(result.best_epoch)}, step=result.best_epoch)
            run.set_tags({PRUNED_TAG: result.pruned})
        run.finalize("KILLED")
        distributed.barrier(dist)
        return result
    if dist.is_main:
        with tempfile.TemporaryDirectory(prefix="sertool-train-") as tmp:
            log_outcome(run, trainee, feeds, result, Path(tmp))
    distributed.barrier(dist)
    return result


def _epochs(trainee: Trainee, feeds: Feeds, dist: distributed.DistInfo, run: "RunLogger",
            resume: ResumeState | None, resume_path: Path | None, logged: frozenset[int],
            console: "Console | None", on_epoch: EpochHook | None = None) -> TrainResult:
    c = feeds.config
    state = resume or ResumeState(0, {}, {})
    if resume is not None:
        trainee.load_state(resume.trainee)
        restore_rng(resume.rng)
    history = state.epochs()
    stopped_by: str | None = None
    with progress_bar(console if dist.is_main else None, info=True) as progress:
        epochs_task = progress.add_task("epochs", total=c.epochs, completed=state.epoch)
        steps_task = progress.add_task("steps", total=1)
        selects = len(feeds.data.dev) > 0  # a refit has no Development: it keeps its last epoch
        for epoch in range(state.epoch + 1, c.epochs + 1):
            if c.early_stop is not None and _patience_spent(state, epoch, c.early_stop, dist):
                break  # checked first, so a resumed run stops where the uninterrupted one did
            stats = _train_epoch(trainee, feeds, dist, epoch, progress, steps_task)
            if dist.is_main:
                if selects:
                    stats.dev = split_metrics(trainee.loss_cpu, feeds.data.dev,
                                              *predict_split(trainee, feeds, feeds.data.dev))
                if epoch not in logged:
                    run.log_metrics(stats.metrics(), step=epoch)
                value = select_value(stats.dev, c.select) if selects else float(epoch)
                if value > state.best_value or state.best_state is None:
                    state.best_value, state.best_epoch, state.best_metrics = value, epoch, dict(stats.dev)
                    state.best_state = trainee.weights()
                progress.update(epochs_task, advance=1, info=(
                    f"loss {stats.loss:.3f}  dev F1 {stats.dev.get('f1_macro', math.nan):.3f}  "
                    f"CCC {stats.dev.get('ccc_mean', math.nan):.3f}  best@{state.best_epoch}"))
            history.append(stats)
            if resume_path is not None:
                state.epoch, state.trainee, state.rng = epoch, trainee.state(), rng_state()
                state.history = [_as_dict(e) for e in history]
                state.save(resume_path)
            distributed.barrier(dist)
            if on_epoch is not None and (stopped_by := _hook_stop(on_epoch, run.run_id, stats, dist)):
                break
    if state.best_state is not None:
        trainee.module.load_state_dict(state.best_state)
    result = TrainResult(c, None, state.best_epoch, {k: v for k, v in state.best_metrics.items() if k != "loss"},
                         history, n_parameters=trainee.module.num_parameters(), n_train=len(feeds.data.train))
    result.pruned = stopped_by
    if history and history[-1].epoch < c.epochs and result.pruned is None:
        result.stopped_epoch = history[-1].epoch
    return result


def _hook_stop(hook: EpochHook, run_id: str | None, stats: EpochStats, dist: distributed.DistInfo) -> str | None:
    """Ask the hook (rank 0) whether to stop after this epoch; every rank learns the answer."""
    reason = hook(run_id, stats) if dist.is_main else None
    if distributed.all_reduce_sum(dist, [float(reason is not None)])[0] > 0:
        return reason or "stopped on rank 0"
    return None


def _patience_spent(state: ResumeState, epoch: int, patience: int, dist: distributed.DistInfo) -> bool:
    """Whether `patience` epochs have passed without a better dev figure before `epoch` (rank 0 knows;
    every rank learns it, so all stop together)."""
    spent = dist.is_main and state.best_epoch > 0 and epoch - 1 - state.best_epoch >= patience
    return distributed.all_reduce_sum(dist, [float(spent)])[0] > 0


def _as_dict(stats: EpochStats) -> dict:
    return asdict(stats)


def _train_epoch(trainee: Trainee, feeds: Feeds, dist: distributed.DistInfo, epoch: int, progress, task) -> EpochStats:
    import torch

    c = feeds.config
    feeds.sampler.set_epoch(epoch)
    progress.reset(task, total=len(feeds.sampler), description=f"epoch {epoch}/{c.epochs}")
    trainee.model.train()
    sums = torch.zeros(3, dtype=torch.float64, device=feeds.device)  # total, reg, class (x clips)
    n = 0
    wait = 0.0
    frames = [0, 0]  # padding, all (counted on the CPU copy of the lengths: no device sync)
    t0 = time.perf_counter()
    for batch, waited in iter_timed(feeds.train_loader):
        wait += waited
        for f, lens in batch.inputs.values():
            frames[0] += int(f.shape[0] * f.shape[1] - lens.sum())
            frames[1] += int(f.shape[0] * f.shape[1])
        b = batch.to(feeds.device)
        with trainee.autocast:
            out = trainee.model(b.inputs)
        parts = trainee.loss(out.logits, out.attributes, b.class_target, b.attrs, b.class_dist, out.aux, b.aux)
        trainee.optimizer.zero_grad(set_to_none=True)
        if trainee.scaler is not None:
            trainee.scaler.scale(parts.total).backward()
            trainee.scaler.unscale_(trainee.optimizer)
        else:
            parts.total.backward()
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(trainee.model.parameters(), c.grad_clip)
        if trainee.scaler is not None:
            trainee.scaler.step(trainee.optimizer)
            trainee.scaler.update()
        else:
            trainee.optimizer.step()
        trainee.scheduler.step()
        sums += torch.stack([parts.total.detach(), parts.regression.detach(), parts.classification.detach()]).double() * len(b)
        n += len(b)
        progress.advance(task)
    seconds = time.perf_counter() - t0
    totals = distributed.all_reduce_sum(dist, [*sums.cpu().tolist(), float(n)])
    n_all = max(totals[3], 1.0)
    return EpochStats(
        epoch=epoch, loss=totals[0] / n_all, loss_reg=totals[1] / n_all, loss_class=totals[2] / n_all,
        lr=trainee.optimizer.param_groups[0]["lr"], samples=int(totals[3]), seconds=seconds, data_wait_s=wait,
        padded_share=frames[0] / max(frames[1], 1),
    )
