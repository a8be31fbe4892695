"""Training data from the feature store: which clips, their targets, and batches of their frames.

Everything the catalog knows (splits, labels, which augmented variants each clip has) is read once,
up front, in the main process (`load_training_data`); the DataLoader's workers then only read frames,
through the store's batch reader, which was built and benchmarked for this access pattern. Each
epoch's sample is planned in the main process from (seed, epoch) alone, so every DDP rank plans the
same sample and takes its own shard of it, and a run with the same seed reads the same clips.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NotFound
from ..model.labels import ATTRIBUTES, CLASSES, EXCLUDED, IGNORE_INDEX
from ..store.catalog import Catalog
from ..store.splits import DEV, TRAIN, scheme_exists, split_sql

if TYPE_CHECKING:
    import torch

    from ..store.layout import StoreLayout

    from ..store.layout import StoreLayout

CLEAN = "clean"


@dataclass
class EncoderInfo:
    """What training needs to know of one encoder in the store."""

    name: str
    dim: int
    fingerprint: str
    text: bool
    """Text encoders (one frame per token) have only the clean variant: augmented clips keep the clean transcript."""


@dataclass
class SplitData:
    """One split's clips with their targets, in a fixed order (sorted by clip id)."""

    name: str
    clip_ids: list[str]
    emotion: list[str | None]
    """Consensus code per clip (None = unlabelled, e.g. the challenge's Test3)."""
    class_target: np.ndarray  # (N,) int64: 0..7, IGNORE_INDEX for O / X / unlabelled
    attrs: np.ndarray  # (N, 3) float32, NaN where unlabelled
    variants: list[tuple[str, ...]] = field(default_factory=list)
    """Augmented variants each clip has for every audio encoder (empty tuple: clean only)."""

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def scored(self) -> np.ndarray:
        """Clips that count in dev/test metrics: labelled and not X (no agreement)."""
        return np.array([e is not None and e != EXCLUDED for e in self.emotion], dtype=bool)

    def subset(self, keep: np.ndarray) -> "SplitData":
        idx = np.flatnonzero(keep)
        return SplitData(
            self.name, [self.clip_ids[i] for i in idx], [self.emotion[i] for i in idx],
            self.class_target[idx], self.attrs[idx], [self.variants[i] for i in idx] if self.variants else [],
        )


@dataclass
class TrainingData:
    """Everything the loop needs from the catalog, loaded once."""

    encoders: dict[str, EncoderInfo]
    """In the model's input order."""
    train: SplitData
    dev: SplitData
    tests: dict[str, SplitData]
    """Every split other than Train and Development (labelled or not), by name."""
    missing: int = 0
    """Clips of the scheme left out because some encoder has no clean frames for them."""

    @property
    def class_counts(self) -> list[int]:
        """Training clips per task class (CLASSES order), for the class weights."""
        t = self.train.class_target
        return [int((t == i).sum()) for i in range(len(CLASSES))]

    def encoder_meta(self) -> dict[str, dict[str, Any]]:
        return {n: {"dim": e.dim, "fingerprint": e.fingerprint} for n, e in self.encoders.items()}


def _targets(emotion: str | None) -> int:
    if emotion in CLASSES:
        return CLASSES.index(emotion)
    return IGNORE_INDEX  # O trains regression only; X / unlabelled never reach the classifier


def load_encoders(catalog: Catalog, names: Sequence[str]) -> dict[str, EncoderInfo]:
    rows = catalog.execute("SELECT name, dim, fingerprint, frame_rate, kind FROM encoders")
    known = {r[0]: r for r in rows}
    missing = [n for n in names if n not in known]
    if missing:
        have = ", ".join(sorted(known)) or "none (run `sertool embed` first)"
        raise NotFound(f"encoder(s) {', '.join(missing)} not in the store (it has: {have})")
    out: dict[str, EncoderInfo] = {}
    for n in names:
        _, dim, fp, rate, kind = known[n]
        out[n] = EncoderInfo(n, int(dim), str(fp), text=rate is None or kind == "roberta")
    return out


