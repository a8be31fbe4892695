"""The training loop: one `TrainConfig` in, one tracked MLflow run out.

    data = catalog -> TrainingData (once)          model = FusionModel (or a logged checkpoint)
    per epoch: plan a sample -> workers read batches from the store -> AdamW steps on the warm-up
               cosine schedule -> evaluate on Development -> keep the best state by --select
    at the end: log the best checkpoint, predictions of Development and every test split, plots

Under torchrun every rank trains on its shard of the epoch's sample (DDP averages the gradients);
rank 0 alone evaluates and writes to MLflow.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NotFound, SertoolError
from ..labels import ATTRIBUTES, CLASSES
from ..store.catalog import Catalog
from ..store.layout import StoreLayout
from . import distributed
from .checkpoint import CheckpointInfo, check_compatible, save_checkpoint
from .config import TrainConfig
from .batches import (
    PlanSampler,
    StoreBatches,
    iter_timed,
    make_loader,
    open_reader,
    per_rank_batch,
    plan_epoch,
    plan_eval,
)
from .data import SplitData, TrainingData, load_training_data

if TYPE_CHECKING:
    import torch
    from rich.console import Console

    from ..tracking.tracker import RunLogger, Tracker

ARCH_FIELDS = ("proj_dim", "lstm_hidden", "lstm_layers", "pooling", "pooled_norm")


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
    """Dev metrics: f1_macro, ccc_arousal, ccc_valence, ccc_dominance, ccc_mean, loss."""

    def metrics(self) -> dict[str, float]:
        out = {
            "train_loss": self.loss, "train_loss_reg": self.loss_reg, "train_loss_class": self.loss_class,
            "lr": self.lr, "train_samples": float(self.samples), "samples_per_s": self.samples / max(self.seconds, 1e-9),
            "data_wait_share": self.data_wait_s / max(self.seconds, 1e-9),
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

    @property
    def samples_per_s(self) -> float:
        return sum(e.samples for e in self.history) / max(sum(e.seconds for e in self.history), 1e-9)

    @property
    def data_wait_share(self) -> float:
        return sum(e.data_wait_s for e in self.history) / max(sum(e.seconds for e in self.history), 1e-9)


# -- resolving what to start from --------------------------------------------------------------------

def resolve_init_from(tracker: "Tracker", spec: str, experiment: str | None = None) -> str:
    """A run id from `--init-from`: a run id, id prefix or run name, or `best:METRIC` = the finished
    pre-training run of the experiment with the highest METRIC (`best:ccc`, `best:best_dev_f1_macro`),
    so that fine-tuning recipes can name their starting point before it exists."""
    if not spec.startswith("best:"):
        return tracker.resolve_run(spec, experiment).run_id
    from ..metrics import tracked_name
    from ..tracking.names import STAGE_TAG

    metric = tracked_name(spec.split(":", 1)[1])
    runs = tracker.find_runs(
        experiment, filter_string=f"attributes.status = 'FINISHED' and tags.`{STAGE_TAG}` = 'pretrain'",
        order_by=[f"metrics.`{metric}` DESC"], kind="train",
    )
    runs = [r for r in runs if metric in r.metrics]
    if not runs:
        raise NotFound(f"--init-from {spec}: no finished pre-training run with metric {metric} in the experiment")
    return runs[0].run_id


def inherited_arch(tracker: "Tracker", run_id: str) -> dict[str, Any]:
    """The architecture of a logged checkpoint (dims, pooling, encoders), as defaults for a fine-tune:
    flags and recipes still win, and a mismatch is refused when the weights are loaded."""
    with tempfile.TemporaryDirectory(prefix="sertool-init-") as tmp:
        _, cfg = tracker.load_checkpoint(run_id, tmp)
    info = CheckpointInfo.from_dict(cfg, f"run {run_id}")
    out: dict[str, Any] = {k: info.fusion[k] for k in ARCH_FIELDS if k in info.fusion}
    out["encoders"] = tuple(info.encoders)
    return out


def init_resolver(tracker: "Tracker", experiment: str | None = None):
    """The `resolve_init` hook of `recipes.resolve_config` for this tracker."""

    def resolve(spec: str) -> tuple[str, dict[str, Any]]:
        run_id = resolve_init_from(tracker, spec, experiment)
        return run_id, inherited_arch(tracker, run_id)

    return resolve


# -- helpers -------------------------------------------------------------------------------------------

def _device(config: TrainConfig) -> str:
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise SertoolError("--device cuda: no CUDA device is available")
    return config.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(device: str):
    """bf16 autocast on GPUs that have it (no loss scaling needed), else fp16 with a GradScaler."""
    import torch

    if device != "cuda":
        return nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def _frames_dtype():
    """float16 batches, the store's own dtype, on every device: half the bytes to build, to pass from
    loader workers, to pin and to copy. The model upcasts (exactly) where it computes."""
    import torch

    return torch.float16


def _seed_all(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _eval_lengths(reader: Any, split: SplitData, encoders: list[str]) -> list[int]:
    """Frames per clip of its longest encoder sequence, to batch evaluation by length (less padding)."""
    if len(split) == 0:
        return []
    return np.max([reader.index(e, "clean").locate(split.clip_ids)[1] for e in encoders], axis=0).tolist()


@dataclass
class _Ctx:
    """Everything an epoch needs, built once."""

    config: TrainConfig
    layout: StoreLayout
    data: TrainingData
    device: str
    dist: distributed.DistInfo
    reader: Any  # the store's EmbeddingReader, indexes loaded
    model: Any
    module: Any  # the unwrapped FusionModel
    loss: Any
    loss_cpu: Any  # the same loss on CPU, for dev/test figures from numpy predictions
    optimizer: Any
    scheduler: Any
    autocast: Any
    scaler: Any
    train_sampler: PlanSampler
    train_loader: Any
    eval_loaders: dict[str, Any]


def predict(ctx: _Ctx, split: SplitData) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, 8) and attributes (N, 3) of a split's clean frames, in split order."""
    import torch

    loader = ctx.eval_loaders.get(split.name)
    if loader is None:  # test splits are read once, at the end: no workers kept for them
        loader = _eval_loader(ctx.config, ctx.reader, ctx.data, split, ctx.device, persistent=False)
    probs = np.zeros((len(split), len(CLASSES)), dtype=np.float32)
    attrs = np.zeros((len(split), len(ATTRIBUTES)), dtype=np.float32)
    ctx.module.eval()
    with torch.no_grad():
        for batch in loader:
            idx = batch.index.numpy()
            b = batch.to(ctx.device)
            with ctx.autocast:
                out = ctx.module(b.inputs)
            probs[idx] = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
            attrs[idx] = out.attributes.float().cpu().numpy()
    return probs, attrs


