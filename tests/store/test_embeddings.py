"""The embedding store: exact fp16 round trip, padded batches, provenance guard, resumable and
crash-safe appends, the fast shard reader against zarr's own reads, and the single-writer rule."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the kill test's child script, shared with this module
import _append_loop as loop  # noqa: E402
from sertool.errors import NotFound, StoreInUse, StoreMismatch  # noqa: E402
from sertool.store.catalog import Catalog
from sertool.store.embeddings import ArrayConfig, EmbeddingStore
from sertool.store.reader import EmbeddingReader
from sertool.store.layout import StoreLayout
from sertool.store.records import EncoderRecord
from sertool.store.shards import ShardLayout, ShardReader

HERE = Path(__file__).parent
SMALL = ArrayConfig(shard_frames=256, chunk_frames=16)


def record(name: str = "wavlm", dim: int = 8, layer: int | None = None) -> EncoderRecord:
    return EncoderRecord(name, "wavlm", "test-ckpt", None, layer, dim, 50.0, "float16", "16k")


def ragged(n: int, dim: int, seed: int = 0, prefix: str = "c") -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (f"{prefix}{i:04d}", rng.standard_normal((int(rng.integers(1, 120)), dim)).astype(np.float32))
        for i in range(n)
    ]


def fill(root: Path, items, *, config: ArrayConfig = SMALL, rec: EncoderRecord | None = None,
         variant: str = "clean", per_call: int = 5) -> StoreLayout:
    layout = StoreLayout.at(root)
    store = EmbeddingStore(layout, config)
    with Catalog(layout.catalog) as cat, store.open_writer(cat, rec or record(), variant) as w:
        for i in range(0, len(items), per_call):
            w.write(items[i : i + per_call])
    return layout


def zarr_frames(layout: StoreLayout, encoder: str = "wavlm", variant: str = "clean"):
    import zarr

    return zarr.open_array(layout.embeddings / encoder / variant / "frames", mode="r")


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_reader_returns_exactly_what_was_written(tmp_path, compressor):
    items = ragged(40, 8)  # ~2,400 frames: crosses many 256-frame shards and 16-frame chunks
    layout = fill(tmp_path, items, config=ArrayConfig(256, 16, compressor))
    reader = EmbeddingStore(layout).reader([("wavlm", "clean")])
    got = reader.read("wavlm", "clean", [c for c, _ in items])
    for (cid, want), g in zip(items, got):
        assert g.dtype == np.float16
        np.testing.assert_array_equal(g, want.astype(np.float16), err_msg=cid)
    # The catalog's rows tile the array: no gaps, no overlaps.
    idx = reader.index("wavlm", "clean")
    assert idx.row_start[0] == 0
    assert (idx.row_start[1:] == idx.row_start[:-1] + idx.n_frames[:-1]).all()
    assert zarr_frames(layout).shape == (int(idx.n_frames.sum()), 8)


def test_padded_batch_and_lengths(tmp_path):
    items = ragged(12, 8)
    text = ragged(12, 4, seed=1)
    text = [(c, a) for (c, _), (_, a) in zip(items, text)]
    layout = fill(tmp_path, items)
    fill(tmp_path, text, rec=EncoderRecord("roberta", "roberta", "t", None, None, 4, None, "float16", "bpe"))
    reader = EmbeddingReader(layout)
    want = [items[i] for i in (7, 2, 9)]
    out = reader.batch([c for c, _ in want], [("wavlm", "clean"), ("roberta", "clean")])
    x, lengths = out["wavlm"]
    assert x.dtype.is_floating_point and str(x.dtype) == "torch.float32"
    assert lengths.tolist() == [len(a) for _, a in want]
    assert tuple(x.shape) == (3, max(len(a) for _, a in want), 8)
    for i, (_, a) in enumerate(want):
        n = len(a)
        np.testing.assert_array_equal(x[i, :n].numpy(), a.astype(np.float16).astype(np.float32))
        assert (x[i, n:] == 0).all()
    assert out["roberta"][0].shape[2] == 4
    import torch

    half, half_lengths = reader.batch([c for c, _ in want], [("wavlm", "clean")], dtype=torch.float16)["wavlm"]
    assert half.dtype == torch.float16 and torch.equal(half.float(), x) and torch.equal(half_lengths, lengths)
    with pytest.raises(NotFound, match="nope"):
        reader.batch(["nope"], [("wavlm", "clean")])


def test_per_clip_variants_and_pickled_reader(tmp_path):
    clean = ragged(6, 8)
    noisy = [(c, a + 1) for c, a in clean]
    layout = fill(tmp_path, clean)
    fill(tmp_path, noisy, variant="noise")
    reader = pickle.loads(pickle.dumps(EmbeddingStore(layout).reader([("wavlm", "clean"), ("wavlm", "noise")])))
    assert reader.catalog is None  # nothing holds the catalog open
    ids = [c for c, _ in clean[:4]]
    x, lengths = reader.batch(ids, [("wavlm", ["clean", "noise", "noise", "clean"])])["wavlm"]
    np.testing.assert_array_equal(x[1, : lengths[1]].numpy(), noisy[1][1].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(x[3, : lengths[3]].numpy(), clean[3][1].astype(np.float16).astype(np.float32))


def test_fast_path_equals_zarr_read(tmp_path):
    items = ragged(50, 8, seed=3)
    layout = fill(tmp_path, items, per_call=7)
    arr = zarr_frames(layout)
    shard_layout = ShardLayout.from_metadata(layout.embeddings / "wavlm" / "clean" / "frames")
    assert shard_layout is not None  # the default layout takes the fast path
    fast = ShardReader(shard_layout)
    rng = np.random.default_rng(0)
    total = arr.shape[0]
    for a, n in [(0, total), (250, 20), (255, 2)] + [
        (int(s), int(rng.integers(1, 600))) for s in rng.integers(0, total - 1, 30)
    ]:
        n = min(n, total - a)
        np.testing.assert_array_equal(fast.read(a, n), arr[a : a + n])
    # A shard rewritten by zarr-python itself (its own layout) still reads the same through the fast path.
    import zarr

    w = zarr.open_array(layout.embeddings / "wavlm" / "clean" / "frames", mode="r+")
    w[300:340] = np.full((40, 8), 3.5, dtype=np.float16)
    np.testing.assert_array_equal(ShardReader(shard_layout).read(0, total), w[:])


def test_fingerprint_mismatch_refused(tmp_path):
    layout = fill(tmp_path, ragged(3, 8))
    store = EmbeddingStore(layout)
    with Catalog(layout.catalog) as cat:
        before = cat.execute("SELECT * FROM encoders")
        with pytest.raises(StoreMismatch, match="new name"):
            store.open_writer(cat, record(layer=12), "clean")
        assert cat.execute("SELECT * FROM encoders") == before
        # The same configuration under a new name is fine, and never mixes with the first.
        with store.open_writer(cat, record(name="wavlm-l12", layer=12), "clean") as w:
            assert w.done() == set()


def test_rerun_with_nothing_to_do_does_nothing(tmp_path):
    items = ragged(10, 8)
    layout = fill(tmp_path, items)
    files = {p: p.stat().st_mtime_ns for p in layout.embeddings.rglob("*") if p.is_file()}
    with Catalog(layout.catalog) as cat:
        rows = cat.execute("SELECT * FROM embeddings ORDER BY clip_id")
        with EmbeddingStore(layout, SMALL).open_writer(cat, record(), "clean") as w:
            assert w.done() == {c for c, _ in items}
            todo = [(c, a) for c, a in items if c not in w.done()]
            assert w.write(todo) == 0
            with pytest.raises(ValueError, match="already stored"):
                w.write(items[:1])
        assert cat.execute("SELECT * FROM embeddings ORDER BY clip_id") == rows
    assert {p: p.stat().st_mtime_ns for p in layout.embeddings.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_kill9_during_append_loses_nothing_committed(tmp_path, compressor):
    n_batches = 150
    ref = tmp_path / "ref"
    loop.run(str(ref), n_batches, compressor)  # the uninterrupted run
    root = tmp_path / "killed"
    rnd = random.Random(os.getpid())
    for _ in range(2):
        cmd = [sys.executable, str(HERE / "_append_loop.py"), str(root), str(n_batches)]
        proc = subprocess.Popen(cmd + ([compressor] if compressor else []), stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # under way: at least one batch committed
        time.sleep(rnd.uniform(0.0, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        layout = StoreLayout.at(root)
        with Catalog(layout.catalog, read_only=True) as cat:
            reader = EmbeddingStore(layout).reader([("wavlm", "clean")], catalog=cat)
            (dups,) = cat.execute(
                "SELECT count(*) - count(DISTINCT clip_id) FROM embeddings WHERE encoder = 'wavlm'"
            )[0]
        assert dups == 0
        idx = reader.index("wavlm", "clean")
        assert 0 < len(idx.clip_ids)
        for cid, got in zip(idx.clip_ids, reader.read("wavlm", "clean", list(idx.clip_ids))):
            np.testing.assert_array_equal(got, loop.clip_frames(int(cid[4:])).astype(np.float16), err_msg=cid)
    loop.run(str(root), n_batches, compressor)  # the rerun finishes the job
    tables = []
    for r in (ref, root):
        with Catalog(StoreLayout.at(r).catalog, read_only=True) as cat:
            tables.append(cat.execute("SELECT * FROM embeddings ORDER BY row_start"))
    assert tables[0] == tables[1]  # same rows, same places as the uninterrupted run
    assert len(tables[0]) == n_batches * loop.PER_BATCH
    np.testing.assert_array_equal(zarr_frames(StoreLayout.at(root))[:], zarr_frames(StoreLayout.at(ref))[:])


def test_second_read_write_opener_gets_store_in_use(tmp_path):
    layout = fill(tmp_path, ragged(2, 8))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from sertool.store.catalog import Catalog; c = Catalog(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(layout.catalog)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUse, match="in use"):
            Catalog(layout.catalog)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # Within one process, a second writer of the same array is refused as well.
    with Catalog(layout.catalog) as cat:
        store = EmbeddingStore(layout)
        with store.open_writer(cat, record(), "clean"):
            with pytest.raises(StoreInUse):
                store.open_writer(cat, record(), "clean")
