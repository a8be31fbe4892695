"""Sweeps run their children in parallel processes (each child once, under one parent), stop them all on
Ctrl-C, take them down when killed with -9, and resume without training a child twice. Real
subprocesses, a real SQLite tracking store, the synthetic frame store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import pytest

from sertool.tracking.names import LAUNCHER_TAG, LOG_TAG, PID_TAG, SWEEP_KEY_TAG

LONG = 80
"""Epochs of the long children: enough that a kill lands mid-training on a fast machine too."""
pytestmark = pytest.mark.slow  # children are fresh interpreters importing torch and mlflow (seconds each)

TINY = ('proj_dim = 16\nlstm_hidden = 16\nwarmup_epochs = 1\nbatch_size = 32\nlr = 3e-3\nnum_workers = 0\n'
        'device = "cpu"\n')


def _sertool(sweep_store, uri: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "SERTOOL_DEBUG": "0"}
    cmd = [sys.executable, "-c", "from sertool.cli import main; main()",
           "--store", str(sweep_store.root), "--tracking-uri", uri, *args]
    # Ctrl-C as a terminal sends it: a shell without job control starts background jobs (a CI runner's
    # `make test &`) with SIGINT ignored, and Python keeps an inherited ignore, so give the sweep back the default.
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (its parent was killed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _overlapping(runs) -> int:
    return sum(1 for a, b in combinations(runs, 2) if a.start_time < b.end_time and b.start_time < a.end_time)


def test_parallel_children_run_once_each_and_together(sweep_store, tmp_path, monkeypatch):
    """A 4-child grid with --parallel 1 and --parallel 2 (both a pool of child processes): every child
    exactly once under its parent; with 2 slots the children overlap in time, with 1 they never do.
    The wall-time ratio is printed (run with -s), not asserted: the machine is shared."""
    from typer.testing import CliRunner

    from sertool.cli import app
    from sertool.tracking.tracker import Tracker

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per child: the ratio measures processes, not BLAS
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = tmp_path / "grid.toml"
    recipe.write_text(TINY + 'epochs = 1\nsamples_per_epoch = 32\n\n[sweep]\nname = "par"\n'
                      'grid = { alpha = [0.25, 0.5, 0.75, 1.0] }\n')
    seconds = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        res = CliRunner().invoke(app, ["--store", str(sweep_store.root), "--tracking-uri", uri, "sweep", str(recipe),
                                       "-e", f"parallel-{n}", "--parallel", str(n), "--devices", "cpu"])
        seconds[n] = time.perf_counter() - t0
        assert res.exit_code == 0, res.output
        tracker = Tracker(uri, experiment=f"parallel-{n}")
        (parent,) = tracker.find_runs(kind="sweep")
        children = tracker.find_runs(kind="train", parent_run_id=parent.run_id)
        assert len(children) == 4 and len({c.tags[SWEEP_KEY_TAG] for c in children}) == 4
        assert sorted(float(c.params["alpha"]) for c in children) == [0.25, 0.5, 0.75, 1.0]
        assert all(c.status == "FINISHED" and c.tags[LAUNCHER_TAG] == "pool" for c in children)
        assert all(Path(c.tags[LOG_TAG]).is_file() for c in children)  # each job's log, linked from its run
        assert len({c.tags[PID_TAG] for c in children} | {str(os.getpid())}) == 5  # a process each, not this one
        assert parent.status == "FINISHED"
        assert sorted(tracker.load_table(parent.run_id, "sweep_summary.csv").run_id) == sorted(c.run_id for c in children)
        assert (_overlapping(children) > 0) == (n == 2), [(c.start_time, c.end_time) for c in children]
    ratio = seconds[1] / seconds[2]
    print(f"\nparallel 1: {seconds[1]:.1f} s, parallel 2: {seconds[2]:.1f} s, speed-up {ratio:.2f}x "
          f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")


def test_kill_9_takes_the_children_down_and_resume_trains_each_child_once(sweep_store, tmp_path):
    """kill -9 of a --parallel 2 sweep while one child is mid-training: its children die with it (their
    runs marked), and `--resume PARENT` completes the grid: the finished children untouched (same runs,
    same end times), the killed one goes on in its own run, no child twice."""
    from sertool.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="kill9")
    tracker.experiment_id(create=True)
    recipe = tmp_path / "grid.toml"
    recipe.write_text(TINY + 'samples_per_epoch = 96\n\n[sweep]\nname = "kill9"\n'
                      f'grid = {{ epochs = [1, {LONG}] }}\n')  # a short child and a long one, side by side
    args = ["sweep", str(recipe), "-e", "kill9", "--parallel", "2"]
    proc = _sertool(sweep_store, uri, *args, cwd=tmp_path)
    done, mid, pids = [], [], []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            runs = tracker.find_runs(kind="train")
            done = [r for r in runs if r.status == "FINISHED"]
            mid = [r for r in runs if r.status == "RUNNING" and len(tracker.metric_steps(r.run_id, "train_loss")) >= 2]
            if len(done) >= 1 and mid:
                break
            time.sleep(0.1)
        assert proc.poll() is None and done and mid, proc.communicate()[1][-3000:]
        pids = _children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.2)
    assert pids and all(_gone(p) for p in pids), pids  # no child outlives its sweep
    (parent,) = tracker.find_runs(kind="sweep")
    before = {r.run_id: r for r in tracker.find_runs(kind="train")}
    finished = {i: (r.end_time, r.metrics) for i, r in before.items() if r.status == "FINISHED"}
    assert before[mid[0].run_id].status in ("KILLED", "FAILED")  # it marked its run as it died

    resumed = _sertool(sweep_store, uri, *args, "--resume", parent.run_id, cwd=tmp_path)
    out, err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, err[-3000:]
    assert "resumed:" in err and "go on in their own runs" in err

    assert [p.run_id for p in tracker.find_runs(kind="sweep")] == [parent.run_id]
    after = tracker.find_runs(kind="train", parent_run_id=parent.run_id)
    assert len(after) == 2 and len({r.tags[SWEEP_KEY_TAG] for r in after}) == 2  # each child once
    assert all(r.status == "FINISHED" for r in after)
    by_id = {r.run_id: r for r in after}
    for run_id, (end, metrics) in finished.items():  # untouched
        assert by_id[run_id].end_time == end and by_id[run_id].metrics == metrics
    assert mid[0].run_id in by_id  # the killed child went on in its own run
    steps = [m.step for m in tracker.client.get_metric_history(mid[0].run_id, "train_loss")]
    assert sorted(steps) == list(range(1, LONG + 1))  # every epoch logged once
    assert tracker.get_run(parent.run_id).status == "FINISHED"


def test_ctrl_c_stops_every_child_and_marks_it_killed(sweep_store, tmp_path):
    from sertool.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="ctrl-c")
    tracker.experiment_id(create=True)
    recipe = tmp_path / "grid.toml"
    recipe.write_text(TINY + 'epochs = 80\nsamples_per_epoch = 96\n\n[sweep]\nname = "ctrlc"\n'
                      'grid = { alpha = [0.5, 1.0] }\n')
    proc = _sertool(sweep_store, uri, "sweep", str(recipe), "-e", "ctrl-c", "--parallel", "2", cwd=tmp_path)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            runs = tracker.find_runs(kind="train")
            if len(runs) == 2 and all(tracker.metric_steps(r.run_id, "train_loss") for r in runs):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        pids = _children_of(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "Traceback" not in err, err[-3000:]
    assert all(_gone(p) for p in pids)
    runs = tracker.find_runs(kind="train")
    assert len(runs) == 2 and all(r.status == "KILLED" for r in runs), [(r.name, r.status) for r in runs]
    assert tracker.find_runs(kind="sweep")[0].status == "KILLED"