def split_metrics(ctx: _Ctx, split: SplitData, probs: np.ndarray, attrs: np.ndarray) -> dict[str, float]:
    """Macro-F1, CCC per attribute and mean, and the loss, on the split's scored clips (labelled, not X)."""
    import torch

    from ..metrics import all_metrics

    keep = split.scored
    if not keep.any():
        return {}
    m = all_metrics(split.class_target[keep], probs[keep].argmax(axis=1), split.attrs[keep], attrs[keep])
    logits = torch.log(torch.from_numpy(probs[keep]).clamp_min(1e-12))
    with torch.no_grad():
        parts = ctx.loss_cpu(logits, torch.from_numpy(attrs[keep]),
                             torch.from_numpy(split.class_target[keep]), torch.from_numpy(split.attrs[keep]))
    m["loss"] = float(parts.total)
    return m


def _select_value(metrics: dict[str, float], select: str) -> float:
    from ..metrics import metric_name

    v = metrics.get(metric_name(select), math.nan)
    return -math.inf if math.isnan(v) else v


# -- the run -------------------------------------------------------------------------------------------

def train(
    config: TrainConfig,
    layout: StoreLayout,
    *,
    tracker: "Tracker | None" = None,
    parent_run_id: str | None = None,
    console: "Console | None" = None,
) -> TrainResult:
    """Train one model as `config` says on the store at `layout`, tracked as one MLflow run.

    `tracker`: where to log (default: MLFLOW_TRACKING_URI or the project's SQLite store, one
    experiment per store). `console`: show rich progress bars there (stderr).
    """
    import torch

    device = _device(config)
    dist = distributed.init(device)
    try:
        return _train(config, layout, device, dist, tracker, parent_run_id, console)
    finally:
        distributed.shutdown(dist)


