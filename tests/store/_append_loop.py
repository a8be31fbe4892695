"""Appends deterministic clips batch by batch (the crash test kills it with SIGKILL at a random moment).

usage: python _append_loop.py STORE_ROOT N_BATCHES [COMPRESSOR]
Prints one line per committed batch so the parent knows the run is under way.
"""

from __future__ import annotations

import sys

import numpy as np

from sertool.store.catalog import Catalog
from sertool.store.embeddings import ArrayConfig, EmbeddingStore
from sertool.store.layout import StoreLayout
from sertool.store.records import EncoderRecord

DIM = 8
PER_BATCH = 3
CONFIG = {"shard_frames": 256, "chunk_frames": 16}

RECORD = EncoderRecord(
    name="wavlm",
    kind="wavlm",
    checkpoint="test",
    revision=None,
    layer=None,
    dim=DIM,
    frame_rate=50.0,
    dtype="float16",
    preprocessing="16k",
)


def clip_frames(i: int) -> np.ndarray:
    """Clip i's frames: a fixed function of i, so any run can check what it reads."""
    rng = np.random.default_rng(i)
    return rng.standard_normal((1 + (i * 37) % 90, DIM)).astype(np.float32)


def batches(n_batches: int) -> list[list[str]]:
    return [[f"clip{b * PER_BATCH + j:05d}" for j in range(PER_BATCH)] for b in range(n_batches)]


def run(root: str, n_batches: int, compressor: str | None = None, announce: bool = False) -> None:
    layout = StoreLayout.at(root)
    store = EmbeddingStore(layout, ArrayConfig(compressor=compressor, **CONFIG))  # type: ignore[arg-type]
    with Catalog(layout.catalog) as cat, store.open_writer(cat, RECORD, "clean") as w:
        done = w.done()
        for ids in batches(n_batches):
            todo = [c for c in ids if c not in done]
            if todo:
                w.write([(c, clip_frames(int(c[4:]))) for c in todo])
                if announce:
                    print(todo[-1], flush=True)


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None, announce=True)
