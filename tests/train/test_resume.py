"""A killed training run goes on with `sertool train --resume RUN` in the same MLflow run and ends with
exactly the figures of an uninterrupted run of the same seed (subprocesses, kill -9 mid-epoch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


ARGS = ["train", "--epochs", "8", "--warmup-epochs", "1", "--proj-dim", "32", "--lstm-hidden", "32", "--batch-size", "16",
        "--lr", "3e-3", "--min-lr", "1e-5", "--num-workers", "0", "--device", "cpu", "--experiment", "resume-tests",
        "--set", "dropout=0.2"]


def _sertool(frame_store, uri: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "SERTOOL_DEBUG": "0"}
    cmd = [sys.executable, "-c", "from sertool.cli import main; main()",
           "--store", str(frame_store.root), "--tracking-uri", uri, *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_uninterrupted_figures(frame_store, tmp_path):
    from sertool.tracking.names import RESUME_TAG
    from sertool.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="resume-tests")
    tracker.experiment_id(create=True)  # the database exists before two processes open it

    proc = _sertool(frame_store, uri, *ARGS, "--run-name", "killed", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        run = None
        while time.monotonic() < deadline and proc.poll() is None:  # two epochs done: kill within the third
            runs = [r for r in tracker.find_runs(kind="train") if r.name == "killed"]
            if runs and len(tracker.metric_steps(runs[0].run_id, "train_loss")) >= 2:
                run = runs[0]
                time.sleep(0.05)
                break
            time.sleep(0.05)
        assert run is not None and proc.poll() is None, proc.communicate()[1][-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = Path(tracker.get_run(run.run_id).tags[RESUME_TAG])
    assert state.is_file() and tracker.get_run(run.run_id).status == "RUNNING"
    done_before = len(tracker.metric_steps(run.run_id, "train_loss"))
    assert 2 <= done_before < 8

    resumed = _sertool(frame_store, uri, "train", "--resume", "killed", "--experiment", "resume-tests", cwd=tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    whole = _sertool(frame_store, uri, *ARGS, "--run-name", "whole", cwd=tmp_path)
    out_w, err_w = whole.communicate(timeout=300)
    assert whole.returncode == 0, err_w[-3000:]
    assert "INFO mlflow" not in err + err_w  # MLflow's own INFO lines stay quiet without --verbose

    runs = {r.name: r for r in tracker.find_runs(kind="train")}
    assert sorted(runs) == ["killed", "whole"]  # resuming made no new run
    killed, ref = runs["killed"], runs["whole"]
    assert killed.run_id == run.run_id and killed.status == "FINISHED"
    for name in ("best_dev_f1_macro", "best_dev_ccc_mean", "best_dev_ccc_valence", "best_epoch"):
        assert killed.metrics[name] == ref.metrics[name], name
    client = tracker.client
    for key in ("train_loss", "dev_ccc_mean", "lr"):
        a = [(m.step, m.value) for m in client.get_metric_history(killed.run_id, key)]
        b = [(m.step, m.value) for m in client.get_metric_history(ref.run_id, key)]
        assert sorted(a) == sorted(b), key  # every epoch once, with the uninterrupted run's value
    assert not state.exists()  # a finished run leaves no resume state behind


def test_resume_refuses_a_finished_run_and_extra_options(frame_store, tmp_path, tiny_run, tracking_uri):
    from typer.testing import CliRunner

    from sertool.cli import app

    base = ["--store", str(frame_store.root), "--tracking-uri", tracking_uri, "train"]
    res = CliRunner().invoke(app, [*base, "--resume", tiny_run.run_id, "--experiment", "train-tests"])
    assert res.exit_code == 2 and "FINISHED: nothing to resume" in res.output, res.output
    res = CliRunner().invoke(app, [*base, "--resume", tiny_run.run_id, "--epochs", "3"])
    assert res.exit_code == 2 and "--resume: a resumed run keeps its own config; drop --epochs" in res.output, res.output


def test_a_killed_run_is_marked_failed_and_offered_for_resume(frame_store, tmp_path):
    """kill -9 leaves a run RUNNING on the server; the next `sertool runs` (or train) sees its process
    is gone, marks it FAILED and says how to resume; SIGTERM ends a run like Ctrl-C (KILLED)."""
    from typer.testing import CliRunner

    from sertool.cli import app
    from sertool.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="resume-tests")
    tracker.experiment_id(create=True)
    for name, sig in (("term", signal.SIGTERM), ("nine", signal.SIGKILL)):  # (a new run would reap "nine")
        proc = _sertool(frame_store, uri, *ARGS, "--run-name", name, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                runs = [r for r in tracker.find_runs(kind="train") if r.name == name]
                if runs and tracker.metric_steps(runs[0].run_id, "train_loss"):
                    break
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            os.kill(proc.pid, sig)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        if sig == signal.SIGTERM:
            assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
    runs = {r.name: r for r in tracker.find_runs(kind="train")}
    assert runs["nine"].status == "RUNNING" and runs["term"].status == "KILLED"
    res = CliRunner().invoke(app, ["--tracking-uri", uri, "runs", "--experiment", "resume-tests"])
    assert res.exit_code == 0, res.output
    assert f"run nine ({runs['nine'].run_id[:8]}) was RUNNING but its process is gone" in res.output
    assert f"sertool train --resume {runs['nine'].run_id[:8]}" in res.output
    after = {r.name: r for r in tracker.find_runs(kind="train")}
    assert after["nine"].status == "FAILED" and after["term"].status == "KILLED"
    assert "is gone" in after["nine"].tags["sertool.orphaned"]
