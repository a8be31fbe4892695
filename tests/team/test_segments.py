"""Merging worker segments into a local store: shard-aligned placement, appends after a merge, re-merge safety."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from sertool.errors import InvalidOption

from sertool.errors import StoreMismatch
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore
from sertool.store.layout import StoreLayout
from sertool.store.records import EncoderRecord
from sertool.store.segments import PartSpec, list_segments, merge_segments, seed_segment, segment_layout

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