def load_training_data(catalog: Catalog, encoders: Sequence[str], scheme: str = "corpus") -> TrainingData:
    """Clips of every split of `scheme` that have clean frames for all `encoders`, with targets and variants.

    Train keeps only clips with a label that is not X; Development and the test splits keep every clip
    (predictions are written for all of them) and mark which ones count in the metrics.
    """
    if not scheme_exists(catalog, scheme):
        raise NotFound(f"no split scheme {scheme!r} in the catalog (see `sertool store info`)")
    infos = load_encoders(catalog, encoders)
    names = list(encoders)
    ph = ", ".join("?" for _ in names)
    rows = catalog.execute(
        f"""
        WITH s AS ({split_sql(scheme)}),
        complete AS (
            SELECT clip_id FROM embeddings WHERE variant = 'clean' AND encoder IN ({ph})
            GROUP BY clip_id HAVING count(DISTINCT encoder) = {len(names)}
        )
        SELECT s.clip_id, s.split, l.emotion, l.arousal, l.valence, l.dominance, f.clip_id IS NOT NULL
        FROM s LEFT JOIN labels l USING (clip_id) LEFT JOIN complete f USING (clip_id)
        ORDER BY s.split, s.clip_id
        """,
        names,
    )
    # A variant is usable for a clip when every encoder that stores that variant at all has it for the clip.
    var_rows = catalog.execute(
        f"""
        WITH e AS (SELECT clip_id, encoder, variant FROM embeddings WHERE variant <> 'clean' AND encoder IN ({ph})),
        need AS (SELECT variant, count(DISTINCT encoder) AS n FROM e GROUP BY variant),
        have AS (SELECT clip_id, variant, count(DISTINCT encoder) AS n FROM e GROUP BY clip_id, variant)
        SELECT have.clip_id, have.variant FROM have JOIN need USING (variant) WHERE have.n = need.n
        ORDER BY have.clip_id, have.variant
        """,
        names,
    )
    variants: dict[str, list[str]] = {}
    for clip_id, variant in var_rows:
        variants.setdefault(clip_id, []).append(variant)

    by_split: dict[str, list[tuple]] = {}
    missing = 0
    for clip_id, split, emotion, a, v, d, has_frames in rows:
        if not has_frames:
            missing += 1
            continue
        by_split.setdefault(split, []).append((clip_id, emotion, a, v, d))

    def make(name: str, items: list[tuple]) -> SplitData:
        attrs = np.array(
            [[np.nan if x is None else x for x in it[2:5]] for it in items], dtype=np.float32
        ).reshape(-1, len(ATTRIBUTES))
        return SplitData(
            name, [it[0] for it in items], [it[1] for it in items],
            np.array([_targets(it[1]) for it in items], dtype=np.int64), attrs,
            [tuple(variants.get(it[0], ())) for it in items],
        )

    train_items = [it for it in by_split.pop(TRAIN, []) if it[1] is not None and it[1] != EXCLUDED]
    train = make(TRAIN, train_items)
    dev = make(DEV, by_split.pop(DEV, []))
    tests = {name: make(name, items) for name, items in sorted(by_split.items())}
    if len(train) == 0:
        raise NotFound(f"split scheme {scheme!r} has no labelled {TRAIN} clip with frames of {', '.join(names)}")
    if not dev.scored.any():
        raise NotFound(f"split scheme {scheme!r} has no labelled {DEV} clip with frames of {', '.join(names)}")
    return TrainingData(infos, train, dev, tests, missing)


# -- sampling ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One clip of a batch and the variant whose frames to read."""

    index: int
    variant: str


def epoch_sample(n: int, samples_per_epoch: int, seed: int, epoch: int) -> np.ndarray:
    """The clip indices of one epoch: a random `samples_per_epoch` of `n` (all of them, shuffled, if fewer).

    Depends on (seed, epoch) only, so every rank computes the same sample.
    """
    rng = np.random.default_rng([seed, epoch, 0])
    if samples_per_epoch >= n:
        return rng.permutation(n)
    return rng.choice(n, size=samples_per_epoch, replace=False)


