"""The same `sertool train` command under torchrun with 2 CPU processes: DDP over gloo, one MLflow run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sertool.tracking.tracker import Tracker


@pytest.mark.slow  # two fresh processes importing torch and mlflow: ~25 s on a small machine
def test_train_under_torchrun_two_processes(frame_store, tracking_uri, tracker):
    tracker.experiment_id("ddp-tests", create=True)  # the store's tables exist before both ranks start
    sertool = Path(sys.executable).parent / "sertool"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
        str(sertool), "--store", str(frame_store.root), "train", "--experiment", "ddp-tests", "--run-name", "ddp",
        "--proj-dim", "16", "--lstm-hidden", "16", "--epochs", "2", "--warmup-epochs", "0", "--batch-size", "32",
        "--samples-per-epoch", "128", "--lr", "3e-3", "--device", "cpu", "--num-workers", "0",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    runs = Tracker(tracking_uri, experiment="ddp-tests").find_runs(kind="train")
    assert len(runs) == 1, "only rank 0 logs"
    (run,) = runs
    assert run.status == "FINISHED"
    assert run.params["data.world_size"] == "2"
    assert {"best_dev_f1_macro", "best_dev_ccc_mean", "train_loss"} <= set(run.metrics)
    # each epoch's 128 samples were split between the two ranks and summed back for the log
    assert run.metrics["train_samples"] == 128
    assert "checkpoint/model.safetensors" in tracker.list_artifacts(run.run_id, "checkpoint")
    assert run.run_id in res.stdout  # rank 0 printed the result table
