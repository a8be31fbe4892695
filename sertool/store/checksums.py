"""Checksums of stored frames: one per (clip, encoder, variant) slice, kept in its catalog row.

A shard file's index carries a crc32c of the index only (zarr's sharding spec): a flipped byte among
the frames themselves reads back as a valid embedding. So the writer hashes each clip's float16 bytes
as it appends them and commits the checksum in the same transaction as the row that points at them;
`store verify --frames` and `EmbeddingReader.read(..., verify=True)` compare. The normal read path
never looks at them (training reads as fast as before).

xxh3-64 rather than crc32c or SHA-256: it runs at several GB/s on one core without copying the array
(`google_crc32c` wants `bytes`, and SHA-256 is 5-10x slower), so it costs a few percent of what the
writer already spends per byte (the float16 cast and the NaN scan). It detects corruption, not an
adversary: the store trusts whoever may write it. The algorithm is part of the stored value
(`xxh3:<16 hex>`), so another can be added without confusing old rows; rows written before checksums
existed hold NULL ("no checksum", never "corrupt").
"""

from __future__ import annotations

import numpy as np

PREFIX = "xxh3:"


def frames_checksum(frames: np.ndarray) -> str:
    """The checksum of a clip's frames as stored (float16 bytes, C order)."""
    import xxhash

    data = np.ascontiguousarray(frames)
    return f"{PREFIX}{xxhash.xxh3_64_intdigest(data.reshape(-1).view(np.uint8)):016x}"


def matches(frames: np.ndarray, checksum: str | None) -> bool | None:
    """True or False where the row has a checksum this version knows; None where it has none."""
    if checksum is None or not checksum.startswith(PREFIX):
        return None
    return frames_checksum(frames) == checksum
