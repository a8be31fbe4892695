"""A grid's children: known by their config's digest, a failed one recorded and reported while the
others go on (in this process: the launcher every sweep without --parallel uses)."""

from __future__ import annotations

import pytest

from sertool.errors import SertoolError
from sertool.tracking.names import SWEEP_KEY_TAG
from sertool.train.config import TrainConfig


def test_the_digest_names_what_a_config_trains_not_where():
    a = TrainConfig(alpha=0.5, device="cpu", num_workers=0, experiment="x")
    assert a.digest() == TrainConfig(alpha=0.5, device="cuda", num_workers=4, prefetch=2).digest()
    assert a.digest() != TrainConfig(alpha=0.25).digest() and len(a.digest()) == 16


def test_two_grid_points_of_one_config_are_refused(tmp_path):
    from sertool.train.recipes import load_recipe
    from sertool.train.sweep import plan_sweep

    path = tmp_path / "twins.toml"
    path.write_text('alpha = 0.5\n[sweep]\nruns = [{ alpha = 0.5 }, {}]\n')
    with pytest.raises(SertoolError, match="train the same config"):
        plan_sweep(load_recipe(path))


def test_a_failed_child_is_recorded_and_reported_and_the_others_go_on(frame_store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sertool.cli import app
    from sertool.tracking.tracker import Tracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = tmp_path / "grid.toml"
    recipe.write_text('proj_dim = 16\nlstm_hidden = 16\nepochs = 1\nwarmup_epochs = 0\nsamples_per_epoch = 64\n'
                      'batch_size = 32\nnum_workers = 0\ndevice = "cpu"\n\n[sweep]\nname = "one-fails"\n'
                      'runs = [{ encoders = "whisper,nosuch" }, {}]\n')
    res = CliRunner().invoke(app, ["--store", str(frame_store.root), "--tracking-uri", uri, "sweep", str(recipe),
                                   "-e", "fails"])
    assert res.exit_code == 1, res.output
    assert "failed: encoders=whisper,nosuch:" in res.output and "nosuch" in res.output
    assert "--resume" in res.output  # how to go on with it
    tracker = Tracker(uri, experiment="fails")
    (parent,) = tracker.find_runs(kind="sweep")
    (child,) = tracker.find_runs(kind="train", parent_run_id=parent.run_id)  # the failed one never made a run
    assert child.status == "FINISHED" and child.tags[SWEEP_KEY_TAG]
    assert parent.status == "FAILED"
    summary = tracker.load_table(parent.run_id, "sweep_summary.csv")
    assert list(summary.status) == ["FAILED (no run)", "FINISHED"] and "nosuch" in summary.error[0]

    again = CliRunner().invoke(app, ["--store", str(frame_store.root), "--tracking-uri", uri, "sweep", str(recipe),
                                     "-e", "fails"])  # the same sweep again, without --resume
    assert f"note: sweep one-fails ({parent.run_id[:8]}) stopped before its end (FAILED)" in again.output
    assert f"--resume {parent.run_id[:8]}" in again.output
