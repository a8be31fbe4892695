"""`sertool ensemble --method stack`: a meta-model over the members, cross-fitted on dev.

- Cross-fitting never scores a clip with a meta-model that saw it: every logged dev prediction is
  rebuilt here, fold by fold, from a meta-model fit on the other folds only; and on members of pure
  noise, where an in-sample fit looks excellent, the logged figures stay at chance.
- On complementary members (each trustworthy on other classes or another rating range) stacking beats
  or matches the best member, and on classes it beats the average.
- The CLI end to end: params, the meta-model as plain JSON, the submission is that model on Test3;
  bad options are one line, exit 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.ensemble.build import EnsembleConfig, build_ensemble
from sertool.ensemble.spec import EnsembleSpec
from sertool.ensemble.stack import MetaModel, cross_fit
from sertool.errors import InvalidOption, SertoolError
from sertool.labels import ATTRIBUTES, CLASSES
from sertool.metrics import CCC, F1, ccc

PROBS = [f"p_{c}" for c in CLASSES]


def _features(world, names: list[str], target: str, split: str = "Development") -> np.ndarray:
    """The meta-model's inputs as the test reads them: the members' logged tables, clips in world order."""
    ids = world.dev_ids if split == "Development" else world.test3_ids
    tables = [world.preds[n][split].set_index("clip_id").loc[ids] for n in names]
    if target == "class":
        return np.hstack([np.log(np.clip(t[PROBS].to_numpy(), 1e-6, 1)) for t in tables])
    return np.column_stack([t[target].to_numpy() for t in tables])


def _sklearn(target: str, x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """sklearn's own meta-model on (x, y), predicting x_new: (N, 8) probabilities or (N,) ratings."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if target != "class":
        return np.clip(Ridge(alpha=1.0).fit(x, y).predict(x_new), 1, 7)
    m = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    out = np.zeros((len(x_new), len(CLASSES)))
    out[:, m.classes_] = m.predict_proba(x_new)
    return out


def _truth(world, target: str) -> tuple[np.ndarray, np.ndarray]:
    if target == "class":
        return world.truth_class, world.truth_class >= 0
    y = world.truth_attrs[:, ATTRIBUTES.index(target)]
    return y, ~np.isnan(y)


@pytest.mark.parametrize("task", [2, 1])
def test_cross_fitting_never_scores_a_clip_with_a_meta_model_that_saw_it(world, tracker, tmp_path, task):
    result = build_ensemble(world.layout, EnsembleConfig(task=task, method="stack", top=3, folds=4, experiment="ens",
                                                         stages=("task2",), name=f"stack-leak-t{task}",
                                                         filter_string="attributes.run_name LIKE 'ft-%'",
                                                         out=tmp_path / "s.csv"), tracker)
    names = {v: k for k, v in world.run_ids.items()}
    logged = tracker.load_predictions(result.run_id, "Development").set_index("clip_id").loc[world.dev_ids]
    for target, fit in result.stacks.items():
        members = [names[m] for m in result.spec.members[target]]
        x, (y, rows) = _features(world, members, target), _truth(world, target)
        assert set(fit.fold[rows]) == set(range(4)) and (fit.fold[~rows] == -1).all()
        got = logged[PROBS].to_numpy() if target == "class" else logged[target].to_numpy()
        for k in range(4):
            held = fit.fold == k
            train = rows & ~held  # the other folds' scored clips, and nothing else
            want = _sklearn(target, x[train], y[train], x[held])
            np.testing.assert_allclose(got[held], want, atol=1e-6, err_msg=f"{target} fold {k}")
        # the clips no figure scores (O and X for the classes) get the model kept for Test3
        if not rows.all():
            np.testing.assert_allclose(got[~rows], _sklearn(target, x[rows], y[rows], x[~rows]), atol=1e-6)
        # ... and the figure logged is the official one on those out-of-fold predictions
        run = tracker.get_run(result.run_id)
        figure = world.dev_f1(got) if target == "class" else world.dev_ccc(target, got)
        assert run.metrics[f"dev_{F1 if target == 'class' else CCC[target]}"] == pytest.approx(figure, abs=1e-9)
        in_sample = _sklearn(target, x[rows], y[rows], x)
        print(f"task {task} {target}: out-of-fold {figure:.4f}, in-sample would report "
              f"{world.dev_f1(in_sample) if target == 'class' else world.dev_ccc(target, in_sample):.4f}")


