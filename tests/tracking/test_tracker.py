"""Tracker against a real temporary SQLite MLflow store: write a run, read every part of it back."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from sertool.errors import NotFound, SertoolError
from sertool.tracking import (
    TrackingUnreachable,
    Tracker,
    check_reachable,
    default_experiment_name,
    default_tracking_uri,
    resolve_tracking_uri,
)
from sertool.metrics import CCC, best as best_name
from sertool.tracking.names import (
    CHECKPOINT_WEIGHTS,
    KIND_TAG,
    PARENT_TAG,
    STAGE_TAG,
    predictions_path,
)

CONFIG = {
    "alpha": 0.75,
    "model": {"proj_dim": 16, "pooling": "asp", "encoders": ["whisper", "wavlm", "roberta"]},
    "optim": {"lr": 2e-5, "schedule": {"warmup_epochs": 3, "min_lr": 1e-7}},
    "notes": "x" * 10_000,  # longer than MLflow's param limit
}


@pytest.fixture(scope="module")
def logged(tracker, tmp_path_factory):
    """One training-like run with every kind of value and artifact, and what was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from safetensors.numpy import save_file

    tmp = tmp_path_factory.mktemp("local")
    rng = np.random.default_rng(0)
    preds = pd.DataFrame(
        {
            "clip_id": ["0007", "0010", "0123"],  # leading zeros must survive the CSV round trip
            **{f"p_{c}": rng.random(3) for c in "ASHUFDCN"},
            "pred_class": ["A", "N", "H"],
            "arousal": rng.uniform(1, 7, 3),
        }
    )
    weights = {"head.weight": rng.standard_normal((11, 4)).astype(np.float32)}
    save_file(weights, tmp / "best.safetensors")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(rng.random((8, 8)))
    dev_f1 = [0.20, 0.35, 0.31]

    with tracker.start("train", run_name="pretrain-a0.75", tags={STAGE_TAG: "pretrain"}) as run:
        run.log_config(CONFIG)
        for epoch, f1 in enumerate(dev_f1):
            run.log_metrics({"dev_f1_macro": f1, "lr": 1e-5 * (epoch + 1), "skipped": None}, step=epoch)
        run.log_metrics({"best_dev_f1_macro": max(dev_f1), best_name(CCC["mean"]): np.float32(0.5)})
        run.log_checkpoint(tmp / "best.safetensors", {"proj_dim": 16, "classes": list("ASHUFDCN")})
        run.log_predictions("Development", preds)
        run.log_table(preds, "tables/dev.parquet")
        run.log_figure(fig, "plots/confusion")
    plt.close(fig)
    return run.run_id, preds, weights, dev_f1


def test_run_round_trip(tracker, logged, store_uri, tmp_path):
    run_id, preds, weights, dev_f1 = logged
    info = tracker.get_run(run_id)
    assert (info.status, info.kind, info.stage, info.name) == ("FINISHED", "train", "pretrain", "pretrain-a0.75")
    # nested config flattened with dots, values stringified, the long one cut within the limit
    assert info.params["model.proj_dim"] == "16"
    assert info.params["optim.schedule.warmup_epochs"] == "3"
    assert json.loads(info.params["model.encoders"]) == ["whisper", "wavlm", "roberta"]
    assert 0 < len(info.params["notes"]) <= 6000 and info.params["notes"].endswith("...")
    # per-epoch metrics keep their steps; None values are skipped
    history = tracker.client.get_metric_history(run_id, "dev_f1_macro")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(enumerate(dev_f1))
    assert "skipped" not in info.metrics
    assert info.metric("best_dev_f1_macro") == max(dev_f1)
    # artifacts live beside the SQLite store, and read back unchanged
    db_dir = store_uri.removeprefix("sqlite:///").rsplit("/", 1)[0]
    assert info.artifact_uri.startswith(f"file://{db_dir}/mlartifacts/")
    pd.testing.assert_frame_equal(tracker.load_predictions(run_id, "Development"), preds)
    pd.testing.assert_frame_equal(tracker.load_table(run_id, "tables/dev.parquet"), preds)
    assert json.loads((tracker.download_artifact(run_id, "config.json", tmp_path)).read_text())["alpha"] == 0.75

    from safetensors.numpy import load_file

    path, config = tracker.load_checkpoint(run_id, tmp_path / "ckpt")
    assert path.name == "model.safetensors" and config["classes"] == list("ASHUFDCN")
    np.testing.assert_array_equal(load_file(path)["head.weight"], weights["head.weight"])
    assert CHECKPOINT_WEIGHTS in tracker.list_artifacts(run_id, "checkpoint")
    # ... and an MLflow 3 logged model the run outputs (the UI's Model column links it), same bytes
    (model_id,) = info.model_ids
    assert info.tags["sertool.checkpoint_model"] == model_id
    model = tracker.client.get_logged_model(model_id)
    assert (model.source_run_id, str(model.status)) == (run_id, "READY")
    assert sorted(a.path for a in tracker.client.list_logged_model_artifacts(model_id)) == [
        "config.json", CHECKPOINT_WEIGHTS.split("/")[-1]]

    import matplotlib.image

    png = tracker.download_artifact(run_id, "plots/confusion.png", tmp_path)
    assert matplotlib.image.imread(png).ndim == 3


