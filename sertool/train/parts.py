"""The typed parts of a training run, built once: where batches come from (`Feeds`) and the model with
everything that steps it (`Trainee`). The loop only uses them; resuming restores their state.

Building order matters for reproducibility: the data is read first, then the seed is set, then the
model is built (its initial weights are the seed's first draws), so the same seed gives the same model.
Loaders draw their worker seeds from generators of their own, never from the global RNG, so whether
and when workers start cannot change what the model computes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NotFound, SertoolError
from ..store.catalog import Catalog
from ..store.layout import StoreLayout
from .batches import PlanSampler, StoreBatches, make_loader, open_reader, per_rank_batch, plan_epoch, plan_eval
from .checkpoint import CheckpointInfo, check_compatible, read_weights
from .config import TrainConfig
from .data import SplitData, TrainingData, load_training_data
from .distributed import DistInfo
from .lineage import as_refs, run_datasets

if TYPE_CHECKING:
    import torch

    from ..model.fusion import FusionModel
    from ..model.losses import MultiTaskLoss
    from ..store.reader import EmbeddingReader
    from ..tracking.records import DatasetRef
    from .resident import ResidentFrames
    from .targets import TargetMaker

ARCH_FIELDS = ("proj_dim", "lstm_hidden", "lstm_layers", "pooling", "pooled_norm")
"""The config fields that shape the model: a fine-tune must match its checkpoint on these."""


@dataclass(frozen=True)
class InitCheckpoint:
    """A logged checkpoint a fine-tune starts from (downloaded by the caller)."""

    weights: Path
    info: CheckpointInfo
    source: str
    """How messages name it (`--init-from RUN`)."""


def resolve_device(config: TrainConfig) -> str:
    """The asked device if it runs here (the same one-line refusal as embed and predict), else the best one."""
    import torch

    from ..model.device import check_device

    if config.device:
        return check_device(config.device)
    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _generator(seed: int) -> "torch.Generator":
    import torch

    return torch.Generator().manual_seed(seed)


FRAMES_DTYPE = "float16"
"""Batches carry the store's own dtype on every device: half the bytes to build, to pass from loader
workers, to pin and to copy. The model upcasts (exactly) where it computes."""


@dataclass
class Feeds:
    """Where a run's batches come from: the catalog's view of the data and the loaders over the store."""

    config: TrainConfig
    data: TrainingData
    reader: "EmbeddingReader"
    device: str
    sampler: PlanSampler
    """The training sample: `set_epoch(e)` plans epoch e from (seed, e) alone."""
    targets: "TargetMaker | None"
    """The levers' training targets (soft, dropout, vote means, auxiliary heads); None: the consensus."""
    workers: int
    """Loader worker processes (`TrainConfig.num_workers`, or the device's default)."""
    train_loader: Any
    dev_loader: Any | None
    """Development is read every epoch (rank 0 only): its workers stay."""
    resident: "ResidentFrames | None" = None
    """The packed view the batches are built from (`--view`), or None: the store loader."""
    datasets: list["DatasetRef"] = field(default_factory=list)
    """What the run trains and is evaluated on, as the MLflow datasets it logs (`train.lineage`)."""

    def eval_loader(self, split: SplitData, *, persistent: bool = False):
        """Batches of a split's clean frames, grouped by length (less padding); the same every epoch."""
        import torch

        if split is self.data.dev and self.dev_loader is not None:
            return self.dev_loader
        if self.resident is not None and self.resident.has(split.clip_ids):
            from .resident import ResidentLoader, eval_plan

            text = {n: e.text for n, e in self.data.encoders.items()}
            return ResidentLoader(self.resident, split, eval_plan(split, self.config.batch_size), text)
        lengths = _eval_lengths(self.reader, split, self.data)
        plan = plan_eval(split, self.config.batch_size, lengths)
        return make_loader(StoreBatches(self.reader, self.data.encoders, split, getattr(torch, FRAMES_DTYPE)),
                           PlanSampler(lambda _epoch: plan), num_workers=min(self.workers, len(plan)),
                           prefetch=self.config.prefetch, pin_memory=self.device == "cuda", persistent=persistent,
                           generator=_generator(self.config.seed))


def _eval_lengths(reader: "EmbeddingReader", split: SplitData, data: TrainingData) -> list[int]:
    """Frames per clip of its longest encoder sequence, to batch evaluation by length (less padding)."""
    if len(split) == 0:
        return []
    return np.max([reader.index(n, split.text_variant if e.text else "clean").locate(split.clip_ids)[1]
                   for n, e in data.encoders.items()], axis=0).tolist()