def test_on_members_of_pure_noise_the_logged_figures_stay_at_chance(world, tracker, log, make_predictions, tmp_path):
    """Eight members that know nothing: 64 log-probability inputs for 52 class-labelled clips, which an
    in-sample fit separates perfectly; out of fold, macro-F1 stays near chance (1/8)."""
    rng = np.random.default_rng(5)
    n = len(world.dev_ids)
    for i in range(8):
        tests = {s: world.preds["ft-a"][s] for s in ("Test3", "Test1")}
        dev = make_predictions(world.dev_ids, rng.uniform(1, 7, (n, 3)), rng.dirichlet(np.ones(8), n))
        log(f"noise-{i}", dev, tests, "noise")
    result = build_ensemble(world.layout, EnsembleConfig(task=1, method="stack", top=8, experiment="noise",
                                                         stages=("task2",), name="stack-noise", out=tmp_path / "n.csv"),
                            tracker)
    tables = [tracker.load_predictions(r, "Development").set_index("clip_id").loc[world.dev_ids]
              for r in result.spec.members["class"]]
    x = np.hstack([np.log(np.clip(t[PROBS].to_numpy(), 1e-6, 1)) for t in tables])
    y, rows = _truth(world, "class")
    in_sample = world.dev_f1(_sklearn("class", x[rows], y[rows], x))
    logged = tracker.get_run(result.run_id).metrics["dev_f1_macro"]
    print(f"noise members: in-sample macro-F1 {in_sample:.3f}, logged (out of fold) {logged:.3f}")
    assert in_sample > 0.95  # what a meta-model scored on its own fitting data would claim
    assert logged < 0.35 and logged == pytest.approx(result.dev_metrics[F1])


def test_cross_fit_of_ratings_from_pure_noise_is_no_better_than_chance():
    """Forty noise members of one attribute for 60 clips: ridge in-sample reaches a high CCC, the
    cross-fitted predictions do not."""
    rng = np.random.default_rng(1)
    y = rng.uniform(1.5, 6.5, 60)
    arrays = rng.uniform(1, 7, (40, 60))
    fit = cross_fit("arousal", [f"m{i}" for i in range(40)], arrays, y, np.ones(60, bool), 5, 0)
    in_sample, out = ccc(y, fit.model.predict(arrays.T)), ccc(y, fit.oof)
    print(f"40 noise members: in-sample CCC {in_sample:.3f}, out of fold {out:.3f}")
    assert in_sample > 0.6 and out < 0.2


def test_stacking_beats_the_members_where_they_are_complementary(world, tracker, log, make_predictions, tmp_path):
    """Classes: `lo` knows classes A-U (0-3) and, on the others, confidently names a wrong one of 4-7;
    `hi` the reverse. Either alone, or their average, is right about half the time; a meta-model learns
    whose columns to read. Arousal: `lo` is accurate below the middle of the range, `hi` above it."""
    rng = np.random.default_rng(9)
    n = len(world.dev_ids)
    cls = np.maximum(world.truth_class, 0)
    aro = world.truth_attrs[:, 0]
    tests = {s: world.preds["ft-a"][s] for s in ("Test3", "Test1")}
    for name, mine in (("lo", cls < 4), ("hi", cls >= 4)):
        guess = np.where(mine, cls, (cls + rng.integers(1, 4, n)) % 4 + (0 if name == "hi" else 4))
        logits = 4.0 * np.eye(8)[guess] + rng.normal(0, 0.5, (n, 8))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        good = aro < 4 if name == "lo" else aro >= 4
        attrs = world.truth_attrs + rng.normal(0, 1, (n, 3)) * np.where(good, 0.3, 1.5)[:, None]
        log(f"comp-{name}", make_predictions(world.dev_ids, np.clip(attrs, 1, 7), probs), tests, "complement")
    members = {name: tracker.load_predictions(run_id, "Development").set_index("clip_id").loc[world.dev_ids]
               for name, run_id in _runs(tracker, "complement").items()}
    singles_f1 = {m: world.dev_f1(t[PROBS].to_numpy()) for m, t in members.items()}
    singles_ccc = {m: world.dev_ccc("arousal", t["arousal"].to_numpy()) for m, t in members.items()}
    average_f1 = world.dev_f1(np.mean([t[PROBS].to_numpy() for t in members.values()], axis=0))
    cfg = dict(top=2, experiment="complement", stages=("task2",), out=tmp_path / "c.csv")
    t1 = build_ensemble(world.layout, EnsembleConfig(task=1, method="stack", name="comp-t1", **cfg), tracker)
    t2 = build_ensemble(world.layout, EnsembleConfig(task=2, method="stack", name="comp-t2", **cfg), tracker)
    stacked_f1, stacked_ccc = t1.dev_metrics[F1], t2.dev_metrics[CCC["arousal"]]
    print(f"classes: members {singles_f1}, average {average_f1:.3f}, stack (out of fold) {stacked_f1:.3f}")
    print(f"arousal: members {singles_ccc}, stack (out of fold) {stacked_ccc:.3f}")
    assert stacked_f1 > max(singles_f1.values()) + 0.2 and stacked_f1 > average_f1 + 0.2
    assert stacked_ccc >= max(singles_ccc.values())
    assert t1.reports["class"].best_single_dev == pytest.approx(max(singles_f1.values()))


