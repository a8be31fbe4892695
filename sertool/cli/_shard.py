"""`sertool embed --shard I/N` and `sertool embed` under torchrun: the sharded path of the embed command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SertoolError
from ._common import err

if TYPE_CHECKING:
    from ..embed.pipeline import EmbedConfig, EmbedReport
    from ..store.layout import StoreLayout


def wants_shards(shard: str | None) -> bool:
    """`--shard` given, or several processes launched by torchrun (WORLD_SIZE > 1)."""
    from ..embed.sharding import shard_from_env

    return shard is not None or shard_from_env() is not None


def run_sharded(layout: "StoreLayout", cfg: "EmbedConfig", shard: str | None) -> "EmbedReport | None":
    """Embed one shard; returns its report (None on torchrun ranks other than 0, which stay quiet)."""
    from ..embed.sharding import embed_distributed, embed_shard, shard_from_env
    from ..store.segments import ShardSpec, segment_layout

    if shard is not None:
        try:
            spec = ShardSpec.parse(shard)
        except ValueError as e:
            raise SertoolError(str(e)) from None
        report = embed_shard(layout, cfg, spec, console=err)
        err.print(f"shard {spec} is in {segment_layout(layout, spec).root}; once all {spec.count} shards are done, "
                  "`sertool store merge` commits them to the store", highlight=False)
        return report
    spec = shard_from_env()
    assert spec is not None
    result = embed_distributed(layout, cfg, spec, console=err)
    if spec.index != 0:
        return None
    if result.merge is not None:
        m = result.merge
        err.print(f"merged {len(m.segments)} segment(s): {m.clips} clip embeddings committed", highlight=False)
    return result.embed
