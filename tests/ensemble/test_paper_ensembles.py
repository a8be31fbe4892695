"""Ensembles as the paper made them, and `sertool score` on challenge files.

- Greedy selection never ends below its best member on dev, even where the top-K average is worse.
- Candidates are the task's own stage and pre-training by default (a Task 1 fine-tune is no Task 2
  attribute candidate); Task 1 submits the single best run; `--pin RUN:attribute` keeps a member.
- Every ensemble (stacked ones too) also writes its Development predictions in the challenge format,
  and `sertool score` on that file gives the figures the ensemble logged.
- `sertool score` refuses bad files with one line naming file, row and field.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.ensemble.build import EnsembleConfig, build_ensemble
from sertool.ensemble.select import greedy, top_k
from sertool.labels import ATTRIBUTES
from sertool.metrics import ccc


def test_greedy_never_ends_below_its_best_member():
    """One good run and four weak ones that agree with each other: the top-3 average is worse than the
    good run alone, and a greedy search started only from top-3 stays below it."""
    rng = np.random.default_rng(0)
    truth = rng.normal(4, 1, 300)
    good = truth + rng.normal(0, 0.3, 300)
    shared = rng.normal(0, 1.5, 300)  # the weak runs share their error, so averaging them cannot cancel it
    weak = [truth + shared + rng.normal(0, 0.2, 300) + 0.3 * i for i in range(4)]
    preds = np.stack([good, *weak])
    score = lambda p: ccc(truth, p)  # noqa: E731
    best_single = max(score(p) for p in preds)
    start = top_k(preds, score, 3)
    assert start.score < best_single  # the situation the test is built for
    sel = greedy(preds, score, 3)
    assert sel.score >= best_single - 1e-12
    assert sel.score >= start.score


def test_default_candidates_are_the_tasks_stage_and_pretraining(world, tracker, log, make_predictions, tmp_path):
    rng = np.random.default_rng(11)
    dev = world.preds["ft-a"]["Development"].copy()
    dev[list(ATTRIBUTES)] = world.truth_attrs  # a perfect Task 2 figure... from a Task 1 fine-tune
    tests = {s: world.preds["ft-a"][s] for s in ("Test3", "Test1")}
    log("t1-perfect-attrs", dev, tests, "ens", stage="task1")
    pre = world.preds["ft-c"]["Development"].copy()
    pre[list(ATTRIBUTES)] = np.clip(world.truth_attrs + rng.normal(0, 0.05, world.truth_attrs.shape), 1, 7)
    log("pre-strong", pre, tests, "ens", stage="pretrain")
    result = build_ensemble(world.layout, EnsembleConfig(top=1, experiment="ens", name="stages",
                                                         out=tmp_path / "s.csv"), tracker)
    names = {r: tracker.get_run(r).name for r in result.spec.run_ids()}
    assert set(names.values()) == {"pre-strong"}  # the Task 1 fine-tune never competes for attributes
    # Task 1: one model by default (the paper submitted one), chosen among task1 and pretrain runs
    one = build_ensemble(world.layout, EnsembleConfig(task=1, experiment="ens", name="t1-default",
                                                      out=tmp_path / "t1.csv"), tracker)
    assert one.spec.top == 1 and len(one.spec.members["class"]) == 1
    assert tracker.get_run(one.spec.members["class"][0]).stage in ("task1", "pretrain")


def test_a_pinned_member_stays_for_its_attribute(world, tracker, tmp_path):
    result = build_ensemble(world.layout, EnsembleConfig(top=1, experiment="ens", name="pinned", pins=("ft-e:valence",),
                                                         stages=("task2",), out=tmp_path / "p.csv"), tracker)
    assert world.run_ids["ft-e"] in result.spec.members["valence"]
    assert len(result.spec.members["valence"]) == 2
    assert world.run_ids["ft-e"] not in result.spec.members["arousal"]


def _score(world, path, *extra: str):
    return CliRunner().invoke(app, ["--store", str(world.layout.root), "score", str(path), *extra])


@pytest.mark.parametrize("task,method", [(2, "topk"), (1, "topk"), (2, "stack"), (1, "stack")])
def test_score_of_the_dev_file_equals_the_logged_figures(world, tracker, tmp_path, task, method):
    """(A stack's Development file holds its out-of-fold predictions, which its figures score.)"""
    cfg = EnsembleConfig(task=task, top=2, method=method, experiment="ens", name=f"scored-t{task}-{method}",
                         stages=("task2",), out=tmp_path / f"t{task}.csv")
    result = build_ensemble(world.layout, cfg, tracker)
    assert result.dev_file.name == f"t{task}_Development.csv"
    header = result.dev_file.read_text().splitlines()[0]
    assert header == ("FileName,EmoAct,EmoVal,EmoDom" if task == 2 else "FileName,EmoClass")
    res = _score(world, result.dev_file, "--format", "json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    run = tracker.get_run(result.run_id)
    assert got["task"] == task and got["n"] == len(world.dev_ids)
    names = ["f1_macro", "f1_macro_8"] if task == 1 else ["ccc_arousal", "ccc_valence", "ccc_dominance", "ccc_mean"]
    for name in names:
        # the file holds 6 decimals: the figures agree to that precision
        assert got[name] == pytest.approx(run.metrics[f"dev_{name}"], abs=2e-5), name


def _write(path, header, rows):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_score_refuses_bad_files_in_one_line(world, tmp_path):
    ids = world.dev_ids
    good = [f"{c}.wav,4.0,4.0,4.0" for c in ids]
    cases = {
        "unknown": (_write(tmp_path / "u.csv", "FileName,EmoAct,EmoVal,EmoDom", good + ["MSP-PODCAST_9999_0001.wav,4,4,4"]),
                    "u.csv:62: FileName: MSP-PODCAST_9999_0001: no such clip in the catalog"),
        "missing": (_write(tmp_path / "m.csv", "FileName,EmoAct,EmoVal,EmoDom", good[1:]),
                    f"m.csv: FileName: no prediction for 1 of the 60 Development clips (first: {ids[0]}.wav)"),
        "duplicate": (_write(tmp_path / "d.csv", "FileName,EmoAct,EmoVal,EmoDom", good + [good[3]]),
                      f"d.csv:62: FileName: '{ids[3]}.wav' listed twice (first on line 5)"),
        "range": (_write(tmp_path / "r.csv", "FileName,EmoAct,EmoVal,EmoDom", good[:2] + [f"{ids[2]}.wav,4,7.9,4"] + good[3:]),
                  "r.csv:4: EmoVal: 7.9 is outside the rating range 1-7"),
        "class": (_write(tmp_path / "c.csv", "FileName,EmoClass", [f"{c}.wav,H" for c in ids[:5]] + [f"{ids[5]}.wav,X"]),
                  "c.csv:7: EmoClass: 'X' is not one of the 8 class codes"),
        "other split": (_write(tmp_path / "o.csv", "FileName,EmoAct,EmoVal,EmoDom", good[:1] + [f"{world.test3_ids[0]}.wav,4,4,4"]),
                        f"o.csv:3: FileName: {world.test3_ids[0]} belongs to Test3, not Development"),
        "header": (_write(tmp_path / "h.csv", "FileName,Arousal,Valence", good),
                   "h.csv:1: EmoAct: missing column(s) EmoAct, EmoVal, EmoDom"),
    }
    for name, (path, message) in cases.items():
        res = _score(world, path)
        assert res.exit_code == 2, (name, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (name, res.output)


def test_a_baseline_outside_the_rating_range_is_refused(world, cli_env, tmp_path):
    rows = [f"{c}.wav,4.0,4.0,4.0" for c in world.dev_ids + world.test3_ids]
    rows[4] = f"{world.dev_ids[4]}.wav,7.9,4.0,4.0"
    path = _write(tmp_path / "bl.csv", "FileName,EmoAct,EmoVal,EmoDom", rows)
    res = CliRunner().invoke(app, ["--store", str(world.layout.root), "ensemble", "--experiment", "ens",
                                   "--with-baseline", str(path), "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "bl.csv:6: EmoAct: 7.9 is outside the rating range 1-7" in res.output


def test_report_table3_shows_the_ensemble_beside_its_members(world, cli_env, tracker, tmp_path):
    """`sertool report table3`: the ensemble's dev CCC per attribute (as the official scoring gives it on
    the ensemble's own Development file), one row per member with that member's figures, and the rendered
    Markdown logged to the ensemble run."""
    import csv
    import io

    import pandas as pd

    store = ["--store", str(world.layout.root)]
    res = CliRunner().invoke(app, [*store, "ensemble", "--experiment", "ens", "--top", "2", "--name", "table3",
                                   "--filter", "attributes.run_name LIKE 'ft-%'", "--out", str(tmp_path / "t3.csv")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*store, "report", "table3", "--experiment", "ens", "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.reader(io.StringIO(res.output)))
    assert rows[0][:5] == ["", *ATTRIBUTES, "mean"]
    dev = pd.read_csv(tmp_path / "t3_Development.csv", dtype={"FileName": str})
    dev = dev.set_index(dev.FileName.str.removesuffix(".wav")).loc[world.dev_ids]
    expected = [world.dev_ccc(a, dev[col].to_numpy()) for a, col in zip(ATTRIBUTES, ("EmoAct", "EmoVal", "EmoDom"))]
    ensemble_row = rows[1]
    assert ensemble_row[0] == "ensemble"
    assert [float(v) for v in ensemble_row[1:4]] == pytest.approx(expected, abs=1e-4)
    members = {r[0].removeprefix("member ") for r in rows if r[0].startswith("member ")}
    (run,) = tracker.find_runs("ens", "attributes.run_name = 'table3'", kind="ensemble")
    chosen = {tracker.get_run(m).name for a in ATTRIBUTES for m in run.params[f"ensemble.members.{a}"].split(",")}
    assert members == chosen and 2 <= len(members) <= 6
    for r in rows:
        if r[0].startswith("member "):
            name = r[0].removeprefix("member ")
            own = world.preds[name]["Development"]
            assert float(r[1]) == pytest.approx(world.dev_ccc("arousal", own["arousal"].to_numpy()), abs=1e-4)
    assert "report_table3.md" in tracker.list_artifacts(run.run_id)
