"""A small store of deterministic frames in three arrays, and the child the kill tests SIGKILL.

usage: python _integrity_store.py STORE_ROOT compact|drop TARGET
Prints `ready` once imports are done, then runs the command through the library (as the CLI does).
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from sertool.store.catalog import Catalog
from sertool.store.embeddings import ArrayConfig, EmbeddingStore
from sertool.store.layout import StoreLayout
from sertool.store.records import EncoderRecord

SMALL = ArrayConfig(shard_frames=256, chunk_frames=16)
UNITS = (("wavlm", "clean"), ("wavlm", "noise"), ("whisper", "clean"))


def record(name: str, dim: int = 16) -> EncoderRecord:
    return EncoderRecord(name, name, "test-ckpt", None, None, dim, 50.0, "float16", "16k")


def clip_frames(clip: str, encoder: str, variant: str, dim: int = 16) -> np.ndarray:
    """A clip's frames in one unit: a fixed function of the names, so any process can check a read."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{clip}/{encoder}/{variant}".encode()).digest()[:8]))
    n = 1 + (int(clip[1:]) * 37) % 70
    return rng.standard_normal((n, dim)).astype(np.float16)


def clip_ids(n: int) -> list[str]:
    return [f"c{i:04d}" for i in range(n)]


def build(root, n: int = 40, per_call: int = 7) -> StoreLayout:
    layout = StoreLayout.at(root)
    store = EmbeddingStore(layout, SMALL)
    with Catalog(layout.catalog) as cat:
        for enc, var in UNITS:
            with store.open_writer(cat, record(enc), var) as w:
                ids = clip_ids(n)
                for i in range(0, n, per_call):
                    w.write([(c, clip_frames(c, enc, var)) for c in ids[i : i + per_call]])
    return layout


def read_all(layout: StoreLayout) -> dict[tuple[str, str, str], np.ndarray]:
    """Every stored clip of every unit, as read through the store's reader."""
    out = {}
    with Catalog(layout.catalog, read_only=True) as cat:
        units = cat.execute("SELECT DISTINCT encoder, variant FROM embeddings ORDER BY 1, 2")
        reader = EmbeddingStore(layout).reader([tuple(u) for u in units], catalog=cat)
    for enc, var in units:
        ids = list(reader.index(enc, var).clip_ids)
        for c, a in zip(ids, reader.read(enc, var, ids)):
            out[(c, enc, var)] = a
    reader.close()
    return out


if __name__ == "__main__":
    from sertool.store.maintenance import compact, drop

    root, command = sys.argv[1], sys.argv[2]
    layout = StoreLayout.at(root)
    print("ready", flush=True)
    if command == "compact":
        compact(layout)
    else:
        drop(layout, sys.argv[3])
    print("done", flush=True)
