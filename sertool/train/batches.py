"""Batches of frames for training and evaluation: each epoch's sample, and the loaders that read it.

Each epoch's sample is planned in the main process from (seed, epoch) alone, so every DDP rank plans the
same sample and takes its own share of it, and a run with the same seed reads the same clips. Worker
processes then only read frames through the store's batch reader, which was built and benchmarked for
this access pattern.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..store.records import StoredEncoder
from .data import SplitData

if TYPE_CHECKING:
    import torch

    from ..store.layout import StoreLayout
    from ..store.catalog import Catalog
    from .targets import TargetMaker

CLEAN = "clean"


# -- sampling ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One clip of a batch and the variant whose frames to read."""

    index: int
    variant: str
    epoch: int = 0
    """The training epoch that drew it (targets that change per epoch, annotator dropout, read it)."""


def epoch_sample(n: int, samples_per_epoch: int, seed: int, epoch: int) -> np.ndarray:
    """The clip indices of one epoch: a random `samples_per_epoch` of `n` (all of them, shuffled, if fewer).

    Depends on (seed, epoch) only, so every rank computes the same sample.
    """
    rng = np.random.default_rng([seed, epoch, 0])
    if samples_per_epoch >= n:
        return rng.permutation(n)
    return rng.choice(n, size=samples_per_epoch, replace=False)


def balanced_sample(split: SplitData, samples_per_epoch: int, seed: int, epoch: int, xo_share: float) -> np.ndarray:
    """One epoch's undersample (MEDUSA's, the Task 1 winner's): every class present in the split cut to
    the rarest one's count, plus X/O clips making `xo_share` of the sample; capped at
    `samples_per_epoch`. Fresh each epoch, from (seed, epoch) alone, so every rank draws the same one."""
    rng = np.random.default_rng([seed, epoch, 2])
    target = split.class_target
    pools = [np.flatnonzero(target == c) for c in range(int(target.max(initial=-1)) + 1)]
    pools = [p for p in pools if len(p)]
    xo = np.flatnonzero(target < 0)
    if not pools:
        return rng.permutation(len(split))[:samples_per_epoch]
    m = min(len(p) for p in pools)
    parts = [rng.choice(p, m, replace=False) for p in pools]
    n_xo = min(len(xo), int(round(xo_share / (1 - xo_share) * m * len(pools))))
    if n_xo:
        parts.append(rng.choice(xo, n_xo, replace=False))
    return rng.permutation(np.concatenate(parts))[:samples_per_epoch]


def epoch_indices(split: SplitData, *, samples_per_epoch: int, seed: int, epoch: int,
                  sampler: tuple[str, int, float] = ("natural", 1, 0.0)) -> np.ndarray:
    """The clips (split positions) of one epoch under the run's sampler (`TrainConfig.sampler_spec`)."""
    kind, start, share = sampler
    if kind == "balanced" and epoch >= start:
        return balanced_sample(split, samples_per_epoch, seed, epoch, share)
    return epoch_sample(len(split), samples_per_epoch, seed, epoch)


def n_batches(n_items: int, batch_size: int) -> int:
    """Batches `plan_epoch` makes of `n_items` (a last batch of one joins the one before)."""
    k = math.ceil(n_items / batch_size)
    return k - 1 if k > 1 and n_items % batch_size == 1 else k