def _resident(config: TrainConfig, layout: StoreLayout, data: TrainingData, device: str) -> "ResidentFrames":
    """The run's packed view in memory, checked first: fresh, holding every training clip, and fitting."""
    from ..store.views import open_view
    from .resident import ResidentFrames, check_fits

    with Catalog(layout.catalog, read_only=True) as catalog:
        info = open_view(catalog, layout, config.view)
    where = config.resident or device
    check_fits(info, where, config.resident_budget_gb)
    in_view = set(info.clips)
    lacking = [c for c in data.train.clip_ids if c not in in_view]
    if lacking:
        raise SertoolError(f"view {config.view!r} lacks {len(lacking)} of this run's training clips (e.g. "
                           f"{lacking[0]}): it was packed for other splits or clips; pack it again with --replace")
    keep = {k.split("/")[1] for k in info.arrays}  # the sample draws only the variants the view holds
    data.train.variants = [tuple(v for v in vs if v in keep) for vs in data.train.variants]
    return ResidentFrames(info, list(data.encoders), where, pin=where == "cpu" and device == "cuda")


def loader_workers(config: TrainConfig, device: str, world: int) -> int:
    """Worker processes per rank: as set, else 2 on CPU (the step itself needs the cores) and, on CUDA,
    the rank's share of the cores up to 8 (a GPU step is fast: reading must keep up)."""
    import os

    if config.num_workers is not None:
        return config.num_workers
    if device != "cuda":
        return 2
    return max(2, min(8, (os.cpu_count() or 2) // max(world, 1) - 1))


def _storage_order(reader: "EmbeddingReader", data: TrainingData) -> np.ndarray:
    """Each training clip's position in the store (its first audio encoder's clean rows): what the
    blocked read order keeps together."""
    audio = [n for n, e in data.encoders.items() if not e.text] or list(data.encoders)
    return np.asarray(reader.index(audio[0], "clean").locate(data.train.clip_ids)[0])


def target_maker(catalog: Catalog, config: TrainConfig, train: SplitData) -> "TargetMaker | None":
    """The training split's lever targets, reading the votes and genders they need (None for a paper run)."""
    from ..store.clips import clip_genders, clip_votes
    from .targets import Levers, TargetMaker, VoteArrays

    levers = Levers(config.targets, config.o_votes, config.label_smoothing, config.annotator_dropout,
                    config.attribute_targets, config.aux_weights, config.seed)
    if not levers.active:
        return None
    votes = VoteArrays.build(train.clip_ids, clip_votes(catalog, train.clip_ids)) if levers.needs_votes else None
    genders = None
    if "gender" in levers.aux:
        known = clip_genders(catalog, train.clip_ids)
        genders = [known.get(c) for c in train.clip_ids]
    return TargetMaker(train, levers, votes, genders)


def epoch_steps(config: TrainConfig, train: SplitData, world: int) -> list[int]:
    """Optimizer steps of each epoch (a balanced sampler changes them from its first epoch on): the
    schedule spans exactly the steps the run takes."""
    from .batches import epoch_indices, n_batches

    per_rank = per_rank_batch(config.batch_size, world)
    spec = config.sampler_spec
    sizes: dict[bool, int] = {}
    out = []
    for e in range(1, config.epochs + 1):
        balanced = spec[0] == "balanced" and e >= spec[1]
        if balanced not in sizes:  # every balanced epoch has the same size: computed once
            n = len(epoch_indices(train, samples_per_epoch=config.samples_per_epoch, seed=config.seed, epoch=e,
                                  sampler=spec))
            sizes[balanced] = n_batches(-(-n // world), per_rank)
        out.append(sizes[balanced])
    return out


def build_feeds(config: TrainConfig, layout: StoreLayout, device: str, dist: DistInfo, *,
                refit: bool = False) -> Feeds:
    import torch

    with Catalog(layout.catalog, read_only=True) as catalog:
        data = load_training_data(catalog, config.encoders, config.splits, o_clips=config.o_clips,
                                  x_clips=config.x_clips, soft=config.targets == "soft", refit=refit,
                                  text=config.text_plan)
        reader = open_reader(layout, data.encoders, [data.train] if config.augment else [], catalog=catalog,
                             texts={s.text_variant for s in [data.train, data.dev, *data.tests.values()]})
        targets = target_maker(catalog, config, data.train)
        datasets = as_refs(layout, run_datasets(catalog, config, refit=refit))
    spec = config.sampler_spec
    lengths = _eval_lengths(reader, data.train, data) if config.batching == "bucketed" else None
    storage = _storage_order(reader, data) if config.read_order == "blocked" else None
    sampler = PlanSampler(lambda epoch: plan_epoch(
        data.train, samples_per_epoch=config.samples_per_epoch, batch_size=per_rank_batch(config.batch_size, dist.world),
        seed=config.seed, epoch=epoch, augment=config.augment, rank=dist.rank, world=dist.world, sampler=spec,
        batching=config.batching, read_order=config.read_order,
        lengths=None if lengths is None else np.asarray(lengths), storage=storage,
    ))
    workers = loader_workers(config, device, dist.world)
    resident = _resident(config, layout, data, device) if config.view else None
    if resident is not None:
        from .resident import ResidentLoader

        workers = 0
        train_loader = ResidentLoader(resident, data.train, sampler, {n: e.text for n, e in data.encoders.items()},
                                      targets)
    else:
        train_loader = make_loader(StoreBatches(reader, data.encoders, data.train, getattr(torch, FRAMES_DTYPE), targets),
                                   sampler, num_workers=workers, prefetch=config.prefetch,
                                   pin_memory=device == "cuda", persistent=True, generator=_generator(config.seed))
    feeds = Feeds(config, data, reader, device, sampler, targets, workers, train_loader, None, resident, datasets)
    if dist.is_main:
        feeds.dev_loader = feeds.eval_loader(data.dev, persistent=True)
    return feeds


@dataclass
class Trainee:
    """The model under training and everything that steps it."""

    module: "FusionModel"
    """The model itself (what checkpoints save)."""
    model: Any
    """What the loop calls: the module, DDP-wrapped under torchrun."""
    loss: "MultiTaskLoss"
    loss_cpu: "MultiTaskLoss"
    """The same loss on CPU, for dev/test figures from numpy predictions."""
    optimizer: Any
    scheduler: Any
    autocast: Any
    scaler: Any

    def weights(self) -> dict[str, Any]:
        """A CPU copy of the model's weights (the best epoch's are kept this way)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}

    def state(self) -> dict[str, Any]:
        """Everything that moves during training, as tensors and plain values (see `train.resume`)."""
        return {
            "model": self.weights(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])


def build_trainee(config: TrainConfig, feeds: Feeds, device: str, dist: DistInfo,
                  init: InitCheckpoint | None = None) -> Trainee:
    import torch

    from ..labels import AUX_TASKS
    from ..model.fusion import FusionConfig, FusionModel
    from ..model.losses import MultiTaskLoss, class_weights
    from ..model.precision import autocast
    from .schedule import warmup_cosine

    data = feeds.data
    seed_everything(config.seed)
    fusion = FusionConfig(
        encoders={n: e.dim for n, e in data.encoders.items()}, proj_dim=config.proj_dim,
        lstm_hidden=config.lstm_hidden, lstm_layers=config.lstm_layers, pooling=config.pooling,
        pooled_norm=config.pooled_norm, dropout=config.dropout, aux={k: AUX_TASKS[k] for k in config.aux_weights},
    )
    module = FusionModel(fusion)
    if init is not None:
        check_compatible(init.info, data.encoder_meta(), {k: getattr(config, k) for k in ARCH_FIELDS}, init.source)
        # auxiliary heads are the run's own: a fine-tune keeps those it shares with its checkpoint
        own = {k for k in module.state_dict() if k.startswith("aux_heads.")}
        loaded = {k: v for k, v in read_weights(init.weights).items() if not k.startswith("aux_heads.") or k in own}
        missing, _ = module.load_state_dict(loaded, strict=False)
        if [k for k in missing if not k.startswith("aux_heads.")]:
            module.load_state_dict(loaded)  # raises, naming what the checkpoint lacks
    module.to(device)
    model = module
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(module, device_ids=[dist.local_rank] if device == "cuda" else None)
    weights = None
    counts = feeds.targets.class_mass() if feeds.targets is not None else data.class_counts
    if config.beta > 0:
        if not any(counts):
            raise NotFound(f"no {data.train.name} clip has one of the 8 task classes: beta > 0 has nothing to learn")
        if config.class_weights:
            weights = class_weights(counts, config.class_weight_power)
    loss_cpu = MultiTaskLoss(config.alpha, config.beta, class_weights=weights, gaussian_sigma=config.gaussian_sigma,
                             soft_loss=config.soft_loss, aux_weights=config.aux_weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = warmup_cosine(optimizer, steps_per_epoch=epoch_steps(config, data.train, dist.world),
                              epochs=config.epochs, warmup_epochs=config.warmup_epochs, min_lr=config.min_lr)
    context, scaler = autocast(device, training=True, precision=config.precision)
    if config.compile:
        model = torch.compile(model)
    return Trainee(module, model, copy.deepcopy(loss_cpu).to(device), loss_cpu, optimizer, scheduler, context, scaler)