def _runs(tracker, experiment: str) -> dict[str, str]:
    return {r.name: r.run_id for r in tracker.find_runs(experiment, kind="train")}


def invoke(world, *args: str):
    return CliRunner().invoke(app, ["--store", str(world.layout.root), "ensemble", "--experiment", world.experiment, *args])


def test_cli_stack_end_to_end_and_bad_options(world, tracker, cli_env, tmp_path):
    out = tmp_path / "stk.csv"
    res = invoke(world, "--method", "stack", "--top", "3", "--folds", "4", "--seed", "3", "--stages", "task2",
                 "--filter", "attributes.run_name LIKE 'ft-%'", "--name", "stk", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "stack (4-fold, out of fold)" in res.output
    (run,) = tracker.find_runs(world.experiment, "attributes.run_name = 'stk'", kind="ensemble")
    assert run.params["ensemble.method"] == "stack" and run.params["ensemble.folds"] == "4"
    assert run.params["ensemble.seed"] == "3"
    assert all(run.params[f"ensemble.meta.{a}"] == "ridge" for a in ATTRIBUTES)
    # The meta-models are plain numbers in ensemble.json; applied to the members' Test3 tables by hand,
    # they give the submission.
    spec_path = tracker.download_artifact(run.run_id, "ensemble.json", tmp_path / "spec")
    spec = EnsembleSpec.from_dict(json.loads(spec_path.read_text()))
    names = {v: k for k, v in world.run_ids.items()}
    rows = {r.split(",")[0][: -len(".wav")]: r.split(",")[1:] for r in out.read_text().splitlines()[1:]}
    for j, a in enumerate(ATTRIBUTES):
        meta = spec.meta[a]
        assert meta["model"] == "ridge" and len(meta["members"]) == 3 == len(meta["coef"])
        assert run.params[f"ensemble.members.{a}"] == ",".join(meta["members"])
        x = _features(world, [names[m] for m in meta["members"]], a, "Test3")
        want = np.clip(x @ np.array(meta["coef"]) + meta["intercept"], 1, 7)
        got = np.array([float(rows[c][j]) for c in world.test3_ids])
        np.testing.assert_allclose(got, want, atol=1e-5)

    store = ["--store", str(world.layout.root), "ensemble", "--experiment", world.experiment]
    bad = {
        ("--method", "stack", "--folds", "1"): "--folds: must be at least 2",
        ("--method", "stack", "--folds", "61", "--stages", "task2"): "--folds: 61 folds need at least 61 scored dev clips",
        ("--method", "stack", "--with-baseline", str(out)): "--with-baseline: cannot join a stacked ensemble",
    }
    for args, message in bad.items():
        res = CliRunner().invoke(app, [*store, *args, "--out", str(tmp_path / "bad.csv")])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], (args, res.output)


def test_meta_models_load_from_plain_json_and_refuse_a_bad_one():
    model = MetaModel("class", ["r1", "r2"], np.zeros((2, 16)), np.array([0.0, 1.0]), ["A", "N"])
    back = MetaModel.from_dict(json.loads(json.dumps(model.to_dict())))
    x = np.zeros((3, 16))
    np.testing.assert_allclose(back.predict(x), model.predict(x))
    p = back.predict(x)
    assert p.shape == (3, 8) and p[:, CLASSES.index("N")] == pytest.approx(np.e / (1 + np.e))
    with pytest.raises(SertoolError, match="does not fit its 2 member"):
        MetaModel.from_dict({**model.to_dict(), "coef": [[0.0] * 15] * 2})
    members = {"class": ["r1", "r2"]}
    with pytest.raises(SertoolError, match="no meta-model over the members of class"):
        EnsembleSpec(1, "stack", 2, members)
    spec = EnsembleSpec(1, "stack", 2, members, meta={"class": model.to_dict()})
    assert EnsembleSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).meta == spec.meta
    with pytest.raises(InvalidOption, match="folds: must be at least 2"):
        EnsembleConfig(method="stack", folds=0)
    assert EnsembleConfig(task=1, method="stack").top == 3
