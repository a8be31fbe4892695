"""End to end on the store: a tiny run learns, logs every artifact, resumes from its checkpoint, repeats
itself exactly with the same seed, and a sweep makes one parent with its children."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sertool.errors import StoreMismatch
from sertool.labels import CLASSES
from sertool.store.catalog import Catalog
from sertool.metrics import BEST_METRICS
from sertool.tracking.names import INIT_FROM_TAG, KIND_TAG, PARENT_TAG, STAGE_TAG
from sertool.train.checkpoint import load_checkpoint
from sertool.train.config import TrainConfig
from sertool.train.data import load_training_data
from sertool.train.runs import init_resolver, train
from sertool.train.recipes import resolve_config


def test_tiny_run_beats_chance(tiny_run):
    # Chance: macro-F1 1/8 = 0.125 for uniform guessing (the majority class alone scores ~0.03);
    # CCC 0 for predictions unrelated to the truth.
    best = tiny_run.best
    assert best["f1_macro"] > 0.2, best
    assert best["ccc_mean"] > 0.3, best
    assert all(best[f"ccc_{a}"] > 0.15 for a in ("arousal", "valence", "dominance")), best
    # it learned: the selected epoch is clearly better than the first
    assert best["ccc_mean"] > tiny_run.history[0].dev["ccc_mean"] + 0.1


def test_run_logs_metrics_params_tags(tiny_run, tracker, frame_store, tiny):
    TINY = tiny
    info = tracker.get_run(tiny_run.run_id)
    assert info.status == "FINISHED"
    assert info.tags[KIND_TAG] == "train" and info.tags[STAGE_TAG] == "pretrain"
    assert info.tags["sertool.store"] == str(frame_store.root.resolve())
    assert info.tags["sertool.splits"] == "corpus"
    with Catalog(frame_store.catalog, read_only=True) as cat:
        fps = dict(cat.execute("SELECT name, fingerprint FROM encoders"))
    for name in ("whisper", "wavlm", "roberta"):
        assert info.tags[f"sertool.encoder.{name}"] == fps[name]
    for m in BEST_METRICS:
        assert m in info.metrics
    assert info.metrics["best_dev_ccc_mean"] == pytest.approx(tiny_run.best["ccc_mean"])
    # the full resolved config is in the params
    for key, value in TrainConfig(**{**TINY, "num_workers": 1}).to_dict().items():
        assert key in info.params, key
    assert info.params["lr"] == "0.003" and info.params["alpha"] == "0.5" and info.params["select"] == "ccc"
    history = tracker.client.get_metric_history(tiny_run.run_id, "dev_ccc_mean")
    assert [h.step for h in history] == list(range(1, TINY["epochs"] + 1))
    for name in ("dev_f1_macro", "dev_ccc_arousal", "train_loss_reg", "train_loss_class", "lr"):
        assert len(tracker.client.get_metric_history(tiny_run.run_id, name)) == TINY["epochs"]


def test_run_artifacts_present_and_loadable(tiny_run, tracker, frame_store, tmp_path):
    run_id = tiny_run.run_id
    # checkpoint: loads into a FusionModel that reproduces the logged dev predictions
    folder = tracker.download_artifact(run_id, "checkpoint", tmp_path)
    model, info = load_checkpoint(folder)
    assert info.epoch == tiny_run.best_epoch and info.fusion["proj_dim"] == 32
    assert list(info.encoders) == ["whisper", "wavlm", "roberta"]
    with Catalog(frame_store.catalog, read_only=True) as cat:
        data = load_training_data(cat, ["whisper", "wavlm", "roberta"])
    dev = tracker.load_predictions(run_id, "Development")
    assert list(dev.columns) == ["clip_id", *[f"p_{c}" for c in CLASSES], "pred_class", "arousal", "valence", "dominance"]
    assert list(dev.clip_id) == data.dev.clip_ids
    from sertool.store.embeddings import EmbeddingStore

    reader = EmbeddingStore(frame_store).reader()
    ids = data.dev.clip_ids[:5]
    batch = reader.batch(ids, specs=[(e, "clean") for e in info.encoders])
    model.eval()
    with torch.no_grad():
        out = model(batch)
    np.testing.assert_allclose(out.attributes.numpy(), dev[["arousal", "valence", "dominance"]].to_numpy()[:5], atol=1e-4)
    np.testing.assert_allclose(torch.softmax(out.logits, -1).numpy(),
                               dev[[f"p_{c}" for c in CLASSES]].to_numpy()[:5], atol=1e-4)
    # predictions of every test split, labelled or not: one row per clip
    for split in ("Test1", "Test3"):
        df = tracker.load_predictions(run_id, split)
        assert sorted(df.clip_id) == sorted(data.tests[split].clip_ids)
        assert np.allclose(df[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-4)
        assert set(df.pred_class) <= set(CLASSES)
        assert df[["arousal", "valence", "dominance"]].apply(lambda s: s.between(1, 7).all()).all()
    # plots are real PNGs; the run's config.json is the resolved config
    plots = tracker.list_artifacts(run_id, "plots")
    assert {"plots/confusion_dev.png", "plots/scatter_dev.png", "plots/confusion_test1.png", "plots/scatter_test1.png"} <= set(plots)
    assert not any("test3" in p for p in plots)  # unlabelled: nothing to plot
    png = tracker.download_artifact(run_id, "plots/confusion_dev.png", tmp_path / "p")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = json.loads(Path(tracker.download_artifact(run_id, "config.json", tmp_path / "c")).read_text())
    assert cfg["proj_dim"] == 32 and cfg["encoders"] == ["whisper", "wavlm", "roberta"]


def test_init_from_resumes_from_logged_checkpoint(tiny_run, tracker, frame_store, tiny):
    TINY = tiny
    # Architecture comes from the checkpoint (not given here); a near-zero lr keeps the weights, so
    # the fine-tune's first evaluation equals the parent's selected epoch.
    overrides = {**TINY, "init_from": tiny_run.run_id[:10], "lr": 1e-12, "min_lr": 0.0, "warmup_epochs": 0.0,
                 "epochs": 1, "samples_per_epoch": 32}
    del overrides["proj_dim"], overrides["lstm_hidden"]
    config = resolve_config(None, overrides, resolve_init=init_resolver(tracker, "train-tests"))
    assert config.init_from == tiny_run.run_id and config.proj_dim == 32 and config.lstm_hidden == 32
    res = train(config, frame_store, tracker=tracker)
    assert res.history[0].dev["f1_macro"] == pytest.approx(tiny_run.best["f1_macro"])
    assert res.history[0].dev["ccc_mean"] == pytest.approx(tiny_run.best["ccc_mean"], abs=1e-5)
    assert tracker.get_run(res.run_id).tags[INIT_FROM_TAG] == tiny_run.run_id


def test_init_from_refuses_other_dims(tiny_run, tracker, frame_store, tiny):
    TINY = tiny
    config = TrainConfig(**{**TINY, "init_from": tiny_run.run_id, "proj_dim": 16, "epochs": 1})
    with pytest.raises(StoreMismatch, match="proj_dim"):
        train(config, frame_store, tracker=tracker)
    config = TrainConfig(**{**TINY, "init_from": tiny_run.run_id, "encoders": ("whisper", "wavlm"), "epochs": 1})
    with pytest.raises(StoreMismatch, match="encoders"):
        train(config, frame_store, tracker=tracker)


def test_same_seed_same_metrics(frame_store, tracker, tiny):
    TINY = tiny
    config = TrainConfig(**{**TINY, "epochs": 2, "samples_per_epoch": 64, "run_name": "determinism"})
    a = train(config, frame_store, tracker=tracker)
    b = train(config, frame_store, tracker=tracker)
    assert [e.dev for e in a.history] == [e.dev for e in b.history]
    assert [e.loss for e in a.history] == [e.loss for e in b.history]
    c = train(dataclasses.replace(config, seed=1), frame_store, tracker=tracker)
    assert [e.loss for e in c.history] != [e.loss for e in a.history]


def test_sweep_creates_parent_and_children(frame_store, tracking_uri, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sertool.cli import app
    from sertool.tracking.tracker import Tracker

    recipe = tmp_path / "grid.toml"
    recipe.write_text(
        'proj_dim = 16\nlstm_hidden = 16\nepochs = 1\nwarmup_epochs = 0\nsamples_per_epoch = 64\n'
        'batch_size = 32\nnum_workers = 0\ndevice = "cpu"\n\n'
        '[sweep]\nname = "mini"\ngrid = { alpha = [0.25, 1.0] }\nruns = [{ pooling = "mean" }, {}]\n'
        'exclude = [{ alpha = 1.0, pooling = "mean" }]\n'
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    res = CliRunner().invoke(app, ["--store", str(frame_store.root), "sweep", str(recipe), "-e", "sweep-tests",
                                   "--set", "lr=1e-3"])
    assert res.exit_code == 0, res.output
    tracker = Tracker(tracking_uri, experiment="sweep-tests")
    (parent,) = tracker.find_runs(kind="sweep")
    children = tracker.find_runs(kind="train", parent_run_id=parent.run_id)
    assert len(children) == 3
    assert {(c.params["alpha"], c.params["pooling"]) for c in children} == {("0.25", "mean"), ("0.25", "asp"), ("1.0", "asp")}
    assert all(c.params["lr"] == "0.001" and c.status == "FINISHED" for c in children)
    assert all(c.tags[PARENT_TAG] == parent.run_id for c in children)
    summary = tracker.load_table(parent.run_id, "sweep_summary.csv")
    assert sorted(summary.run_id) == sorted(c.run_id for c in children)
    assert "mini" in res.output and parent.run_id in res.output


def test_a_run_that_learns_nothing_says_so(frame_store, tracker, tiny, tiny_run):
    """The paper's lr on a few hundred clips: a handful of optimizer steps, near-constant predictions.
    Both are said (one line each, and a run tag); a run that learns says nothing."""
    config = TrainConfig(**{**tiny, "lr": 2e-5, "warmup_epochs": 3, "epochs": 3, "batch_size": 128,
                            "run_name": "learns-nothing"})
    result = train(config, frame_store, tracker=tracker)
    schedule, flat = result.warnings
    assert "9 optimizer steps" in schedule and "raise --lr" in schedule.lower()
    assert "near-constant" in flat and "it learnt (almost) nothing" in flat
    run = tracker.get_run(result.run_id)
    assert run.tags["sertool.warning.schedule"] == schedule and run.tags["sertool.warning.constant"] == flat
    assert tiny_run.warnings == []
