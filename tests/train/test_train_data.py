"""Training data from the store: which clips, which targets, the per-epoch sample, its DDP shards, and
batches whose clips each come in their drawn variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sertool.errors import NotFound
from sertool.labels import CLASSES, IGNORE_INDEX
from sertool.store.catalog import Catalog
from sertool.train.batches import (
    Item,
    PlanSampler,
    StoreBatches,
    epoch_sample,
    make_loader,
    open_reader,
    plan_epoch,
    rank_share,
)
from sertool.train.data import load_training_data

ENCODERS = ["whisper", "wavlm", "roberta"]


@pytest.fixture(scope="module")
def data(frame_store):
    with Catalog(frame_store.catalog, read_only=True) as cat:
        labels = dict(cat.execute("SELECT clip_id, emotion FROM labels"))
        return load_training_data(cat, ENCODERS), labels


def test_splits_targets_and_exclusions(data):
    td, labels = data
    assert set(td.tests) == {"Test1", "Test3"}
    # Train: no X, and every kept clip labelled; O clips keep attributes but no class target
    assert all(labels[c] != "X" for c in td.train.clip_ids)
    n_train_labelled = sum(1 for c, e in labels.items() if c.startswith("Train_") and e != "X")
    assert len(td.train) == n_train_labelled
    for cid, t, a in zip(td.train.clip_ids, td.train.class_target, td.train.attrs):
        assert t == (IGNORE_INDEX if labels[cid] == "O" else CLASSES.index(labels[cid]))
        assert np.isfinite(a).all()
    assert td.class_counts == [sum(labels[c] == k for c in td.train.clip_ids) for k in CLASSES]
    # Development keeps X clips: officially they count in every attribute's CCC (their ratings are
    # valid) but not in macro-F1 (no class), and the X-free companion CCC leaves them out
    x_rows = [td.dev.clip_ids.index(c) for c in td.dev.clip_ids if labels[c] == "X"]
    dev = td.dev.targets
    assert x_rows and not dev.class_rows[x_rows].any()
    assert all(dev.attribute_rows(j)[x_rows].all() and not dev.attribute_rows(j, exclude_x=True)[x_rows].any()
               for j in range(3))
    # the challenge-style test split has no labels at all
    test3 = td.tests["Test3"].targets
    assert not test3.labelled.any() and not test3.class_rows.any() and np.isnan(test3.attrs).all()
    # variants: audio encoders have `noise` for Train only; roberta is a text encoder
    assert all(v == ("noise",) for v in td.train.variants)
    assert td.encoders["roberta"].text and not td.encoders["wavlm"].text


def test_missing_encoder_or_scheme_is_reported(frame_store):
    with Catalog(frame_store.catalog, read_only=True) as cat:
        with pytest.raises(NotFound, match="hubert"):
            load_training_data(cat, ["whisper", "hubert"])
        with pytest.raises(NotFound, match="no split scheme 'speakers'"):
            load_training_data(cat, ENCODERS, "speakers")


def test_epoch_sample_and_shards():
    a = epoch_sample(1000, 300, seed=1, epoch=2)
    assert len(a) == len(set(a.tolist())) == 300
    assert np.array_equal(a, epoch_sample(1000, 300, seed=1, epoch=2))
    assert not np.array_equal(a, epoch_sample(1000, 300, seed=1, epoch=3))
    assert sorted(epoch_sample(50, 32_000, seed=0, epoch=1).tolist()) == list(range(50))  # whole split if smaller
    parts = [rank_share(a, r, 3) for r in range(3)]
    assert {len(p) for p in parts} == {100}
    assert sorted(np.concatenate(parts).tolist()) == sorted(a.tolist())
    odd = [rank_share(a[:299], r, 2) for r in range(2)]
    assert len(odd[0]) == len(odd[1]) == 150 and set(np.concatenate(odd).tolist()) == set(a[:299].tolist())


def test_variants_drawn_per_clip(data):
    td, _ = data
    plan = plan_epoch(td.train, samples_per_epoch=10_000, batch_size=32, seed=0, epoch=1, augment=True)
    drawn = [it.variant for b in plan for it in b]
    assert len(drawn) == len(td.train) and 0.3 < drawn.count("noise") / len(drawn) < 0.7
    plain = plan_epoch(td.train, samples_per_epoch=10_000, batch_size=32, seed=0, epoch=1, augment=False)
    assert {it.variant for b in plain for it in b} == {"clean"}
    assert [[it.index for it in b] for b in plain] == [[it.index for it in b] for b in plan]  # same clips
    other = plan_epoch(td.train, samples_per_epoch=10_000, batch_size=32, seed=0, epoch=2, augment=True)
    assert [it.index for it in other[0]] != [it.index for it in plan[0]]


def test_batches_read_each_clip_in_its_variant(frame_store, data):
    td, _ = data
    reader = open_reader(frame_store, td.encoders, [td.train])
    ds = StoreBatches(reader, td.encoders, td.train)
    items = [Item(0, "noise"), Item(1, "clean"), Item(2, "noise"), Item(3, "clean")]
    batch = ds.__getitems__(items)
    ids = [td.train.clip_ids[i] for i in range(4)]
    for enc in ENCODERS:
        frames, lengths = batch.inputs[enc]
        for row, (cid, it) in enumerate(zip(ids, items)):
            variant = "clean" if enc == "roberta" else it.variant
            (want,) = reader.read(enc, variant, [cid])
            assert lengths[row] == len(want)
            np.testing.assert_array_equal(frames[row, : len(want)].numpy(), want.astype(np.float32))
            assert not frames[row, len(want):].any()  # zero padding
    assert torch.equal(batch.class_target, torch.from_numpy(td.train.class_target[:4]))
    # through a DataLoader with a worker process: same batches, in plan order
    plan = [items[:2], items[2:]]
    loader = make_loader(ds, PlanSampler(lambda _e: plan), num_workers=1, prefetch=2, pin_memory=False)
    got = list(loader)
    assert [b.index.tolist() for b in got] == [[0, 1], [2, 3]]
    assert torch.equal(got[1].inputs["whisper"][0], ds.__getitems__(items[2:]).inputs["whisper"][0])
    half = StoreBatches(reader, td.encoders, td.train, torch.float16).__getitems__(items)  # what cuda reads
    assert half.inputs["wavlm"][0].dtype == torch.float16
    torch.testing.assert_close(half.inputs["wavlm"][0].float(), batch.inputs["wavlm"][0])
