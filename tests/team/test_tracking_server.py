"""Training, sweeps and ensembles against a real PostgreSQL-backed MLflow server, and the server dying mid-run.

The commands run exactly as a user types them, with only `MLFLOW_TRACKING_URI` pointing at the server;
results are read back through `Tracker` (artifacts through the server's proxy). The server is then
killed while a `sertool train` subprocess is in its epochs: the command must stop with one clear
"tracking server unreachable" line (exit 2), leave the feature store byte-identical, and, once the
server is back, a rerun must complete.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sertool.cli import app
from team_servers import TINY_TRAIN, tree_digest, wait_for

pytestmark = pytest.mark.slow  # starts PostgreSQL and MLflow servers (~20 s each on two busy cores)


def sertool(*args: str):
    return CliRunner().invoke(app, list(args))


def test_train_sweep_and_ensemble_on_postgres_server(server_env, frame_store, tmp_path):
    from sertool.tracking.tracker import Tracker

    store = str(frame_store.root)
    res = sertool("--store", store, "train", "-e", "team", "--epochs", "2", "--run-name", "single", *TINY_TRAIN)
    assert res.exit_code == 0, res.output
    recipe = tmp_path / "grid.toml"
    recipe.write_text('stage = "pretrain"\nepochs = 1\n\n[sweep]\nname = "grid"\ngrid = { alpha = [0.25, 0.75] }\n')
    res = sertool("--store", store, "sweep", str(recipe), "-e", "team", "--device", "cpu", "--num-workers", "0",
                  "--set", "proj_dim=16", "--set", "lstm_hidden=16", "--set", "samples_per_epoch=64",
                  "--set", "batch_size=32")
    assert res.exit_code == 0, res.output
    res = sertool("--store", store, "ensemble", "--task", "2", "--top", "2", "-e", "team",
                  "--out", str(tmp_path / "submission.csv"))
    assert res.exit_code == 0, res.output

    tracker = Tracker(server_env.uri, experiment="team")
    runs = tracker.find_runs(max_results=50)
    kinds = sorted(r.kind for r in runs)
    assert kinds == ["ensemble", "sweep", "train", "train", "train"], kinds
    assert {r.status for r in runs} == {"FINISHED"}
    sweep = next(r for r in runs if r.kind == "sweep")
    children = [r for r in runs if r.parent_run_id == sweep.run_id]
    assert sorted(r.params.get("alpha") for r in children) == ["0.25", "0.75"]
    single = next(r for r in runs if r.name == "single")
    assert math.isfinite(single.metrics["best_dev_ccc_mean"]) and single.metrics["best_epoch"] in (1.0, 2.0)
    # Artifacts went through the server's proxy into its local artifact destination, and read back the same way.
    dev = tracker.load_predictions(single.run_id, "Development")
    assert len(dev) == 24 and "valence" in dev.columns
    stored = list(server_env.artifacts.rglob("Development.csv"))
    assert len(stored) >= 4  # the single run, two sweep children, the ensemble
    assert (tmp_path / "submission.csv").read_text().startswith("FileName,EmoAct,EmoVal,EmoDom")


def _cli() -> list[str]:
    return [str(Path(sys.executable).with_name("sertool"))]


def test_server_dies_mid_run_then_comes_back(server_env, frame_store):
    from sertool.tracking.tracker import Tracker

    store = frame_store.root
    before = tree_digest(store)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*_cli(), "--store", str(store), "train", "-e", "team-down", "--epochs", "300", "--run-name", "long",
         *TINY_TRAIN],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        tracker = Tracker(server_env.uri, experiment="team-down")

        def logging_epochs():
            if proc.poll() is not None:
                return True
            try:
                runs = tracker.find_runs(max_results=5)
            except Exception:  # experiment not created yet
                return None
            return any(r.status == "RUNNING" and "dev_ccc_mean" in r.metrics for r in runs)

        assert wait_for(logging_epochs, timeout=60), "the training run never logged an epoch"
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        server_env.kill()
        t0 = time.monotonic()
        _, stderr = proc.communicate(timeout=90)
        died_after = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "tracking server unreachable" in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr
    assert died_after < 60
    assert tree_digest(store) == before

    # With the server down, commands fail before any work: within seconds, the store untouched.
    for args in (["train", "-e", "team-down", "--epochs", "2", *TINY_TRAIN],
                 ["ensemble", "--task", "2", "-e", "team-down"]):
        t0 = time.monotonic()
        res = sertool("--store", str(store), *args)
        assert res.exit_code == 2, res.output
        assert "tracking server unreachable" in res.output and server_env.uri in res.output
        assert time.monotonic() - t0 < 10
    assert tree_digest(store) == before

    server_env.start()
    res = sertool("--store", str(store), "train", "-e", "team-down", "--epochs", "1", "--run-name", "again",
                  *TINY_TRAIN)
    assert res.exit_code == 0, res.output
    again = Tracker(server_env.uri, experiment="team-down").resolve_run("again")
    assert again.status == "FINISHED" and "best_dev_ccc_mean" in again.metrics
    assert tree_digest(store) == before