def rank_share(indices: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's share of an epoch's sample (DistributedSampler's rule: pad by wrapping, then stride)."""
    if world <= 1:
        return indices
    total = math.ceil(len(indices) / world) * world
    padded = np.concatenate([indices, indices[: total - len(indices)]]) if total > len(indices) else indices
    return padded[rank::world]


BUCKET_POOL = 50
"""Bucketed batching sorts by length within pools of this many batches of the epoch's sample: batches of
similar lengths, still a fresh mix every epoch."""
RUNS_PER_BATCH = 4
"""Blocked read order: each batch is this many runs of clips that lie next to each other in the store."""


def plan_epoch(
    split: SplitData,
    *,
    samples_per_epoch: int,
    batch_size: int,
    seed: int,
    epoch: int,
    augment: bool,
    rank: int = 0,
    world: int = 1,
    sampler: tuple[str, int, float] = ("natural", 1, 0.0),
    batching: str = "random",
    read_order: str = "random",
    lengths: np.ndarray | None = None,
    storage: np.ndarray | None = None,
) -> list[list[Item]]:
    """This rank's batches of one epoch; each clip draws `clean` or one of its variants when augmenting.

    `batching="bucketed"` groups clips of similar `lengths` (frames per clip) into batches and
    `read_order="blocked"` builds each batch from a few runs of clips neighbouring in the store
    (`storage`: each clip's position there); both only regroup the same epoch sample (the same clips,
    the same variants) and then shuffle the batches' order, seeded by (seed, epoch).
    """
    idx = rank_share(epoch_indices(split, samples_per_epoch=samples_per_epoch, seed=seed, epoch=epoch,
                                   sampler=sampler), rank, world)
    rng = np.random.default_rng([seed, epoch, 1])
    draws = rng.random(len(idx))  # one draw per sampled clip, the same whatever the variants are
    items = []
    for i, u in zip(idx.tolist(), draws.tolist()):
        options = (CLEAN, *split.variants[i]) if augment and split.variants else (CLEAN,)
        items.append(Item(i, options[min(int(u * len(options)), len(options) - 1)], epoch))
    if batching == "bucketed" and lengths is not None:
        batches = _bucketed(items, batch_size, lengths, np.random.default_rng([seed, epoch, 4]))
    elif read_order == "blocked" and storage is not None:
        batches = _blocked(items, batch_size, storage, np.random.default_rng([seed, epoch, 5]))
    else:
        batches = [items[k : k + batch_size] for k in range(0, len(items), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())  # a batch of one has no across-clip statistics (pooled_norm)
    return batches


def _bucketed(items: list[Item], batch_size: int, lengths: np.ndarray, rng: np.random.Generator) -> list[list[Item]]:
    """Sort each pool of `BUCKET_POOL` batches by length, cut it into batches, shuffle all batches."""
    pool = batch_size * BUCKET_POOL
    batches: list[list[Item]] = []
    for k in range(0, len(items), pool):
        chunk = sorted(items[k : k + pool], key=lambda it: int(lengths[it.index]))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:  # before the shuffle: no batch of one anywhere
        batches[-2].extend(batches.pop())
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _blocked(items: list[Item], batch_size: int, storage: np.ndarray, rng: np.random.Generator) -> list[list[Item]]:
    """Runs of store-neighbouring clips (a random phase each epoch), shuffled, `RUNS_PER_BATCH` per batch."""
    ordered = sorted(items, key=lambda it: int(storage[it.index]))
    run = max(1, batch_size // RUNS_PER_BATCH)
    phase = int(rng.integers(run)) if run > 1 else 0
    cuts = [0, *range(phase or run, len(ordered), run), len(ordered)]
    runs = [ordered[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
    flat = [it for i in rng.permutation(len(runs)) for it in runs[i]]
    return [flat[k : k + batch_size] for k in range(0, len(flat), batch_size)]


def plan_eval(split: SplitData, batch_size: int, lengths: Sequence[int] | None = None) -> list[list[Item]]:
    """Clean frames of every clip, in batches of similar length when `lengths` is given (less padding)."""
    order = np.argsort(np.asarray(lengths), kind="stable") if lengths is not None else np.arange(len(split))
    items = [Item(int(i), CLEAN) for i in order]
    return [items[k : k + batch_size] for k in range(0, len(items), batch_size)]


def per_rank_batch(batch_size: int, world: int) -> int:
    """Each rank's share of the global batch (DDP averages gradients, so the step sees `batch_size` clips)."""
    return max(1, math.ceil(batch_size / world))


# -- reading frames --------------------------------------------------------------------------------------

@dataclass
class Batch:
    """Model inputs and targets of one batch (what the DataLoader yields)."""

    inputs: dict[str, tuple["torch.Tensor", "torch.Tensor"]]
    """Encoder -> (frames (B, T, D) float16 as stored (the model upcasts), lengths (B,) int64)."""
    class_target: "torch.Tensor"  # (B,) int64
    attrs: "torch.Tensor"  # (B, 3) float32
    index: "torch.Tensor"  # (B,) int64: positions in the split
    class_dist: "torch.Tensor | None" = None
    """(B, 8) soft or smoothed class targets (the levers); None: `class_target` is the target."""
    aux: "dict[str, torch.Tensor]" = field(default_factory=dict)
    """Auxiliary heads' targets (`train.targets`)."""

    def _map(self, f: Callable[["torch.Tensor"], "torch.Tensor"]) -> "Batch":
        return Batch(
            {k: (f(x), f(n)) for k, (x, n) in self.inputs.items()}, f(self.class_target), f(self.attrs),
            self.index, None if self.class_dist is None else f(self.class_dist), {k: f(v) for k, v in self.aux.items()},
        )

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader's pin-memory thread on cuda."""
        return self._map(lambda t: t.pin_memory())

    def to(self, device: Any, non_blocking: bool = True) -> "Batch":
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def __len__(self) -> int:
        return int(self.index.shape[0])


class StoreBatches:
    """A map-style dataset over one split whose fetches are whole batches of `Item`s.

    The DataLoader's batch sampler (`PlanSampler`, in the main process) sends each batch's items to a
    worker, which reads them with one call of the store's batch reader (`__getitems__`). The reader's
    indexes are loaded once in the main process and pickled to the workers without open files.
    """

    def __init__(self, reader: Any, encoders: dict[str, StoredEncoder], split: SplitData,
                 dtype: "torch.dtype | None" = None, targets: "TargetMaker | None" = None) -> None:
        self.reader = reader
        self.encoders = encoders
        self.split = split
        self.dtype = dtype
        self.targets = targets
        """The levers' targets of a training split (None: the consensus targets)."""

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item: Item) -> Batch:
        return self.__getitems__([item])

    def __getitems__(self, items: Sequence[Item]) -> Batch:
        ids = [self.split.clip_ids[it.index] for it in items]
        variants = [it.variant for it in items]
        return assemble(self.split, self.targets, items, read_frames(self.reader, ids, variants, self.encoders,
                                                                     self.dtype, self.split.text_variant))


def assemble(split: SplitData, targets: "TargetMaker | None", items: Sequence[Item],
             inputs: dict[str, tuple["torch.Tensor", "torch.Tensor"]]) -> Batch:
    """A batch of `items` around its model inputs: the consensus targets, or the levers' (`targets`)."""
    import torch

    index = np.array([it.index for it in items], dtype=np.int64)
    attrs, dist, aux = split.attrs[index], None, {}
    if targets is not None:
        t = targets.batch(index, items[0].epoch if items else 0)
        attrs = attrs if t.attrs is None else t.attrs
        dist = None if t.class_dist is None else torch.from_numpy(t.class_dist)
        aux = {k: torch.from_numpy(v) for k, v in t.aux.items()}
    return Batch(inputs, torch.from_numpy(split.class_target[index]), torch.from_numpy(np.ascontiguousarray(attrs)),
                 torch.from_numpy(index), dist, aux)


class PlanSampler:
    """Batch sampler yielding an epoch's planned batches; `set_epoch` picks the epoch (like
    DistributedSampler), so one DataLoader with persistent workers serves every epoch."""

    def __init__(self, plan: Callable[[int], list[list[Item]]]) -> None:
        self._plan_fn = plan
        self._plan: list[list[Item]] = plan(1)

    def set_epoch(self, epoch: int) -> None:
        self._plan = self._plan_fn(epoch)

    def __iter__(self) -> Iterator[list[Item]]:
        return iter(self._plan)

    def __len__(self) -> int:
        return len(self._plan)


def open_reader(layout: "StoreLayout", encoders: dict[str, StoredEncoder], splits: Sequence[SplitData],
                catalog: "Catalog | None" = None, texts: "set[str] | frozenset[str]" = frozenset()):
    """The store's batch reader with the index of every (encoder, variant) these splits can ask for, and
    of the text encoders' `texts` variants (the text choices of the splits a run reads)."""
    from ..store.embeddings import EmbeddingStore

    variants = {CLEAN} | {v for s in splits for vs in s.variants for v in vs}
    texts = ({s.text_variant for s in splits} | set(texts)) or {CLEAN}
    specs = [(e, v) for e, info in encoders.items() for v in sorted(texts if info.text else variants)]
    return EmbeddingStore(layout).reader(specs, catalog=catalog)


def read_frames(
    reader: Any, clip_ids: Sequence[str], variants: Sequence[str], encoders: dict[str, StoredEncoder],
    dtype: "torch.dtype | None" = None, text_variant: str = CLEAN,
) -> dict[str, tuple["torch.Tensor", "torch.Tensor"]]:
    """Padded frames (B, T, D) and lengths (B,) of each encoder, each clip in its own variant
    (text encoders read the split's text choice, `text_variant`: an augmented clip keeps its transcript).
    `dtype` float16 halves the bytes a batch costs to build, pin and copy to the GPU (the model upcasts)."""
    same = len(set(variants)) <= 1
    specs = []
    for e, info in encoders.items():
        if info.text:
            specs.append((e, text_variant))
        else:
            specs.append((e, variants[0] if same and variants else list(variants)))
    return reader.batch(list(clip_ids), specs=specs, dtype=dtype)


def make_loader(dataset: StoreBatches, sampler: PlanSampler, *, num_workers: int, prefetch: int,
                pin_memory: bool, persistent: bool = False, generator: "torch.Generator | None" = None):
    """A DataLoader over planned batches: worker processes read ahead while the model trains.

    `generator` seeds the workers; with one of its own, creating an iterator never draws from the global
    RNG (which the model's dropout uses), so a resumed run computes what an uninterrupted one does.
    """
    from torch.utils.data import DataLoader

    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=persistent,
                      multiprocessing_context=_mp_context())
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      collate_fn=_identity, generator=generator, **kwargs)


def _identity(x: Batch) -> Batch:
    return x


def _mp_context() -> str:
    """fork is fastest where it is safe (Linux); elsewhere spawn."""
    import multiprocessing as mp

    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def iter_timed(loader) -> Iterator[tuple[Batch, float]]:
    """Yield (batch, seconds spent waiting for it): the data loader's share of the step time."""
    import time

    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        yield batch, time.perf_counter() - t0