def shard(indices: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's share of an epoch's sample (DistributedSampler's rule: pad by wrapping, then stride)."""
    if world <= 1:
        return indices
    total = math.ceil(len(indices) / world) * world
    padded = np.concatenate([indices, indices[: total - len(indices)]]) if total > len(indices) else indices
    return padded[rank::world]


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
) -> list[list[Item]]:
    """This rank's batches of one epoch; each clip draws `clean` or one of its variants when augmenting."""
    idx = shard(epoch_sample(len(split), samples_per_epoch, seed, epoch), rank, world)
    rng = np.random.default_rng([seed, epoch, 1])
    draws = rng.random(len(idx))  # one draw per sampled clip, the same whatever the variants are
    items = []
    for i, u in zip(idx.tolist(), draws.tolist()):
        options = (CLEAN, *split.variants[i]) if augment and split.variants else (CLEAN,)
        items.append(Item(i, options[min(int(u * len(options)), len(options) - 1)]))
    batches = [items[k : k + batch_size] for k in range(0, len(items), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())  # a batch of one has no across-clip statistics (pooled_norm)
    return batches


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

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader's pin-memory thread on cuda."""
        return Batch(
            {k: (f.pin_memory(), n.pin_memory()) for k, (f, n) in self.inputs.items()},
            self.class_target.pin_memory(), self.attrs.pin_memory(), self.index.pin_memory(),
        )

    def to(self, device: Any, non_blocking: bool = True) -> "Batch":
        return Batch(
            {k: (f.to(device, non_blocking=non_blocking), n.to(device, non_blocking=non_blocking))
             for k, (f, n) in self.inputs.items()},
            self.class_target.to(device, non_blocking=non_blocking),
            self.attrs.to(device, non_blocking=non_blocking),
            self.index,
        )

    def __len__(self) -> int:
        return int(self.index.shape[0])


class StoreBatches:
    """A map-style dataset over one split whose fetches are whole batches of `Item`s.

    The DataLoader's batch sampler (`PlanSampler`, in the main process) sends each batch's items to a
    worker, which reads them with one call of the store's batch reader (`__getitems__`). The reader's
    indexes are loaded once in the main process and pickled to the workers without open files.
    """

    def __init__(self, reader: Any, encoders: dict[str, EncoderInfo], split: SplitData,
                 dtype: "torch.dtype | None" = None) -> None:
        self.reader = reader
        self.encoders = encoders
        self.split = split
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item: Item) -> Batch:
        return self.__getitems__([item])

    def __getitems__(self, items: Sequence[Item]) -> Batch:
        import torch

        ids = [self.split.clip_ids[it.index] for it in items]
        variants = [it.variant for it in items]
        index = np.array([it.index for it in items], dtype=np.int64)
        return Batch(
            read_frames(self.reader, ids, variants, self.encoders, self.dtype),
            torch.from_numpy(self.split.class_target[index]),
            torch.from_numpy(self.split.attrs[index]),
            torch.from_numpy(index),
        )


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


def open_reader(layout: "StoreLayout", encoders: dict[str, EncoderInfo], splits: Sequence[SplitData],
                catalog: Catalog | None = None):
    """The store's batch reader with the index of every (encoder, variant) these splits can ask for."""
    from ..store.embeddings import EmbeddingStore

    variants = {CLEAN} | {v for s in splits for vs in s.variants for v in vs}
    specs = [(e, v) for e, info in encoders.items() for v in sorted(variants) if v == CLEAN or not info.text]
    return EmbeddingStore(layout).reader(specs, catalog=catalog)


def read_frames(
    reader: Any, clip_ids: Sequence[str], variants: Sequence[str], encoders: dict[str, EncoderInfo],
    dtype: "torch.dtype | None" = None,
) -> dict[str, tuple["torch.Tensor", "torch.Tensor"]]:
    """Padded frames (B, T, D) and lengths (B,) of each encoder, each clip in its own variant
    (text encoders always read `clean`: an augmented clip keeps its clean transcript). `dtype`
    float16 halves the bytes a batch costs to build, pin and copy to the GPU (the model upcasts)."""
    same = len(set(variants)) <= 1
    specs = []
    for e, info in encoders.items():
        if info.text:
            specs.append((e, CLEAN))
        else:
            specs.append((e, variants[0] if same and variants else list(variants)))
    return reader.batch(list(clip_ids), specs=specs, dtype=dtype)


def make_loader(dataset: StoreBatches, sampler: PlanSampler, *, num_workers: int, prefetch: int,
                pin_memory: bool, persistent: bool = False):
    """A DataLoader over planned batches: worker processes read ahead while the model trains."""
    from torch.utils.data import DataLoader

    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=persistent,
                      multiprocessing_context=_mp_context())
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      collate_fn=_identity, **kwargs)


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

