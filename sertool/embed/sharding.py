"""Sharded embedding: N workers (`--shard I/N`, or `torchrun` ranks) embed one corpus into one store.

Every worker computes the *same* bucket plan as a single-process run (over all clips, per encoder),
and keeps batches ``i % N == I``: each batch is the batch a single process would have run, so the
frames are bit-identical to a single-process embed. A worker writes only its own segment store
(`store.segments`): its own Zarr shard files and its own DuckDB file, so no two workers ever share
a chunk, a shard file or a database. `sertool store merge` (rank 0 at the end, under torchrun) moves
the segments' shard files into the store and commits all their catalog rows in one transaction.

Workers read the store's catalog only briefly at start (read-only) and load the encoders from the
store's `models/` (the tiny preset's build is atomic, so racing workers agree on one build).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from ..store.catalog import Catalog
from ..store.layout import StoreLayout
from ..store.segments import MergeReport, ShardSpec, merge_segments, seed_segment, segment_layout
from .pipeline import ClipJob, EmbedConfig, EmbedReport, check_audio, embed_store, load_encoders, plan_clips

if TYPE_CHECKING:
    from rich.console import Console

    from ..encoders.base import Encoder


@dataclass
class ShardReport:
    shard: ShardSpec
    embed: EmbedReport
    merge: MergeReport | None = None
    """Set where this process also merged (torchrun rank 0)."""


def shard_from_env() -> ShardSpec | None:
    """The shard torchrun gave this process (RANK of WORLD_SIZE), or None outside a multi-process launch."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return ShardSpec(int(os.environ.get("RANK", "0")), world)


def select_shard(
    shard: ShardSpec, finished: dict[tuple[str, str], set[str]], encoder: str, variant: str,
    plan: list[list[ClipJob]],
) -> list[list[ClipJob]]:
    """This shard's batches of a unit's plan, without clips the store already holds for that unit."""
    skip = finished.get((encoder, variant), set())
    return [[c for c in b if c.clip_id not in skip] for i, b in enumerate(plan) if i % shard.count == shard.index]


def _encoders(layout: StoreLayout, segment: StoreLayout, cfg: EmbedConfig) -> list["Encoder"]:
    """The encoders from the *store's* models folder, tokenizers trained on the texts a single run would use."""
    with Catalog(segment.catalog, read_only=True) as cat:
        clips = plan_clips(cat, cfg.splits)
    if any(k != "roberta" for k in cfg.encoders):
        clips, _ = check_audio(clips)
    return load_encoders(layout, cfg, [c.transcript for c in clips if c.transcript])


def embed_shard(
    layout: StoreLayout,
    cfg: EmbedConfig,
    shard: ShardSpec,
    *,
    console: "Console | None" = None,
    encoders: Sequence["Encoder"] | None = None,
) -> EmbedReport:
    """Embed shard `shard` of the store's clips into its segment (resumable like `embed_store`)."""
    segment = segment_layout(layout, shard)
    finished = seed_segment(layout, segment)
    if encoders is None:
        encoders = _encoders(layout, segment, cfg)
    return embed_store(segment, cfg, console=console, encoders=encoders,
                       select_batches=partial(select_shard, shard, finished))


def embed_distributed(
    layout: StoreLayout, cfg: EmbedConfig, shard: ShardSpec, *, console: "Console | None" = None
) -> ShardReport:
    """One torchrun rank: embed its shard, wait for every rank, and (rank 0) merge all segments."""
    import torch.distributed as dist

    if cfg.device.startswith("cuda") and ":" not in cfg.device:
        cfg = dataclasses.replace(cfg, device=f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    started = False
    if not dist.is_initialized():
        # gloo: the barrier needs no GPU; a long timeout, since ranks finish their shards at different times.
        dist.init_process_group("gloo", timeout=timedelta(days=7))
        started = True
    try:
        report = ShardReport(shard, embed_shard(layout, cfg, shard, console=console if shard.index == 0 else None))
        dist.barrier()
        if shard.index == 0:
            report.merge = merge_segments(layout)
        dist.barrier()
        return report
    finally:
        if started:
            dist.destroy_process_group()