def test_exception_marks_failed_and_interrupt_killed(tracker):
    with pytest.raises(RuntimeError):
        with tracker.start("train", run_name="crashes") as run:
            run.log_metrics({"dev_f1_macro": 0.1}, step=0)
            raise RuntimeError("boom")
    assert tracker.get_run(run.run_id).status == "FAILED"
    with pytest.raises(KeyboardInterrupt):
        with tracker.start("train", run_name="interrupted") as run2:
            raise KeyboardInterrupt
    assert tracker.get_run(run2.run_id).status == "KILLED"


def test_child_runs_and_search_by_metric(tracker):
    valence = {"s-a": 0.41, "s-b": 0.63, "s-c": 0.52}
    with tracker.start("sweep", run_name="grid") as parent:
        for name, v in valence.items():
            with tracker.start("train", run_name=name, parent_run_id=parent.run_id) as child:
                child.log_metrics({best_name(CCC["valence"]): v})
    children = tracker.find_runs(parent_run_id=parent.run_id, order_by=[f"metrics.{best_name(CCC['valence'])} DESC"])
    assert [r.name for r in children] == sorted(valence, key=valence.get, reverse=True)
    quoted = tracker.find_runs(parent_run_id=parent.run_id, order_by=[f"metrics.`{best_name(CCC['valence'])}` ASC"])
    assert [r.name for r in quoted] == [r.name for r in reversed(children)]
    assert all(r.parent_run_id == parent.run_id and r.tags[PARENT_TAG] == parent.run_id for r in children)
    assert all(r.experiment_id == parent.experiment_id for r in children)
    sweeps = tracker.find_runs(kind="sweep")
    assert [r.name for r in sweeps] == ["grid"] and sweeps[0].tags[KIND_TAG] == "sweep"
    # a run is found by full id, unique name, or id prefix
    best = children[0]
    assert tracker.resolve_run(best.run_id).name == "s-b"
    assert tracker.resolve_run("s-b").run_id == best.run_id
    assert tracker.resolve_run(best.run_id[:8]).run_id == best.run_id
    with pytest.raises(NotFound):
        tracker.resolve_run("no-such-run")
    with pytest.raises(SertoolError, match="bad run search"):
        tracker.find_runs(filter_string="metrics.x >>> 1")


def test_missing_store_and_experiment_are_not_found(tmp_path, store_uri):
    fresh = Tracker(f"sqlite:///{tmp_path / 'experiments' / 'mlflow.db'}", experiment="x")
    with pytest.raises(NotFound, match="no tracking store"):
        fresh.find_runs()
    assert not (tmp_path / "experiments").exists()  # reading created nothing
    with pytest.raises(NotFound, match="no experiment named 'nope'"):
        Tracker(store_uri).find_runs("nope")
    with pytest.raises(SertoolError, match="unknown run kind"):
        Tracker(store_uri).start("bogus")


def test_default_uri_and_experiment_name(tmp_path, monkeypatch):
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/experiments/mlflow.db"
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() == default_tracking_uri(tmp_path)
    assert resolve_tracking_uri("http://tracking.example:5000") == "http://tracking.example:5000"
    # the library takes values; only the CLI reads MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_NAME
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    assert resolve_tracking_uri() == default_tracking_uri(tmp_path)
    assert default_experiment_name(tmp_path / "store") == f"sertool-{tmp_path.name}"
    assert default_experiment_name(tmp_path / "podcast-v1.12") == "sertool-podcast-v1.12"
    assert predictions_path("Test3") == "predictions/Test3.csv"


def test_unreachable_server_fails_fast():
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(TrackingUnreachable, match=f"tracking server unreachable at {uri}"):
        check_reachable(uri)
    with pytest.raises(SertoolError, match="unreachable"):
        Tracker(uri)
    assert time.monotonic() - t0 < 10
