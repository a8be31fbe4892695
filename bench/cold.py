"""Cold reads (`python bench/store.py --cold`): the store read as a paper-scale run reads it, when the
shard files are not in the page cache (MSP-Podcast's store is ~264 GB, 1 TB with augmentations).

Writes N clips at paper widths into the store (whisper 1280, wavlm 1024 at 50 frames/s, lognormal
lengths, median 5 s), then, with the shard files evicted from the page cache before every pass
(`posix_fadvise(POSIX_FADV_DONTNEED)`, no root needed; dirty pages are flushed first):
  * the disk's sequential read bandwidth: every shard file read start to end in 8 MiB reads;
  * random order: batches of 128 clips drawn at random (what `--read-order random` reads);
  * blocked order: the same epoch sample grouped by `--read-order blocked` (each batch a few runs of
    clips that lie next to each other in the store), i.e. the training code's own planner.
Reports MB/s and clips/s of each, and each order's fraction of the disk's sequential bandwidth
(target: blocked >= 0.5x; random reported beside it). One JSON line at the end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

CHUNK = 8 << 20


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the page cache (written pages are synced first: dirty ones stay)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def sequential_mb_s(paths: list[Path]) -> float:
    evict(paths)
    n = 0
    t = time.perf_counter()
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                n += len(chunk)
    return n / 1e6 / (time.perf_counter() - t)


def run(layout, ids: list[str], batch: int, batches: int, seed: int) -> dict:
    import torch

    from sertool.labels import Targets
    from sertool.store.embeddings import EmbeddingStore
    from sertool.train.batches import plan_epoch
    from sertool.train.data import SplitData

    specs = [("whisper", "clean"), ("wavlm", "clean")]
    files = sorted(p for p in layout.embeddings.rglob("*") if p.is_file() and p.stat().st_size > 0)
    store_bytes = sum(p.stat().st_size for p in files)
    reader = EmbeddingStore(layout).reader(specs)
    storage = np.asarray(reader.index("whisper", "clean").locate(ids)[0])
    split = SplitData("Train", ids, Targets.from_consensus([None] * len(ids), [(None,) * 3] * len(ids)))
    plan = dict(samples_per_epoch=batch * batches, batch_size=batch, seed=seed, epoch=1, augment=False)
    orders = {
        "random": plan_epoch(split, **plan),
        "blocked": plan_epoch(split, **plan, read_order="blocked", storage=storage),
    }
    assert sorted(it.index for b in orders["random"] for it in b) == sorted(it.index for b in orders["blocked"] for it in b)
    disk = sequential_mb_s(files)
    out: dict = {"disk_seq_mb_s": round(disk, 1), "store_gb": round(store_bytes / 1e9, 2)}
    for name, batches_ in orders.items():
        evict(files)
        n_bytes = n_clips = 0
        t = time.perf_counter()
        for b in batches_:
            got = reader.batch([ids[it.index] for it in b], specs, dtype=torch.float16)
            n_bytes += sum(int(lens.sum()) * f.shape[-1] * 2 for f, lens in got.values())
            n_clips += len(b)
        s = time.perf_counter() - t
        out[f"cold_{name}_clips_per_s"] = round(n_clips / s, 1)
        out[f"cold_{name}_mb_s"] = round(n_bytes / 1e6 / s, 1)
        out[f"cold_{name}_fraction_of_disk"] = round(n_bytes / 1e6 / s / disk, 3)
    return out