def _build(config: TrainConfig, layout: StoreLayout, device: str, dist, init_weights: Path | None,
           init_info: CheckpointInfo | None) -> _Ctx:
    import torch

    from ..model.fusion import FusionConfig, FusionModel
    from ..model.losses import MultiTaskLoss, class_weights
    from .schedule import warmup_cosine

    with Catalog(layout.catalog, read_only=True) as catalog:
        data = load_training_data(catalog, config.encoders, config.splits)
        reader = open_reader(layout, data.encoders, [data.train] if config.augment else [], catalog=catalog)
    _seed_all(config.seed)
    fusion = FusionConfig(
        encoders={n: e.dim for n, e in data.encoders.items()}, proj_dim=config.proj_dim,
        lstm_hidden=config.lstm_hidden, lstm_layers=config.lstm_layers, pooling=config.pooling,
        pooled_norm=config.pooled_norm,
    )
    module = FusionModel(fusion)
    if init_info is not None and init_weights is not None:
        check_compatible(init_info, data.encoder_meta(), {k: getattr(config, k) for k in ARCH_FIELDS},
                         f"--init-from {config.init_from}")
        from safetensors.torch import load_file

        module.load_state_dict(load_file(str(init_weights), device="cpu"))
    module.to(device)
    model = module
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(module, device_ids=[dist.local_rank] if device == "cuda" else None)
    weights = None
    if config.beta > 0:
        if not any(data.class_counts):
            raise NotFound(f"no {data.train.name} clip has one of the 8 task classes: beta > 0 has nothing to learn")
        if config.class_weights:
            weights = class_weights(data.class_counts)
    loss_cpu = MultiTaskLoss(config.alpha, config.beta, class_weights=weights, gaussian_sigma=config.gaussian_sigma)
    loss = copy.deepcopy(loss_cpu).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = PlanSampler(lambda epoch: plan_epoch(
        data.train, samples_per_epoch=config.samples_per_epoch, batch_size=per_rank_batch(config.batch_size, dist.world),
        seed=config.seed, epoch=epoch, augment=config.augment, rank=dist.rank, world=dist.world,
    ))
    train_loader = make_loader(StoreBatches(reader, data.encoders, data.train, _frames_dtype()), sampler,
                               num_workers=config.num_workers, prefetch=config.prefetch,
                               pin_memory=device == "cuda", persistent=True)
    scheduler = warmup_cosine(optimizer, steps_per_epoch=len(sampler), epochs=config.epochs,
                              warmup_epochs=config.warmup_epochs, min_lr=config.min_lr)
    autocast, scaler = _autocast(device)
    eval_loaders = {}
    if dist.is_main:  # Development is read every epoch: its workers stay
        eval_loaders[data.dev.name] = _eval_loader(config, reader, data, data.dev, device, persistent=True)
    return _Ctx(config, layout, data, device, dist, reader, model, module, loss, loss_cpu, optimizer, scheduler,
                autocast, scaler, sampler, train_loader, eval_loaders)


def _eval_loader(config: TrainConfig, reader: Any, data: TrainingData, split: SplitData, device: str,
                 *, persistent: bool):
    """Batches of a split's clean frames, grouped by length (less padding); the same every epoch."""
    plan = plan_eval(split, config.batch_size, _eval_lengths(reader, split, list(data.encoders)))
    return make_loader(StoreBatches(reader, data.encoders, split, _frames_dtype()), PlanSampler(lambda _epoch: plan),
                       num_workers=min(config.num_workers, len(plan)), prefetch=config.prefetch,
                       pin_memory=device == "cuda", persistent=persistent)


