"""`sertool report table1|table2` from real (tiny) sweeps made with the paper's recipes' shape: every
grid point the sweep trained fills its row with that run's own figures, the points it did not train stay
blank, the ablation's test set (Test-Development) fills the test columns, and the Markdown table is
logged to the sweep's parent run."""

from __future__ import annotations

import csv
import io
import shutil

import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.tracking.tracker import Tracker

SMALL = ('proj_dim = 32\nlstm_hidden = 32\nepochs = 1\nwarmup_epochs = 0\nsamples_per_epoch = 64\n'
         'batch_size = 32\nnum_workers = 0\ndevice = "cpu"\nlr = 3e-3\n')


def _csv(output: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(output)))


@pytest.fixture
def env(frame_store, tracking_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    store = tmp_path / "store"
    shutil.copytree(frame_store.root, store)  # the recipe adds a split scheme: keep the shared store as it is
    return ["--store", str(store)], Tracker(tracking_uri, experiment="report-tests")


def test_report_table1_from_an_ablation_sweep(env, tmp_path):
    args, tracker = env
    recipe = tmp_path / "table1.toml"
    recipe.write_text(SMALL + 'splits = "paper-ablation"\n\n[scheme]\nfrom = "Train"\nholdout = 0.15\n'
                      'by = "speaker"\nseed = 0\n\n[sweep]\nname = "table1"\n'
                      'grid = { alpha = [0.0, 1.0], beta = [0.0, 0.25] }\nexclude = [{ alpha = 0.0, beta = 0.0 }]\n')
    res = CliRunner().invoke(app, [*args, "sweep", str(recipe), "-e", "report-tests"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*args, "report", "table1", "-e", "report-tests", "--format", "csv"])
    assert res.exit_code == 0, res.output
    header, *rows = _csv(res.output)
    assert header == ["alpha", "beta", "val macro-F1", "val mean CCC", "test macro-F1", "test mean CCC", "run"]
    assert len(rows) == 24  # the paper's 5 x 5 grid less alpha = beta = 0
    (parent,) = tracker.find_runs(kind="sweep")
    runs = {(float(r.params["alpha"]), float(r.params["beta"])): r
            for r in tracker.find_runs(kind="train", parent_run_id=parent.run_id)}
    assert set(runs) == {(0.0, 0.25), (1.0, 0.0), (1.0, 0.25)}
    filled = {(float(r[0]), float(r[1])): r for r in rows if r[6]}
    assert set(filled) == set(runs)
    for key, row in filled.items():
        run = runs[key]
        assert row[6] == run.name
        assert float(row[2]) == pytest.approx(run.metrics["best_dev_f1_macro"], abs=1e-4)
        assert float(row[3]) == pytest.approx(run.metrics["best_dev_ccc_mean"], abs=1e-4)
        # the corpus's Development was kept out of training and scored as the test set
        assert run.params["splits"] == "paper-ablation"
        assert float(row[4]) == pytest.approx(run.metrics["test_development_f1_macro"], abs=1e-4)
        assert row[5] != ""
    assert all(r[2:] == ["", "", "", "", ""] for r in rows if (float(r[0]), float(r[1])) not in runs)
    assert "report_table1.md" in tracker.list_artifacts(parent.run_id)


def test_report_table2_lists_each_fine_tune(env, tiny_run, tmp_path):
    args, tracker = env
    recipe = tmp_path / "task1.toml"
    recipe.write_text(SMALL + f'stage = "task1"\ninit_from = "{tiny_run.run_id}"\nalpha = 0.0\nbeta = 1.0\n'
                      'select = "f1"\no_clips = "exclude"\n\n[sweep]\nname = "task1"\nruns = [\n'
                      '  { lr = 1e-3, class_weights = false, run_name = "t1-plain" },\n'
                      '  { lr = 1e-5, class_weights = true, run_name = "t1-weighted" },\n]\n')
    res = CliRunner().invoke(app, [*args, "sweep", str(recipe), "-e", "report-tests"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*args, "report", "table2", "-e", "report-tests", "--format", "markdown"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("| t1-")]
    assert [line.split("|")[1].strip() for line in lines] == ["t1-plain", "t1-weighted"]
    weighted = [c.strip() for c in lines[1].split("|")[1:-1]]
    run = tracker.find_runs(filter_string="attributes.run_name = 't1-weighted'", kind="train")[0]
    assert weighted[1:4] == ["1e-05", "yes", "1"]
    assert float(weighted[4]) == pytest.approx(run.metrics["best_dev_f1_macro"], abs=1e-4)
    assert weighted[6] == "0.3995"  # the paper's figure stands beside the run that matches its variant (3)
    assert [c.strip() for c in lines[0].split("|")[1:-1]][6] == ""
    assert "challenge baseline" in res.output and "0.329" in res.output
