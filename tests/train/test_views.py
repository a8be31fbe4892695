"""Packed training views (issue 15): `store pack` copies frames exactly (fp16) or within the stated
bound (bf16, fp8, int8), pools to 25/s as the mean of frame pairs, goes stale when its sources are
re-made; `train --view` builds the store loader's very batches from memory (so a run trains to the same
figures), refuses a view that does not fit before any work, and logs which view it read."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sertool.cli import app
from sertool.store.catalog import Catalog
from sertool.store.layout import StoreLayout
from sertool.store.reader import EmbeddingReader
from sertool.store.views import StaleView, ViewSpec, list_views, open_view, pack_view
from sertool.train.batches import Item, read_frames
from sertool.train.config import TrainConfig
from sertool.train.resident import ResidentFrames

ENCODERS = ("whisper", "wavlm", "roberta")


@pytest.fixture
def store(frame_store, tmp_path) -> StoreLayout:
    shutil.copytree(frame_store.root, tmp_path / "store")  # packing writes: keep the shared store as it is
    return StoreLayout.at(tmp_path / "store")


def _pack(layout, name, **kw):
    with Catalog(layout.catalog) as cat:
        return pack_view(cat, layout, ViewSpec(name, ENCODERS, **kw))


def _source(layout, enc, variant, ids):
    return EmbeddingReader(layout).read(enc, variant, ids)


def _unpacked(info, key):
    """A view array's clips decoded back to float32, through the code training uses."""
    frames = ResidentFrames(info, [key.split("/")[0]], "cpu")
    ids = info.array_clips(key)
    variant = key.split("/")[1]
    x, lens = frames.inputs(ids, [variant] * len(ids), {key.split("/")[0]: key.startswith("roberta")})[key.split("/")[0]]
    return [x[i, : int(n)].float().numpy() for i, n in enumerate(lens)], ids


def test_fp16_is_exact_and_25_per_second_is_the_mean_of_frame_pairs(store):
    info = _pack(store, "exact", variants=("clean", "noise"))
    for key in ("whisper/clean", "wavlm/noise", "roberta/clean"):
        got, ids = _unpacked(info, key)
        src = _source(store, *key.split("/"), ids)
        assert all(np.array_equal(g, s.astype(np.float32)) for g, s in zip(got, src)), key
    assert "roberta/noise" not in info.arrays  # text encoders hold the clean transcript's frames only
    pooled = _pack(store, "rate25", frame_rate=25)
    got, ids = _unpacked(pooled, "wavlm/clean")
    for g, s in zip(got, _source(store, "wavlm", "clean", ids)):
        s = s.astype(np.float32)
        n = len(s)
        expected = [s[k : k + 2].mean(axis=0) for k in range(0, n, 2)]  # an odd last frame stays as it is
        assert len(g) == (n + 1) // 2
        np.testing.assert_allclose(g, np.array(expected), atol=2e-3)  # the mean, rounded to fp16
    text, _ = _unpacked(pooled, "roberta/clean")  # tokens are not time: never pooled
    assert sum(map(len, text)) == pooled.arrays["roberta/clean"]["rows_50"]


@pytest.mark.parametrize("dtype", ["bf16", "fp8", "int8"])
def test_quantized_views_stay_within_their_bound(store, dtype):
    info = _pack(store, f"q-{dtype}", dtype=dtype)
    got, ids = _unpacked(info, "whisper/clean")
    src = [s.astype(np.float32) for s in _source(store, "whisper", "clean", ids)]
    x, y = np.concatenate(src), np.concatenate(got)
    if dtype == "int8":
        scale = np.load(info.array_path("whisper/clean", "scale"))
        # Train clips lie inside the fitted range: half a step (plus fp16 rounding of the output)
        bound = scale / 2 + np.abs(x) * 2**-10 + 1e-6
        train = np.concatenate([np.full(len(s), c.startswith("Train_")) for s, c in zip(src, ids)])
        assert (np.abs(x - y) <= bound)[train].all()
        assert train.any()
    else:
        rel = {"bf16": 2**-8, "fp8": 2**-4}[dtype]
        assert (np.abs(x - y) <= np.abs(x) * (rel + 2**-10) + 2**-9).all()
    fp16 = _pack(store, f"ref-{dtype}")
    assert info.bytes < (0.55 if dtype in ("fp8", "int8") else 1.01) * fp16.bytes


