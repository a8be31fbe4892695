"""Sweeps through submitit (its local executor runs real processes: the Slurm path without a cluster),
what a Slurm sweep is refused for, the sbatch options it asks for, and the launch options' one-line
refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sertool.errors import InvalidOption
from sertool.tracking.names import JOB_ID_TAG, LAUNCHER_TAG, LOG_TAG, PID_TAG, SWEEP_KEY_TAG

GRID = ('proj_dim = 16\nlstm_hidden = 16\nepochs = 2\nwarmup_epochs = 1\nsamples_per_epoch = 64\nbatch_size = 32\n'
        'lr = 3e-3\nnum_workers = 0\ndevice = "cpu"\n\n[sweep]\nname = "two"\ngrid = { alpha = [0.25, 1.0] }\n')


def _cli(sweep_store, uri: str, recipe: Path, *args: str):
    from typer.testing import CliRunner

    from sertool.cli import app

    return CliRunner().invoke(app, ["--store", str(sweep_store.root), "--tracking-uri", uri, "sweep", str(recipe),
                                    *args])


@pytest.mark.slow  # two submitit jobs, each a fresh interpreter importing torch and mlflow
def test_submitit_local_runs_each_child_as_its_own_process_under_the_parent(sweep_store, tmp_path, monkeypatch):
    from sertool.tracking.tracker import Tracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (recipe := tmp_path / "two.toml").write_text(GRID)
    res = _cli(sweep_store, uri, recipe, "-e", "submitit", "--launcher", "local", "--parallel", "2", "--time", "30")
    assert res.exit_code == 0, res.output
    tracker = Tracker(uri, experiment="submitit")
    (parent,) = tracker.find_runs(kind="sweep")
    children = tracker.find_runs(kind="train", parent_run_id=parent.run_id)
    assert len(children) == 2 and len({c.tags[SWEEP_KEY_TAG] for c in children}) == 2
    assert all(c.status == "FINISHED" and c.tags[LAUNCHER_TAG] == "local" for c in children)
    pids = {c.tags[PID_TAG] for c in children}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two processes, neither this one
    for c in children:  # each job's log, linked from its run, holds that job's output
        log = Path(c.tags[LOG_TAG])
        assert log.is_file() and log.parent.name == "submitit" and c.tags[JOB_ID_TAG] in log.name
    assert parent.tags[LAUNCHER_TAG] == "local" and parent.status == "FINISHED"


def test_slurm_refuses_a_sqlite_tracking_store_before_submitting(sweep_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (recipe := tmp_path / "two.toml").write_text(GRID)
    res = _cli(sweep_store, uri, recipe, "--launcher", "slurm", "--partition", "gpu", "--gpus-per-task", "1")
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: --launcher slurm: the tracking URI sqlite:///") and res.output.count("\n") == 1
    assert "a file on this machine" in res.output and "track to a server" in res.output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "experiments").exists()  # nothing submitted


def test_slurm_jobs_ask_for_what_the_flags_say():
    """The options reach sbatch as submitit writes its script (no cluster needed to render it)."""
    from submitit.slurm.slurm import _make_sbatch_string

    from sertool.train.cluster import SlurmOptions, minutes, parse_options, slurm_parameters

    opts = SlurmOptions("gpu", 1, "4:00:00", parse_options(["mem=64G", "reservation=paper"]))
    script = _make_sbatch_string(command="python -m x", folder="/shared/logs", **slurm_parameters(opts, minutes(opts.time)))
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1", "#SBATCH --time=240", "#SBATCH --mem=64G",
                 "#SBATCH --reservation=paper", "#SBATCH --ntasks-per-node=1"):
        assert line in script, line
    assert [minutes(t) for t in ("90", "30:00", "4:00:00", "1-12:00:00")] == [90, 30, 240, 2160]
    with pytest.raises(InvalidOption):
        parse_options(["mem"])


def test_launch_options_are_refused_in_one_line_before_anything_starts(sweep_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (recipe := tmp_path / "two.toml").write_text(GRID)
    for args, line in (
        (["--parallel", "3", "--devices", "cpu", "--per-device", "2"],
         "error: --parallel: 3 children at once need 3 device slots; cpu x --per-device 2 gives 2"),
        (["--parallel", "0"], "error: --parallel: must be >= 1"),
        (["--parallel", "2", "--devices", "tpu"], "error: --devices: 'tpu': use cpu, cuda, or cuda:0,cuda:1,..."),
        (["--partition", "gpu"], "error: --partition: only with --launcher slurm"),
        (["--launcher", "local", "--time", "soon"], "error: --time: 'soon': use MINUTES, H:MM:SS or D-HH:MM:SS"),
        (["--resume", "nosuchsweep"], "error: no tracking store at sqlite:///"),
    ):
        res = _cli(sweep_store, uri, recipe, *args)
        assert res.exit_code == 2 and res.output.startswith(line) and res.output.count("\n") == 1, (args, res.output)
    assert not (tmp_path / "experiments").exists()


def test_sweep_help_shows_the_table_names():
    """Rich markup must not eat `[sweep]` and `[search]` in the help (they are escaped in the source)."""
    from typer.testing import CliRunner

    from sertool.cli import app

    res = CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "TOML recipe with a [sweep] table (a grid), or a [search] table" in res.output
    assert "Search the recipe's [search] ranges" in res.output
