"""Reading stored frames: the index of (encoder, variant) arrays, and padded batches of clips.

`EmbeddingReader` is the one read path of the project (the training loader and prediction use it):
it loads each wanted index into numpy arrays once, holds no catalog connection afterwards, and serves
frames from mmapped shard files (zarr's own reads for compressed or remote arrays). It pickles without
open files, so DataLoader workers can use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NotFound, StoreCorrupt
from .catalog import Catalog
from .checksums import matches
from .embeddings import FRAMES
from .layout import StoreLayout
from .shards import ShardLayout, ShardReader

if TYPE_CHECKING:
    import torch


@dataclass
class EmbeddingIndex:
    """Where each clip of one (encoder, variant) lives: numpy arrays, no catalog connection."""

    encoder: str
    variant: str
    dim: int
    clip_ids: np.ndarray  # (N,) object
    row_start: np.ndarray  # (N,) int64
    n_frames: np.ndarray  # (N,) int64
    _lookup: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, catalog: Catalog, encoder: str, variant: str) -> "EmbeddingIndex":
        dim = catalog.scalar("SELECT dim FROM encoders WHERE name = ?", [encoder])
        if dim is None:
            raise NotFound(f"encoder {encoder!r} is not in the store (run `sertool embed` first)")
        rows = catalog.execute(
            "SELECT clip_id, row_start, n_frames FROM embeddings WHERE encoder = ? AND variant = ? "
            "ORDER BY row_start",
            [encoder, variant],
        )
        if not rows:
            raise NotFound(f"no embeddings for encoder {encoder!r}, variant {variant!r}")
        ids, starts, lengths = zip(*rows)
        return cls(
            encoder,
            variant,
            int(dim),
            np.array(ids, dtype=object),
            np.array(starts, dtype=np.int64),
            np.array(lengths, dtype=np.int64),
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_lookup": None}

    def locate(self, clip_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row_start, n_frames) of each clip; NotFound names the first missing ones."""
        if self._lookup is None:
            import pandas as pd

            self._lookup = pd.Index(self.clip_ids)
        pos = self._lookup.get_indexer(list(clip_ids))
        if (pos < 0).any():
            missing = [c for c, p in zip(clip_ids, pos) if p < 0]
            raise NotFound(
                f"{len(missing)} clip(s) have no {self.encoder}/{self.variant} embeddings, e.g. {missing[:3]}"
            )
        return self.row_start[pos], self.n_frames[pos]