def test_a_view_goes_stale_when_its_sources_are_remade(store):
    from sertool.store.embeddings import EmbeddingStore

    _pack(store, "v")
    with Catalog(store.catalog, read_only=True) as cat:
        assert [v["state"] for v in list_views(cat, store)] == ["ok"]
    from sertool.train.synthetic import _record

    with Catalog(store.catalog) as cat:  # re-embed one clip of wavlm: its frames land in new rows
        clip = cat.execute("SELECT clip_id FROM embeddings WHERE encoder = 'wavlm' ORDER BY clip_id LIMIT 1")[0][0]
        cat.execute("DELETE FROM embeddings WHERE clip_id = ? AND encoder = 'wavlm' AND variant = 'clean'", [clip])
        with EmbeddingStore(store).open_writer(cat, _record("wavlm", 12), "clean") as w:
            w.write([(clip, np.ones((9, 12), dtype=np.float32))])
    with Catalog(store.catalog, read_only=True) as cat:
        with pytest.raises(StaleView, match="wavlm/clean was re-embedded"):
            open_view(cat, store, "v")
        assert [v["state"] for v in list_views(cat, store)] == ["stale"]


def test_resident_batches_are_the_store_loaders_batches(store):
    info = _pack(store, "fp16", variants=("clean", "noise"))
    from sertool.train.data import load_training_data

    with Catalog(store.catalog, read_only=True) as cat:
        data = load_training_data(cat, ENCODERS)
    reader = EmbeddingReader(store)
    items = [Item(i, v) for i, v in zip(range(0, 60, 3), ["clean", "noise"] * 10)]
    ids = [data.train.clip_ids[it.index] for it in items]
    want = read_frames(reader, ids, [it.variant for it in items], data.encoders, torch.float16)
    got = ResidentFrames(info, list(ENCODERS), "cpu").inputs(ids, [it.variant for it in items],
                                                              {n: e.text for n, e in data.encoders.items()})
    for enc in ENCODERS:
        assert torch.equal(got[enc][0], want[enc][0]) and torch.equal(got[enc][1], want[enc][1]), enc


def test_a_run_from_a_view_trains_to_the_store_runs_figures_and_logs_the_view(store, tracker, tiny):
    from sertool.train.runs import train

    _pack(store, "train-fp16", variants=("clean", "noise"))
    base = {**tiny, "num_workers": 0, "epochs": 3}
    a = train(TrainConfig(**base, run_name="from-store"), store, tracker=tracker)
    b = train(TrainConfig(**base, view="train-fp16", run_name="from-view"), store, tracker=tracker)
    assert [e.loss for e in a.history] == [e.loss for e in b.history]  # the same batches, the same steps
    assert a.best == b.best
    run = tracker.get_run(b.run_id)
    assert run.params["view"] == "train-fp16" and run.params["view.dtype"] == "fp16"
    assert run.params["view.frame_rate"] == "50" and run.params["view.resident"] == "cpu"


def test_a_view_that_does_not_fit_is_refused_before_any_work(store, tracking_uri, monkeypatch):
    from sertool.errors import NotFound
    from sertool.tracking.tracker import Tracker

    _pack(store, "big")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    res = CliRunner().invoke(app, ["--store", str(store.root), "train", "--view", "big", "--resident-budget-gb",
                                   "0.00001", "-e", "views-fit", "--proj-dim", "8", "--lstm-hidden", "8"])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.stderr
    assert "view 'big' needs" in lines[0] and "int8" in lines[0] and "--splits Train" in lines[0]
    with pytest.raises(NotFound):
        Tracker(tracking_uri).experiment_id("views-fit")  # no run, not even an experiment, was started


def test_store_drop_removes_a_view_and_names_the_views_an_encoder_drop_leaves_stale(store):
    _pack(store, "a")
    _pack(store, "b")
    files = store.views / "a"
    assert files.is_dir()
    res = CliRunner().invoke(app, ["--store", str(store.root), "store", "drop", "--view", "a"])
    assert res.exit_code == 0 and "dropped view 'a'" in res.stdout, res.output
    assert not files.exists()
    with Catalog(store.catalog, read_only=True) as cat:
        assert [v["name"] for v in list_views(cat, store)] == ["b"]

    res = CliRunner().invoke(app, ["--store", str(store.root), "store", "drop", "wavlm/clean"])
    assert res.exit_code == 0, res.output
    assert "note: view 'b' holds frames of wavlm/clean" in res.stderr and "--view b" in res.stderr
    with Catalog(store.catalog, read_only=True) as cat:
        with pytest.raises(StaleView):
            open_view(cat, store, "b")

    for args in (["store", "drop"], ["store", "drop", "whisper", "--view", "b"]):  # neither, or both
        res = CliRunner().invoke(app, ["--store", str(store.root), *args])
        assert res.exit_code == 2 and res.output.count("\n") == 1 and res.output.startswith("error: --view"), res.output
    with Catalog(store.catalog, read_only=True) as cat:
        assert [v["name"] for v in list_views(cat, store)] == ["b"]
