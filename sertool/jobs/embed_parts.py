"""Embedding in parts: N workers (`--part I/N`, or `torchrun` ranks) embed one corpus into one store.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from .. import launch
from ..store.catalog import Catalog
from ..store.clips import clips_to_embed
from ..store.layout import StoreLayout
from ..store.merge import MergeReport, merge_segments
from ..store.segments import PartSpec, claim_segment, seed_segment, segment_layout
from .embed import ClipSource, EmbedConfig, EmbedReport, check_audio, embed_store, load_encoders

if TYPE_CHECKING:
    from rich.console import Console

    from ..encoders.base import Encoder


@dataclass
class PartReport:
    part: PartSpec
    embed: EmbedReport
    segment: StoreLayout
    merge: MergeReport | None = None
    """Set where this process also merged (torchrun rank 0)."""


def part_from_launch() -> PartSpec | None:
    """The part torchrun gave this process (RANK of WORLD_SIZE), or None outside a multi-process launch."""
    info = launch.from_env()
    return PartSpec(info.rank, info.world) if info.distributed else None


def select_part(
    part: PartSpec, finished: dict[tuple[str, str], set[str]], encoder: str, variant: str,
    plan: list[list[ClipSource]],
) -> list[list[ClipSource]]:
    """This part's batches of a unit's plan, without clips the store already holds for that unit."""
    skip = finished.get((encoder, variant), set())
    return [[c for c in b if c.clip_id not in skip] for i, b in enumerate(plan) if i % part.count == part.index]


def _encoders(layout: StoreLayout, segment: StoreLayout, cfg: EmbedConfig) -> list["Encoder"]:
    """The encoders from the *store's* models folder, tokenizers trained on the texts a single run would use."""
    with Catalog(segment.catalog, read_only=True) as cat:
        clips = clips_to_embed(cat, cfg.splits)
    if "audio" in cfg.modalities():
        clips, _ = check_audio(clips)
    return load_encoders(layout, cfg, [c.transcript for c in clips if c.transcript])


def embed_part(
    layout: StoreLayout,
    cfg: EmbedConfig,
    part: PartSpec,
    *,
    console: "Console | None" = None,
    encoders: Sequence["Encoder"] | None = None,
) -> PartReport:
    """Embed part `part` of the store's clips into its segment (resumable like `embed_store`)."""
    segment = segment_layout(layout, part)
    with claim_segment(segment, part):  # for the whole run: a merge refuses the segment until it is done
        finished = seed_segment(layout, segment)
        if encoders is None:
            encoders = _encoders(layout, segment, cfg)
        report = embed_store(segment, cfg, console=console, encoders=encoders,
                             select_batches=partial(select_part, part, finished), recheck_skipped=False)
    return PartReport(part, report, segment)


def embed_distributed(
    layout: StoreLayout, cfg: EmbedConfig, part: PartSpec, *, console: "Console | None" = None
) -> PartReport:
    """One torchrun rank: embed its part, wait for every rank, and (rank 0) merge all segments."""
    import torch.distributed as dist

    if cfg.device.startswith("cuda") and ":" not in cfg.device:
        cfg = dataclasses.replace(cfg, device=f"cuda:{launch.from_env().local_rank}")
    started = False
    if not dist.is_initialized():
        # gloo: the barrier needs no GPU; a long timeout, since ranks finish their parts at different times.
        dist.init_process_group("gloo", timeout=timedelta(days=7))
        started = True
    try:
        report = embed_part(layout, cfg, part, console=console if part.index == 0 else None)
        dist.barrier()
        if part.index == 0:
            report.merge = merge_segments(layout)
        dist.barrier()
        return report
    finally:
        if started:
            dist.destroy_process_group()


def embed_parts(layout: StoreLayout, cfg: EmbedConfig, part: str | None, *,
                console: "Console | None" = None) -> PartReport | None:
    """`sertool embed --part I/N`, or one rank of `sertool embed` under torchrun; None when neither
    applies (the caller embeds the whole store in this process)."""
    if part is not None:
        return embed_part(layout, cfg, PartSpec.parse(part), console=console)
    spec = part_from_launch()
    if spec is None:
        return None
    return embed_distributed(layout, cfg, spec, console=console)
