"""`sertool ensemble` on runs with known predictions: who is chosen, what is averaged, what is written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.ensemble.build import EnsembleConfig, build_ensemble
from sertool.errors import BadInput, NotFound, StoreMismatch
from sertool.labels import ATTRIBUTES, CLASSES
from sertool.metrics import CCC, F1, best
from sertool.metrics import dev as dev_name
from sertool.tracking.names import KIND_TAG

PROBS = [f"p_{c}" for c in CLASSES]


def invoke(world, *args: str):
    return CliRunner().invoke(app, ["--store", str(world.layout.root), "ensemble", "--experiment", world.experiment, *args])


def best_by(world, score, k: int) -> list[str]:
    """Run names with the k best dev scores, as the test computes them from the logged tables."""
    scores = {name: score(p["Development"]) for name, p in world.preds.items()}
    return sorted(scores, key=scores.get, reverse=True)[:k]


def ensemble_run(tracker, name: str):
    (run,) = tracker.find_runs(filter_string=f"attributes.run_name = '{name}'", kind="ensemble")
    return run


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_top_k_takes_the_best_runs_of_each_attribute(world, tracker, cli_env):
    res = invoke(world, "--task", "2", "--top", "2", "--name", "top2")
    assert res.exit_code == 0, res.output
    run = ensemble_run(tracker, "top2")
    assert run.tags[KIND_TAG] == "ensemble"
    designed = {"arousal": {"ft-a", "ft-d"}, "valence": {"ft-b", "ft-d"}, "dominance": {"ft-c", "ft-e"}}
    for a in ATTRIBUTES:
        expected = best_by(world, lambda df: world.dev_ccc(a, df[a]), 2)
        assert set(expected) == designed[a]  # the noise design holds on this data
        chosen = run.params[f"ensemble.members.{a}"].split(",")
        assert sorted(chosen) == sorted(world.run_ids[n] for n in expected)
        averaged = np.mean([world.preds[n]["Development"][a] for n in expected], axis=0)
        want = world.dev_ccc(a, averaged)
        assert run.metrics[dev_name(CCC[a])] == pytest.approx(want, abs=1e-9)
        assert run.metrics[best(CCC[a])] == pytest.approx(want, abs=1e-9)
        assert want > max(world.dev_ccc(a, world.preds[n]["Development"][a]) for n in expected) - 0.05
        for n in expected:
            assert n in res.output
        print(f"top-2 {a}: {sorted(expected)} dev CCC {want:.4f}")
    mean = np.mean([run.metrics[dev_name(CCC[a])] for a in ATTRIBUTES])
    assert run.metrics[best(CCC["mean"])] == pytest.approx(mean)
    assert f"{mean:.4f}" in res.output and "arousal (CCC)" in res.output

    # The run holds the training runs' prediction layout for every split the members share.
    dev = tracker.load_predictions(run.run_id, "Development")
    assert list(dev.columns) == ["clip_id", *PROBS, "pred_class", *ATTRIBUTES]
    assert sorted(dev["clip_id"]) == sorted(world.dev_ids)
    assert len(tracker.load_predictions(run.run_id, "Test1")) == 8
    test3 = tracker.load_predictions(run.run_id, "Test3").set_index("clip_id")

    # The submission: challenge header, one row per Test3 clip, the members' mean per attribute.
    sub = world.layout.root / "submissions" / "top2_task2.csv"
    assert sub.read_text().splitlines()[0] == "FileName,EmoAct,EmoVal,EmoDom"
    rows = read_csv(sub)
    assert sorted(r["FileName"] for r in rows) == sorted(f"{c}.wav" for c in world.test3_ids)
    col = dict(zip(ATTRIBUTES, ("EmoAct", "EmoVal", "EmoDom")))
    for a in ATTRIBUTES:
        members = best_by(world, lambda df: world.dev_ccc(a, df[a]), 2)
        want = np.mean([world.preds[n]["Test3"].set_index("clip_id")[a] for n in members], axis=0)
        got = np.array([float(r[col[a]]) for r in rows])
        order = [r["FileName"][: -len(".wav")] for r in rows]
        np.testing.assert_allclose(got, np.asarray(want)[[world.test3_ids.index(c) for c in order]], atol=1e-5)
        np.testing.assert_allclose(test3.loc[order, a], got, atol=1e-5)
    assert tracker.list_artifacts(run.run_id, "submission") == ["submission/top2_task2.csv"]


def test_greedy_never_loses_to_top_k_on_dev(world, tracker):
    for k in (1, 2):
        top = build_ensemble(world.layout, EnsembleConfig(top=k, experiment="ens", name=f"t{k}",
                                                          out=world.layout.root / f"t{k}.csv"), tracker=tracker)
        gr = build_ensemble(world.layout, EnsembleConfig(top=k, method="greedy", experiment="ens", name=f"g{k}",
                                                         out=world.layout.root / f"g{k}.csv"), tracker=tracker)
        run = ensemble_run(tracker, f"g{k}")
        for a in ATTRIBUTES:
            t, g = top.reports[a].ensemble_dev, gr.reports[a].ensemble_dev
            assert g >= t - 1e-12
            # The bag (with repeats) recorded as params reproduces the greedy figure.
            bag = run.params[f"ensemble.members.{a}"].split(",")
            names = {v: n for n, v in world.run_ids.items()}
            averaged = np.mean([world.preds[names[i]]["Development"][a] for i in bag], axis=0)
            assert world.dev_ccc(a, averaged) == pytest.approx(g, abs=1e-9)
            assert gr.dev_metrics[f"ccc_{a}"] == pytest.approx(g, abs=1e-9)
            print(f"K={k} {a}: top-K {t:.4f}  greedy {g:.4f}  bag {len(bag)} runs")


def test_task1_averages_class_probabilities_of_the_best_f1_runs(world, tracker, cli_env):
    res = invoke(world, "--task", "1", "--top", "3", "--name", "cls3")
    assert res.exit_code == 0, res.output
    expected = best_by(world, lambda df: world.dev_f1(df[PROBS].to_numpy()), 3)
    run = ensemble_run(tracker, "cls3")
    assert sorted(run.params["ensemble.members.class"].split(",")) == sorted(world.run_ids[n] for n in expected)
    averaged = np.mean([world.preds[n]["Development"][PROBS].to_numpy() for n in expected], axis=0)
    f1 = world.dev_f1(averaged)
    assert run.metrics[best(F1)] == pytest.approx(f1) and run.metrics["dev_f1_macro"] == pytest.approx(f1)
    assert f"{f1:.4f}" in res.output
    print(f"task 1 top-3 {sorted(expected)}: dev macro-F1 {f1:.4f} "
          f"(best single {max(world.dev_f1(world.preds[n]['Development'][PROBS].to_numpy()) for n in world.preds):.4f})")
    sub = world.layout.root / "submissions" / "cls3_task1.csv"
    rows = read_csv(sub)
    assert sub.read_text().splitlines()[0] == "FileName,EmoClass"
    assert len(rows) == len(world.test3_ids) and {r["EmoClass"] for r in rows} <= set(CLASSES)
    t3 = np.mean([world.preds[n]["Test3"].set_index("clip_id").loc[world.test3_ids, PROBS].to_numpy()
                  for n in expected], axis=0)
    want = dict(zip((f"{c}.wav" for c in world.test3_ids), (CLASSES[i] for i in t3.argmax(axis=1))))
    assert {r["FileName"]: r["EmoClass"] for r in rows} == want


def test_earlier_ensembles_can_be_members(world, tracker):
    first = build_ensemble(world.layout, EnsembleConfig(top=2, method="greedy", experiment="ens", name="inner",
                                                        out=world.layout.root / "inner.csv"), tracker=tracker)
    outer = build_ensemble(world.layout, EnsembleConfig(top=1, experiment="ens", name="outer", include_ensembles=True,
                                                        out=world.layout.root / "outer.csv"), tracker=tracker)
    assert outer.spec.candidates > len(world.run_ids)
    for a in ATTRIBUTES:  # greedy beat every single run on dev, so the inner ensemble is the best candidate
        assert first.reports[a].ensemble_dev > first.reports[a].best_single_dev
        chosen = outer.spec.members[a]
        assert len(chosen) == 1 and tracker.get_run(chosen[0]).kind == "ensemble"
        assert outer.dev_metrics[f"ccc_{a}"] >= first.dev_metrics[f"ccc_{a}"] - 1e-12


def _baseline(path: Path, ids: list[str], values: np.ndarray) -> Path:
    lines = ["FileName,EmoAct,EmoVal,EmoDom"] + [f"{c}.wav,{a:.4f},{v:.4f},{d:.4f}" for c, (a, v, d) in zip(ids, values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_baseline_is_averaged_in(world, tracker, cli_env, tmp_path):
    rng = np.random.default_rng(3)
    dev_vals = np.clip(world.truth_attrs + rng.normal(0, 0.5, world.truth_attrs.shape), 1, 7)
    t3_vals = rng.uniform(1, 7, (len(world.test3_ids), 3))
    path = _baseline(tmp_path / "baseline.csv", world.dev_ids + world.test3_ids, np.vstack([dev_vals, t3_vals]))
    out = tmp_path / "sub.csv"
    res = invoke(world, "--top", "1", "--with-baseline", str(path), "--name", "top1-bl", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "baseline does not cover Test1" in res.output
    run = ensemble_run(tracker, "top1-bl")
    rows = {r["FileName"][:-4]: r for r in read_csv(out)}
    assert len(rows) == len(world.test3_ids)
    for j, (a, col) in enumerate(zip(ATTRIBUTES, ("EmoAct", "EmoVal", "EmoDom"))):
        members = run.params[f"ensemble.members.{a}"].split(",")
        assert len(members) == 2 and members[1] == "baseline"
        (best,) = best_by(world, lambda df: world.dev_ccc(a, df[a]), 1)
        assert members[0] == world.run_ids[best]
        dev_mean = (world.preds[best]["Development"][a].to_numpy() + dev_vals[:, j]) / 2
        assert run.metrics[dev_name(CCC[a])] == pytest.approx(world.dev_ccc(a, dev_mean), abs=1e-6)
        t3 = world.preds[best]["Test3"].set_index("clip_id")[a]
        for i, c in enumerate(world.test3_ids):
            assert float(rows[c][col]) == pytest.approx((t3[c] + t3_vals[i, j]) / 2, abs=1e-4)

    # A baseline that misses a Test3 clip, or holds a non-number, is refused naming file, row, field.
    short = _baseline(tmp_path / "short.csv", world.dev_ids + world.test3_ids[:-1], np.vstack([dev_vals, t3_vals[:-1]]))
    with pytest.raises(BadInput, match=r"short\.csv: FileName: no prediction for 1 of the 12 Test3 clips"):
        build_ensemble(world.layout, EnsembleConfig(experiment="ens", baseline=short, out=tmp_path / "x.csv"),
                       tracker=tracker)
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace(f"{world.dev_ids[2]}.wav,", f"{world.dev_ids[2]}.wav,high", 1))
    res = invoke(world, "--with-baseline", str(bad), "--out", str(tmp_path / "y.csv"))
    assert res.exit_code == 2 and "bad.csv:4: EmoAct: not a number" in res.output
    # a binary file given as the baseline: one line naming the file and the line it breaks on
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"FileName,EmoAct,EmoVal,EmoDom\nx.wav,1,2,3\n\x80\x81\xfe\x00junk")
    res = invoke(world, "--with-baseline", str(binary), "--out", str(tmp_path / "z.csv"))
    assert res.exit_code == 2 and res.output.strip() == f"error: {binary}:3: not UTF-8 text (a challenge CSV file is expected)"


def test_no_runs_is_a_clear_error(world, tracker, cli_env, log):
    tracker.experiment_id("empty", create=True)
    res = CliRunner().invoke(app, ["--store", str(world.layout.root), "ensemble", "--experiment", "empty"])
    assert res.exit_code == 2 and "nothing to ensemble" in res.output and "Traceback" not in res.output
    res = invoke(world, "--filter", "tags.\"sertool.stage\" = 'nope'")
    assert res.exit_code == 2 and "matching" in res.output and "nothing to ensemble" in res.output


def test_runs_of_other_encoders_or_clips_are_refused(world, tracker, make_predictions, log):
    dev = world.preds["ft-a"]["Development"]
    t3 = {"Test3": world.preds["ft-a"]["Test3"]}
    log("same", dev, t3, "mixed")
    log("other-wavlm", dev, t3, "mixed", fingerprints={"wavlm": "ffff999988887777"})
    with pytest.raises(StoreMismatch) as e:
        build_ensemble(world.layout, EnsembleConfig(experiment="mixed", out=world.layout.root / "m.csv"), tracker=tracker)
    msg = str(e.value)
    assert "wavlm" in msg and "same (" in msg and "other-wavlm (" in msg and "ffff999988887777" in msg

    log("all-clips", dev, t3, "clips")
    log("fewer-clips", dev.iloc[1:], t3, "clips", metrics={best(CCC["arousal"]): 0.5})
    with pytest.raises(StoreMismatch, match=r"clips of Development \(60 clips in all-clips .*59 clips in fewer-clips"):
        build_ensemble(world.layout, EnsembleConfig(experiment="clips", out=world.layout.root / "c.csv"), tracker=tracker)

    # A run without the submission's test split is named too.
    log("no-test3", dev, {}, "notest")
    with pytest.raises(NotFound, match=r"predictions for Test3 .*no-test3"):
        build_ensemble(world.layout, EnsembleConfig(experiment="notest", out=world.layout.root / "n.csv"), tracker=tracker)
