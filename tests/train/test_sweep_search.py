"""`sertool sweep --search optuna`: a recipe's [search] ranges as an Optuna study, every trial a child run,
hopeless trials pruned from their per-epoch dev figure, the best trial logged on the parent; the study
resumes, and its trials run in parallel processes too."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sertool.errors import BadInput
from sertool.tracking.names import (
    BEST_PARAM_PREFIX, BEST_RUN_TAG, BEST_TRIAL_TAG, LAUNCHER_TAG, PRUNED_TAG, STUDY_STORAGE_TAG, STUDY_TAG, TRIAL_TAG,
)
from sertool.train.recipes import load_recipe

SEARCH = '''proj_dim = 16
lstm_hidden = 16
epochs = 3
warmup_epochs = 1
samples_per_epoch = 128
batch_size = 32
num_workers = 0
device = "cpu"

[search]
lr = { low = 1e-5, high = 1e-2, log = true }
alpha = { low = 0.1, high = 1 }
pooling = { choices = ["asp", "mean"] }

[search.study]
seed = 0
startup_trials = 2
prune_warmup = 1
'''


@pytest.mark.slow  # eight tiny trainings, two of them in fresh processes
def test_search_prunes_logs_every_trial_and_its_best_then_resumes_in_parallel(frame_store, tmp_path, monkeypatch):
    import optuna
    from typer.testing import CliRunner

    from sertool.cli import app
    from sertool.tracking.tracker import Tracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = tmp_path / "search.toml"
    recipe.write_text(SEARCH)
    base = ["--store", str(frame_store.root), "--tracking-uri", uri, "sweep", str(recipe), "-e", "search-tests",
            "--search", "optuna", "--objective", "ccc_mean"]
    res = CliRunner().invoke(app, [*base, "--trials", "6"])
    assert res.exit_code == 0, res.output
    tracker = Tracker(uri, experiment="search-tests")
    (parent,) = tracker.find_runs(kind="sweep")
    children = tracker.find_runs(kind="train", parent_run_id=parent.run_id)
    assert sorted(int(c.tags[TRIAL_TAG]) for c in children) == list(range(6))  # every trial a child run, once

    study = optuna.load_study(study_name=parent.tags[STUDY_TAG], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(parent.tags[STUDY_STORAGE_TAG])))
    assert parent.tags[STUDY_STORAGE_TAG] == str(tmp_path / "optuna.journal")  # beside the tracking store
    states = {t.number: t.state.name for t in study.trials}
    pruned = [c for c in children if c.tags.get(PRUNED_TAG)]
    assert pruned, states  # the median rule stopped some trial after its first epochs
    for c in children:
        trial = int(c.tags[TRIAL_TAG])
        if c.tags.get(PRUNED_TAG):  # marked: a tag saying why, KILLED, no checkpoint, PRUNED in the study
            assert c.status == "KILLED" and states[trial] == "PRUNED" and "below the median" in c.tags[PRUNED_TAG]
            assert "checkpoint" not in tracker.list_artifacts(c.run_id)
        else:
            assert c.status == "FINISHED" and states[trial] == "COMPLETE"
            assert c.params["select"] == "ccc"  # each trial keeps its checkpoint by the objective

    best = study.best_trial
    child = tracker.get_run(parent.tags[BEST_RUN_TAG])
    assert int(child.tags[TRIAL_TAG]) == best.number == int(parent.tags[BEST_TRIAL_TAG])
    assert best.value == child.metrics["best_dev_ccc_mean"] == parent.metrics["best_dev_ccc_mean"]
    assert float(parent.tags[BEST_PARAM_PREFIX + "lr"]) == pytest.approx(best.params["lr"])
    assert math.isclose(float(child.params["lr"]), best.params["lr"], rel_tol=1e-12)
    assert f"best: trial {best.number} (run {child.run_id}): ccc_mean {best.value:.4f}" in res.output
    assert len(tracker.load_table(parent.run_id, "search_trials.csv")) == 6

    # the study resumes with the sweep: two more trials, each in its own process
    res = CliRunner().invoke(app, [*base, "--resume", parent.run_id, "--trials", "8", "--parallel", "2",
                                   "--devices", "cpu"])
    assert res.exit_code == 0, res.output
    assert [p.run_id for p in tracker.find_runs(kind="sweep")] == [parent.run_id]
    children = tracker.find_runs(kind="train", parent_run_id=parent.run_id)
    assert sorted(int(c.tags[TRIAL_TAG]) for c in children) == list(range(8))
    new = [c for c in children if int(c.tags[TRIAL_TAG]) >= 6]
    assert all(c.tags[LAUNCHER_TAG] == "pool" and c.status in ("FINISHED", "KILLED") for c in new)
    study = optuna.load_study(study_name=parent.tags[STUDY_TAG], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(parent.tags[STUDY_STORAGE_TAG])))
    assert len(study.trials) == 8 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


def test_a_killed_trial_is_asked_again_with_its_values(tmp_path):
    """A trial a kill stopped (FAIL, interrupted) is asked again, once, with the same values; it does
    not count toward the trials, a trial that failed on its own does."""
    from sertool.train.search import Search, parse_search

    path = tmp_path / "r.toml"
    spec = parse_search(path, "", {"lr": {"low": 1e-5, "high": 1e-2, "log": True}, "pooling": {"choices": ["asp", "mean"]}})
    search = Search(spec, "ccc_mean", 4, str(tmp_path / "optuna.journal"), "s")
    first, second = search.ask(), search.ask()
    search.tell(first.number, 0.5)
    search.tell(second.number, state="FAIL", interrupted=True)
    assert search.counted() == 1
    again = Search(spec, "ccc_mean", 4, str(tmp_path / "optuna.journal"), "s")  # a resumed sweep's
    assert again.requeue_interrupted() == 1 and again.requeue_interrupted() == 0  # asked for once
    redo = again.ask()
    assert redo.params == second.params and redo.number == 2
    again.tell(redo.number, state="FAIL", reason="NaN")
    assert again.counted() == 2 and again.requeue_interrupted() == 0


def _bad(tmp_path, text: str) -> BadInput:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(BadInput) as e:
        load_recipe(path)
    return e.value


def test_search_tables_are_checked_with_file_and_line(tmp_path):
    (tmp_path / "ok.toml").write_text(SEARCH)
    spec = load_recipe(tmp_path / "ok.toml").search
    assert [p.describe() for p in spec.params] == ["lr in [1e-05, 0.01] (log)", "alpha in [0.1, 1]",
                                                   "pooling in ['asp', 'mean']"]
    assert (spec.seed, spec.startup_trials, spec.prune_warmup, spec.pruner) == (0, 2, 1, "median")
    e = _bad(tmp_path, 'epochs = 2\n[search]\nlr = { low = 1e-3, high = 1e-5 }\n')
    assert (e.row, e.field) == (3, "search.lr") and "below high" in e.message
    e = _bad(tmp_path, '[search]\nlr = { low = 0, high = 1e-3, log = true }\n')
    assert "log range needs low > 0" in e.message
    e = _bad(tmp_path, '[search]\nlrr = { low = 0, high = 1 }\n')
    assert e.field == "search.lrr" and "unknown option" in e.message
    e = _bad(tmp_path, '[search]\npooling = { low = 0, high = 1 }\n')
    assert "not a number option" in e.message
    e = _bad(tmp_path, '[search]\npooling = { choices = ["asp", "max"] }\n')
    assert "'max' is not one of" in e.message
    e = _bad(tmp_path, '[search]\nlr = { low = 1e-5, high = 1e-3 }\n[search.study]\nobjective = "ccc"\n')
    assert (e.row, e.field) == (4, "search.study.objective")


def test_search_options_are_refused_before_anything_starts(frame_store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sertool.cli import app

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = tmp_path / "search.toml"
    recipe.write_text(SEARCH)
    base = ["--store", str(frame_store.root), "--tracking-uri", uri, "sweep", str(recipe)]
    for args, line in (
        (["--search", "optuna"], "error: --trials: how many trials"),
        (["--search", "optuna", "--trials", "2", "--set", "lr=1e-3"], "error: --lr: the recipe's search varies it"),
        (["--trials", "2"], "error: --trials: only with --search optuna"),
        ([], "has no [sweep] table (it has a [search]: add --search optuna)"),
        (["--search", "optuna", "--trials", "2", "--devices", "cpu"], "error: --devices: places parallel children"),
    ):
        res = CliRunner().invoke(app, [*base, *args])
        assert res.exit_code == 2 and line in res.output and res.output.count("\n") == 1, (args, res.output)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "experiments").exists()  # nothing started
    res = CliRunner().invoke(app, [*base, "--search", "optuna", "--dry-run"])
    assert res.exit_code == 0 and "lr" in res.output and "[1e-05, 0.01] (log)" in res.output, res.output
    shipped = Path(__file__).resolve().parents[2] / "experiments" / "tiny-search.toml"
    res = CliRunner().invoke(app, ["sweep", str(shipped), "--search", "optuna", "--dry-run"])
    assert res.exit_code == 0 and "['asp', 'mean']" in res.output and "after epoch 2" in res.output, res.output