def _train_epoch(ctx: _Ctx, epoch: int, progress, task) -> EpochStats:
    import torch

    c = ctx.config
    ctx.train_sampler.set_epoch(epoch)
    loader = ctx.train_loader
    if progress is not None:
        progress.reset(task, total=len(ctx.train_sampler), description=f"epoch {epoch}/{c.epochs}")
    ctx.model.train()
    sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # total, reg, class (x clips)
    n = 0
    wait = 0.0
    t0 = time.perf_counter()
    for batch, waited in iter_timed(loader):
        wait += waited
        b = batch.to(ctx.device)
        with ctx.autocast:
            out = ctx.model(b.inputs)
        parts = ctx.loss(out.logits, out.attributes, b.class_target, b.attrs)
        ctx.optimizer.zero_grad(set_to_none=True)
        if ctx.scaler is not None:
            ctx.scaler.scale(parts.total).backward()
            ctx.scaler.unscale_(ctx.optimizer)
        else:
            parts.total.backward()
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), c.grad_clip)
        if ctx.scaler is not None:
            ctx.scaler.step(ctx.optimizer)
            ctx.scaler.update()
        else:
            ctx.optimizer.step()
        ctx.scheduler.step()
        sums += torch.stack([parts.total.detach(), parts.regression.detach(), parts.classification.detach()]).double() * len(b)
        n += len(b)
        if progress is not None:
            progress.advance(task)
    seconds = time.perf_counter() - t0
    totals = distributed.all_reduce_sum(ctx.dist, [*sums.cpu().tolist(), float(n)])
    n_all = max(totals[3], 1.0)
    return EpochStats(
        epoch=epoch, loss=totals[0] / n_all, loss_reg=totals[1] / n_all, loss_class=totals[2] / n_all,
        lr=ctx.optimizer.param_groups[0]["lr"], samples=int(totals[3]), seconds=seconds, data_wait_s=wait,
    )


def _progress(console: "Console | None", enabled: bool):
    if console is None or not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False,
    )


class _Silent:
    """What ranks other than 0 log to: nothing (and without importing mlflow, which they never use)."""

    run_id = None

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _train(config: TrainConfig, layout: StoreLayout, device: str, dist, tracker, parent_run_id, console) -> TrainResult:
    import torch

    from ..tracking.names import INIT_FROM_TAG, SELECT_TAG, SPLITS_TAG, STAGE_TAG, STORE_TAG, encoder_tag

    if dist.is_main and tracker is None:
        from ..tracking.tracker import Tracker

        tracker = Tracker(experiment=config.experiment, store_root=layout.root)
    with tempfile.TemporaryDirectory(prefix="sertool-train-") as tmp:
        init_weights = init_info = None
        if config.init_from:
            if tracker is None:  # other ranks read the checkpoint too: the weights are needed everywhere
                from ..tracking.tracker import Tracker

                tracker = Tracker(experiment=config.experiment, store_root=layout.root)
            weights, cfg = tracker.load_checkpoint(config.init_from, Path(tmp) / "init")
            init_weights, init_info = weights, CheckpointInfo.from_dict(cfg, f"run {config.init_from}")
        ctx = _build(config, layout, device, dist, init_weights, init_info)
        data = ctx.data
        run: RunLogger
        if dist.is_main:
            run = tracker.start(
                "train", experiment=config.experiment, run_name=config.run_label, parent_run_id=parent_run_id,
                tags={
                    STAGE_TAG: config.stage, INIT_FROM_TAG: config.init_from,
                    STORE_TAG: layout.embeddings_url or str(layout.root.resolve()),
                    SPLITS_TAG: config.splits, SELECT_TAG: config.select,
                    **{encoder_tag(n): e.fingerprint for n, e in data.encoders.items()},
                },
            )
        else:
            run = _Silent()
        with run:
            run.log_config({**config.to_dict(), "device": device})
            run.log_params({
                "data.n_train": len(data.train), "data.n_dev": len(data.dev),
                "data.tests": ",".join(data.tests) or "none", "data.missing_frames": data.missing,
                "data.world_size": dist.world, "model.n_parameters": ctx.module.num_parameters(),
                "data.class_counts": data.class_counts,
            })
            result = _epochs(ctx, run, console)
            result.run_id = run.run_id
            if dist.is_main:
                _finish(ctx, run, result, Path(tmp))
            distributed.barrier(dist)
    return result


