"""Merging worker segments into a local store: shard-aligned placement, appends after a merge, re-merge safety."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sertool.errors import InvalidOption

from sertool.errors import StoreInUse, StoreMismatch
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore
from sertool.store.layout import StoreLayout
from sertool.store.records import EncoderRecord
from sertool.store.merge import merge_segments
from sertool.store.segments import PartSpec, list_segments, seed_segment, segment_layout

REC = EncoderRecord(name="wavlm", kind="wavlm", checkpoint="test/wavlm", revision="0", layer=None, dim=4,
                    frame_rate=50.0, dtype="float16", preprocessing="test")


def _frames(rng, n):
    return rng.normal(size=(n, 4)).astype(np.float16)


@pytest.fixture
def layout(tmp_path) -> StoreLayout:
    layout = StoreLayout.at(tmp_path / "store")
    with Catalog(layout.catalog) as cat, cat.transaction():
        cat.execute("INSERT INTO corpora VALUES ('c', '/x', 'wav', now())")
        for i in range(20):
            cat.execute("INSERT INTO clips (clip_id, corpus, path) VALUES (?, 'c', ?)", [f"k{i:02d}", f"k{i}.wav"])
    return layout


def _write(layout: StoreLayout, items, record: EncoderRecord = REC) -> None:
    with Catalog(layout.catalog) as cat, EmbeddingStore(layout).open_writer(cat, record, "clean") as w:
        w.write(items)


def _read(layout: StoreLayout, ids):
    return EmbeddingStore(layout).reader([("wavlm", "clean")]).read("wavlm", "clean", ids)


def test_segments_land_on_shard_boundaries_and_the_store_appends_after(layout):
    rng = np.random.default_rng(0)
    want = {f"k{i:02d}": _frames(rng, 5 + i) for i in range(20)}
    _write(layout, [(c, want[c]) for c in ("k00", "k01", "k02")])  # the store already holds three clips
    for shard in (PartSpec(0, 2), PartSpec(1, 2)):
        seg = segment_layout(layout, shard)
        done = seed_segment(layout, seg)
        assert done == {("wavlm", "clean"): {"k00", "k01", "k02"}}
        _write(seg, [(c, want[c]) for c in [f"k{i:02d}" for i in range(3 + shard.index, 15, 2)]])
    report = merge_segments(layout)
    assert report.clips == 12 and report.segments == ["part-0-of-2", "part-1-of-2"]
    S = EmbeddingStore(layout).config.shard_frames
    assert [u.base_row for u in report.units] == [S, 2 * S]  # past the store's rows, one shard each
    assert list_segments(layout) == [] and not (layout.root / "segments").exists()
    _write(layout, [(c, want[c]) for c in ("k15", "k16")])  # an ordinary append continues after the merge
    ids = sorted(want)[:17]
    assert all(np.array_equal(a, want[c]) for a, c in zip(_read(layout, ids), ids))


def test_a_segment_merged_twice_adds_nothing(layout):
    rng = np.random.default_rng(1)
    seg = segment_layout(layout, PartSpec(0, 1))
    seed_segment(layout, seg)
    items = [(f"k{i:02d}", _frames(rng, 7)) for i in range(4)]
    _write(seg, items)
    kept = layout.root / "kept"
    shutil.copytree(seg.root, kept)
    merge_segments(layout)
    shutil.copytree(kept, seg.root)  # as if killed after the commit, before the segment was deleted
    with Catalog(layout.catalog, read_only=True) as cat:
        before = cat.execute("SELECT * FROM embeddings ORDER BY clip_id")
    report = merge_segments(layout)
    assert report.clips == 0 and [u.duplicates for u in report.units] == [4]
    with Catalog(layout.catalog, read_only=True) as cat:
        assert cat.execute("SELECT * FROM embeddings ORDER BY clip_id") == before
    assert not seg.root.exists()
    assert all(np.array_equal(a, f) for a, (_, f) in zip(_read(layout, [c for c, _ in items]), items))


def test_another_encoder_configuration_is_refused(layout):
    _write(layout, [("k00", np.ones((3, 4), np.float16))])
    seg = segment_layout(layout, PartSpec(0, 1))
    seed_segment(layout, seg)
    with Catalog(seg.catalog) as cat:  # the segment's copy of `encoders` guards the worker before any work
        with pytest.raises(StoreMismatch):
            EmbeddingStore(seg).open_writer(cat, dataclasses.replace(REC, layer=3), "clean")


def test_part_spec_parsing():
    assert PartSpec.parse(" 1 / 4 ") == PartSpec(1, 4) and PartSpec(1, 4).name == "part-1-of-4"
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(InvalidOption, match="part"):
            PartSpec.parse(bad)


def _shard_files(layout: StoreLayout) -> list:
    return sorted(p for p in layout.embeddings.rglob("c/*/0")) if layout.embeddings.exists() else []


def test_a_store_append_never_writes_into_a_shard_shared_with_a_segment(layout):
    """What a merge killed between placing files and committing left behind (hard links into the store,
    past its committed rows), then an ordinary embed into the store, then the merge again: every clip
    keeps its own frames. The store's append must not write into the shared file in place."""
    rng = np.random.default_rng(2)
    want = {f"k{i:02d}": _frames(rng, 6 + i) for i in range(8)}
    seg = segment_layout(layout, PartSpec(0, 1))
    seed_segment(layout, seg)
    _write(seg, [(c, want[c]) for c in ("k00", "k01", "k02", "k03")])
    store = EmbeddingStore(layout)
    with Catalog(layout.catalog) as cat, store.open_writer(cat, REC, "clean") as w:
        shard0 = store.array_dir("wavlm", "clean") / "c" / "0" / "0"
        shard0.parent.mkdir(parents=True, exist_ok=True)
        os.link(seg.embeddings / "wavlm" / "clean" / "frames" / "c" / "0" / "0", shard0)  # the killed merge's link
        w.write([(c, want[c]) for c in ("k04", "k05")])  # the store's own rows start at 0: inside the linked file
    merge_segments(layout)
    ids = sorted(want)[:6]
    got = _read(layout, ids)
    assert [c for c, a in zip(ids, got) if not np.array_equal(a, want[c])] == []


