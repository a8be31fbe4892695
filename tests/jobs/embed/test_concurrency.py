"""Readers while `sertool embed` writes: a real embed process, and the store read and queried meanwhile.

What the store promises (store/README.md, "Readers and writers"): any number of readers work while one
writer runs, each sees the catalog as of the writer's last commit (with the frames of every committed
clip on disk), and a second writer is refused at once.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore

pytestmark = pytest.mark.slow  # a real `sertool embed` process (torch import, tiny models): ~15 s

ARGS = ["--preset", "tiny", "--augment", "noise", "--batch-seconds", "8", "--seed", "3"]
"""Whisper counts 30 s a clip, so every Whisper batch is one clip: ~50 commits, a few seconds of writing."""


def run(layout, *args):
    return CliRunner().invoke(app, ["--store", str(layout.root), *args])


def committed_frames(layout) -> dict[tuple[str, str, str], np.ndarray]:
    """Every committed clip's frames, read as training reads them (index from the catalog, then the shards)."""
    with Catalog(layout.catalog, read_only=True) as cat:
        rows = cat.execute("SELECT encoder, variant, clip_id FROM embeddings ORDER BY ALL")
    units: dict[tuple[str, str], list[str]] = {}
    for enc, var, cid in rows:
        units.setdefault((enc, var), []).append(cid)
    reader = EmbeddingStore(layout).reader(list(units))
    return {(enc, var, cid): a for (enc, var), ids in units.items()
            for cid, a in zip(ids, reader.read(enc, var, ids))}


def test_readers_work_while_embed_writes_and_a_second_writer_is_refused(layout):
    proc = subprocess.Popen(
        [sys.executable, "-c", "from sertool.cli import main; main()", "--store", str(layout.root), "embed", *ARGS],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    counts: list[int] = []
    latency: list[float] = []
    seen: dict[tuple[str, str, str], np.ndarray] = {}
    second = part = None
    try:
        deadline = time.monotonic() + 180
        while not layout.embeddings.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the writer is past its checks and has opened its first array
        while proc.poll() is None:
            t0 = time.perf_counter()
            res = run(layout, "store", "query", "select count(*) as n from embeddings", "--format", "csv")
            latency.append(time.perf_counter() - t0)
            assert res.exit_code == 0, res.output
            counts.append(int(res.stdout.splitlines()[1]))
            res = run(layout, "store", "info")
            assert res.exit_code == 0 and "Embeddings per encoder and variant" in res.stdout, res.output
            for key, frames in committed_frames(layout).items():  # what a training run would load now
                seen.setdefault(key, frames)
            if second is None:  # a second writer: refused at once, before it loads a model
                second = run(layout, "embed", "--preset", "tiny", "--encoders", "wavlm")
            if part is None:  # a part worker only reads the store (it writes its own segment)
                part = run(layout, "embed", "--preset", "tiny", "--part", "0/2", "--encoders", "roberta")
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert second is not None and second.exit_code == 2, second.output if second else "embed ended too soon"
    assert "store is in use" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert part is not None and part.exit_code == 0, part.output

    final = committed_frames(layout)
    assert len(counts) >= 3, f"only {len(counts)} reads while embed ran"
    assert counts == sorted(counts) and any(0 < n < len(final) for n in counts), counts
    # Every clip a reader saw mid-run had its final frames already: a reader sees whole committed batches.
    assert seen and all(np.array_equal(seen[k], final[k]) for k in seen)
    res = run(layout, "store", "merge")  # the part worker's roberta clips are all in the store by now
    assert res.exit_code == 0, res.output
    print(f"\n{len(counts)} queries while embed wrote: median {statistics.median(latency) * 1e3:.0f} ms, "
          f"max {max(latency) * 1e3:.0f} ms")