def _epochs(ctx: _Ctx, run: "RunLogger", console: "Console | None") -> TrainResult:
    import torch

    c, dist = ctx.config, ctx.dist
    history: list[EpochStats] = []
    best_value, best_epoch, best_metrics, best_state = -math.inf, 0, {}, None
    progress = _progress(console, dist.is_main)
    with progress if progress is not None else nullcontext():
        epochs_task = progress.add_task("epochs", total=c.epochs, info="") if progress else None
        steps_task = progress.add_task("steps", total=1, info="") if progress else None
        for epoch in range(1, c.epochs + 1):
            stats = _train_epoch(ctx, epoch, progress, steps_task)
            if dist.is_main:
                probs, attrs = predict(ctx, ctx.data.dev)
                stats.dev = split_metrics(ctx, ctx.data.dev, probs, attrs)
                run.log_metrics(stats.metrics(), step=epoch)
                value = _select_value(stats.dev, c.select)
                if value > best_value or best_state is None:
                    best_value, best_epoch, best_metrics = value, epoch, dict(stats.dev)
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in ctx.module.state_dict().items()}
                if progress is not None:
                    progress.update(epochs_task, advance=1, info=(
                        f"loss {stats.loss:.3f}  dev F1 {stats.dev.get('f1_macro', math.nan):.3f}  "
                        f"CCC {stats.dev.get('ccc_mean', math.nan):.3f}  best@{best_epoch}"))
            history.append(stats)
            distributed.barrier(dist)
    if best_state is not None:
        ctx.module.load_state_dict(best_state)
    return TrainResult(ctx.config, None, best_epoch, {k: v for k, v in best_metrics.items() if k != "loss"},
                       history, n_parameters=ctx.module.num_parameters(), n_train=len(ctx.data.train))


def _finish(ctx: _Ctx, run: "RunLogger", result: TrainResult, tmp: Path) -> None:
    """Log the selected checkpoint, every split's predictions and the plots (rank 0)."""
    from ..metrics import METRIC_NAMES
    from ..metrics import best as best_name
    from ..predictions import Predictions
    from .outputs import confusion_figure, metric_prefix, scatter_figure

    best = result.best
    final = {**{best_name(m): best.get(m) for m in METRIC_NAMES}, "best_epoch": float(result.best_epoch)}
    run.log_metrics(final, step=result.best_epoch)
    info = CheckpointInfo(
        fusion=ctx.module.config.to_dict(), encoders=ctx.data.encoder_meta(), classes=list(CLASSES),
        attributes=list(ATTRIBUTES), train=ctx.config.to_dict(), epoch=result.best_epoch,
        metrics={f"dev_{k}": v for k, v in best.items()},
    )
    weights = save_checkpoint(tmp / "checkpoint", ctx.module.state_dict(), info)
    run.log_checkpoint(weights, info.to_dict())
    for split in [ctx.data.dev, *ctx.data.tests.values()]:
        if len(split) == 0:
            continue
        probs, attrs = predict(ctx, split)
        run.log_predictions(split.name, Predictions(split.clip_ids, probs, attrs).to_frame())
        if split is not ctx.data.dev:
            m = {k: v for k, v in split_metrics(ctx, split, probs, attrs).items() if k != "loss"}
            if m:
                result.tests[split.name] = m
                run.log_metrics({f"{metric_prefix(split.name)}_{k}": v for k, v in m.items()}, step=result.best_epoch)
        tag = metric_prefix(split.name)
        fig = confusion_figure(split, probs)
        if fig is not None:
            run.log_figure(fig, f"plots/confusion_{tag}.png")
        fig = scatter_figure(split, attrs)
        if fig is not None:
            run.log_figure(fig, f"plots/scatter_{tag}.png")