def pad_batch(
    frames: Sequence[np.ndarray], dim: int, dtype: "torch.dtype | None" = None
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Stack ragged [n_i, dim] arrays into a zero-padded (B, T_max, dim) tensor plus lengths (B,).

    float32 by default; float16 halves the bytes a batch costs to build and to move to the GPU
    (cast there). Writing the padded batch is most of a batch's cost, not reading the frames.
    """
    import torch

    np_dtype = np.float32 if dtype in (None, torch.float32) else np.float16
    if dtype not in (None, torch.float32, torch.float16):
        raise ValueError(f"padded batches are float32 or float16, not {dtype}")
    lengths = np.array([len(f) for f in frames], dtype=np.int64)
    t_max = max(int(lengths.max()), 1) if len(lengths) else 0  # a batch of empty clips still has a time axis
    out = np.zeros((len(frames), t_max, dim), dtype=np_dtype)  # (B, T, D); calloc: padding is free
    for i, f in enumerate(frames):
        out[i, : len(f)] = f
    return torch.from_numpy(out), torch.from_numpy(lengths)


class _ZarrSource:
    """Fallback for arrays the fast path does not handle (compressed): zarr's own reads."""

    def __init__(self, array_dir: Path) -> None:
        self.array_dir = array_dir
        self._arr: Any = None

    def __getstate__(self) -> dict:
        return {"array_dir": self.array_dir, "_arr": None}

    def read(self, start: int, n: int) -> np.ndarray:
        if self._arr is None:
            import zarr

            self._arr = zarr.open_array(self.array_dir, mode="r")
        return self._arr[start : start + n]

    def view(self, start: int, n: int) -> np.ndarray:
        return self.read(start, n)

    def close(self) -> None:
        self._arr = None


class EmbeddingReader:
    """Reads clips' frames: exact fp16 arrays (`read`) or padded float32 batches (`batch`).

    The one read path of the project (the training loader uses it). Holds no catalog connection once
    its indexes are loaded, and pickles without open files, so it can go to DataLoader workers.
    """

    def __init__(
        self,
        layout: StoreLayout,
        indexes: Mapping[tuple[str, str], EmbeddingIndex] | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.layout = layout
        self.indexes: dict[tuple[str, str], EmbeddingIndex] = dict(indexes or {})
        self.catalog = catalog
        self._sources: dict[tuple[str, str], ShardReader | _ZarrSource] = {}
        self._checksums: dict[tuple[str, str], dict[str, str | None]] = {}

    def __getstate__(self) -> dict:
        return {"layout": self.layout, "indexes": self.indexes, "catalog": None, "_sources": {}, "_checksums": {}}

    def close(self) -> None:
        for s in self._sources.values():
            s.close()
        self._sources.clear()

    def index(self, encoder: str, variant: str) -> EmbeddingIndex:
        """The (encoder, variant) index, loaded on first use (read-only catalog open if none was given)."""
        key = (encoder, variant)
        if key not in self.indexes:
            if self.catalog is not None:
                self.indexes[key] = EmbeddingIndex.load(self.catalog, encoder, variant)
            else:
                with Catalog(self.layout.catalog, read_only=True) as cat:
                    self.indexes[key] = EmbeddingIndex.load(cat, encoder, variant)
        return self.indexes[key]

    def _source(self, encoder: str, variant: str) -> ShardReader | _ZarrSource:
        key = (encoder, variant)
        src = self._sources.get(key)
        if src is None:
            if self.layout.remote:  # the fast path reads local files; zarr reads any fsspec filesystem
                src = self._sources[key] = _ZarrSource(f"{self.layout.zarr_root}/{encoder}/{variant}/{FRAMES}")
                return src
            d = self.layout.embeddings / encoder / variant / FRAMES
            if not (d / "zarr.json").exists():
                raise NotFound(f"{d}: no embedding array here")
            layout = ShardLayout.from_metadata(d)
            src = ShardReader(layout) if layout is not None else _ZarrSource(d)
            self._sources[key] = src
        return src

    def _views(self, encoder: str, variant: str, clip_ids: Sequence[str]) -> list[np.ndarray]:
        starts, lengths = self.index(encoder, variant).locate(clip_ids)
        src = self._source(encoder, variant)
        out = []
        for s, n in zip(starts.tolist(), lengths.tolist()):
            v = src.view(s, n)
            out.append(v if isinstance(v, np.ndarray) else src.read(s, n))
        return out

    def read(self, encoder: str, variant: str, clip_ids: Sequence[str], *, verify: bool = False) -> list[np.ndarray]:
        """Each clip's frames exactly as stored: [n_frames, dim] float16 copies.

        `verify` checks each clip against the checksum committed with its row first (`StoreCorrupt`
        names the first that differs; rows written before checksums existed pass unchecked). Off by
        default: the training loader reads without it, at full speed."""
        views = self._views(encoder, variant, clip_ids)
        if verify:
            sums = self.checksums(encoder, variant)
            bad = [c for c, v in zip(clip_ids, views) if matches(v, sums.get(c)) is False]
            if bad:
                raise StoreCorrupt(f"{len(bad)} clip(s) of {encoder}/{variant} do not match the checksum of their "
                                   f"catalog row (e.g. {bad[0]}): the stored frames are not what was written; "
                                   "`sertool store verify` says where")
        return [np.array(v, copy=True) for v in views]

    def checksums(self, encoder: str, variant: str) -> dict[str, str | None]:
        """clip id -> its row's frame checksum (None: written before checksums), loaded on first use."""
        key = (encoder, variant)
        if key not in self._checksums:
            def load(cat: Catalog) -> dict[str, str | None]:
                if "checksum" not in cat.columns("embeddings"):
                    return {}
                return dict(cat.execute("SELECT clip_id, checksum FROM embeddings WHERE encoder = ? AND variant = ?",
                                        [encoder, variant]))

            if self.catalog is not None:
                self._checksums[key] = load(self.catalog)
            else:
                with Catalog(self.layout.catalog, read_only=True) as cat:
                    self._checksums[key] = load(cat)
        return self._checksums[key]

    def batch(
        self,
        clip_ids: Sequence[str],
        specs: Sequence[tuple[str, str | Sequence[str]]],
        dtype: "torch.dtype | None" = None,
    ) -> dict[str, tuple["torch.Tensor", "torch.Tensor"]]:
        """Padded frames (B, T_max, dim) and lengths (B,) per encoder, keyed by encoder name.

        Each spec is (encoder, variant), where variant may also be one name per clip (augmented
        training picks a variant per clip). float32 unless `dtype=torch.float16` (see `pad_batch`).
        """
        result: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for encoder, variant in specs:
            if encoder in result:
                raise ValueError(f"encoder {encoder!r} named twice in one batch")
            if isinstance(variant, str):
                views = self._views(encoder, variant, clip_ids)
                dim = self.index(encoder, variant).dim
            else:
                if len(variant) != len(clip_ids):
                    raise ValueError("one variant per clip expected")
                views = [None] * len(clip_ids)  # type: ignore[list-item]
                dim = 0
                for v in dict.fromkeys(variant):
                    pos = [i for i, x in enumerate(variant) if x == v]
                    for i, a in zip(pos, self._views(encoder, v, [clip_ids[i] for i in pos])):
                        views[i] = a
                    dim = self.index(encoder, v).dim
            result[encoder] = pad_batch(views, dim, dtype)
        return result