def test_a_merge_refused_because_a_segment_is_busy_moves_nothing(layout, tmp_path):
    """Segment 1 is still being written (its worker holds it): the merge is refused before any file of the
    finished segment 0 is placed in the store, and the store's catalog is as it was."""
    rng = np.random.default_rng(3)
    want = {f"k{i:02d}": _frames(rng, 5 + i) for i in range(6)}
    segs = [segment_layout(layout, PartSpec(i, 2)) for i in range(2)]
    for i, seg in enumerate(segs):
        seed_segment(layout, seg)
        _write(seg, [(c, want[c]) for c in sorted(want)[i::2]])
    with Catalog(layout.catalog, read_only=True) as cat:
        before = cat.execute("SELECT * FROM embeddings ORDER BY ALL"), cat.execute("SELECT * FROM encoders")
    worker = subprocess.Popen(  # a worker that holds its segment open for writing, as `embed --part 1/2` does
        [sys.executable, "-c", "import sys, time; from sertool.store.catalog import Catalog; c = Catalog(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(segs[1].catalog)], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUse, match="still being written"):
            merge_segments(layout)
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
    assert _shard_files(layout) == []
    with Catalog(layout.catalog, read_only=True) as cat:
        assert (cat.execute("SELECT * FROM embeddings ORDER BY ALL"), cat.execute("SELECT * FROM encoders")) == before
    assert [s.root.name for s in list_segments(layout)] == ["part-0-of-2", "part-1-of-2"]
    assert merge_segments(layout).clips == 6  # once the worker is gone, the same segments merge
    ids = sorted(want)
    assert all(np.array_equal(a, want[c]) for a, c in zip(_read(layout, ids), ids))
