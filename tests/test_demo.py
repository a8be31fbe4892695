"""`sertool demo --quick` end to end: every stage leaves its real traces in the store and the tracking store.

The demo itself runs once per session (`quick_demo` in conftest.py); these tests read what it left.
"""

from __future__ import annotations

import csv
import math

import duckdb
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.jobs.demo import MARKER, STAGES, DemoConfig, prepare_directory
from sertool.errors import InvalidOption, SertoolError


def _catalog_rows(demo, sql: str):
    con = duckdb.connect(str(demo.layout.catalog), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_stage_ran(quick_demo):
    assert list(quick_demo.timings) == list(STAGES)
    assert (quick_demo.directory / MARKER).is_file()


def test_test3_transcripts_come_from_asr_and_the_rest_from_the_corpus(quick_demo):
    rows = _catalog_rows(quick_demo, "SELECT split, transcript_source, count(*), count(transcript) FROM clips GROUP BY 1, 2")
    by_split = {(split, src): (n, with_text) for split, src, n, with_text in rows}
    n_test3 = quick_demo.ingest.splits["Test3"]
    assert n_test3 > 0 and quick_demo.transcribed == n_test3
    assert by_split[("Test3", "asr")] == (n_test3, n_test3)
    assert {src for split, src in by_split if split != "Test3"} == {"corpus"}
    # The corpus on disk really lacks them (the demo deleted them before ingest, as documented).
    assert not list((quick_demo.directory / "corpus" / "Transcripts").glob("MSP-PODCAST_test3_*.txt"))


def test_every_clip_is_embedded_clean_and_augmented(quick_demo):
    rows = _catalog_rows(quick_demo, "SELECT encoder, variant, count(DISTINCT clip_id) FROM embeddings GROUP BY 1, 2")
    n_clips = quick_demo.ingest.clips
    assert {(e, v): n for e, v, n in rows} == {
        ("whisper", "clean"): n_clips, ("whisper", "noise"): n_clips,
        ("wavlm", "clean"): n_clips, ("wavlm", "noise"): n_clips, ("roberta", "clean"): n_clips,
    }


def test_fine_tunes_start_from_the_pretrained_run(quick_demo):
    from sertool.tracking import Tracker
    from sertool.tracking.names import INIT_FROM_TAG

    tracker = Tracker(quick_demo.tracking_uri, experiment=quick_demo.experiment)
    pre = quick_demo.runs["demo-pretrain"]
    stages = {name: r.config.stage for name, r in quick_demo.runs.items()}
    assert sorted(set(stages.values())) == ["pretrain", "task1", "task2"]
    sigmas = [r.config.gaussian_sigma for r in quick_demo.runs.values() if r.config.stage == "task2"]
    assert None in sigmas and any(s is not None for s in sigmas)  # plain MSE and a Gaussian-penalty variant
    for name, r in quick_demo.runs.items():
        info = tracker.get_run(r.run_id)
        assert info.status == "FINISHED" and info.kind == "train" and info.name == name
        if r.config.stage != "pretrain":
            assert info.tags[INIT_FROM_TAG] == pre.run_id


def test_both_ensembles_are_runs_with_submissions(quick_demo):
    from sertool.tracking import Tracker

    tracker = Tracker(quick_demo.tracking_uri, experiment=quick_demo.experiment)
    n_test3 = quick_demo.ingest.splits["Test3"]
    headers = {1: ["FileName", "EmoClass"], 2: ["FileName", "EmoAct", "EmoVal", "EmoDom"]}
    assert sorted(quick_demo.ensembles) == [1, 2]
    for task, ens in quick_demo.ensembles.items():
        info = tracker.get_run(ens.run_id)
        assert info.kind == "ensemble" and info.name == f"demo-ensemble-task{task}"
        with open(ens.submission, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == headers[task] and len(rows) == 1 + n_test3
    assert quick_demo.ensembles[2].run_id in {r.run_id for r in tracker.find_runs(kind="ensemble")}


def test_predict_on_a_clip_outside_the_corpus(quick_demo):
    audio = quick_demo.predict_audio
    assert audio.is_file() and (quick_demo.directory / "corpus") not in audio.parents
    report = quick_demo.prediction
    assert report.run.run_id == quick_demo.ensembles[2].run_id and not report.skipped
    whole = [p for p in report.rows if p.window is None]
    assert len(whole) == 1 and whole[0].file.endswith("new_clip.wav")
    assert math.isclose(float(whole[0].probs.sum()), 1.0, rel_tol=1e-4)
    assert all(1.0 <= v <= 7.0 for v in whole[0].attrs)


def test_summary_reports_the_best_single_runs_and_the_ensembles(quick_demo, capsys):
    rows = {r.label.split(",")[0]: r for r in quick_demo.summary}
    best_f1 = max(r.best["f1_macro"] for r in quick_demo.runs.values())
    best_ccc = max(r.best["ccc_mean"] for r in quick_demo.runs.values())
    assert rows["best run by macro-F1"].f1_macro == best_f1
    assert rows["best run by mean CCC"].ccc_mean == best_ccc
    assert rows["task 1 ensemble"].f1_macro == quick_demo.ensembles[1].dev_metrics["f1_macro"]
    assert rows["task 2 ensemble"].ccc_mean == quick_demo.ensembles[2].dev_metrics["ccc_mean"]

    from sertool.cli.demo import print_result

    print_result(quick_demo)
    printed = capsys.readouterr().out
    assert "summary" in printed and "demo-ensemble-task2" in printed and "demo-ensemble-task1" in printed
    assert f"{quick_demo.ensembles[2].dev_metrics['ccc_mean']:.4f}" in printed
    assert "sertool ui" in printed and quick_demo.tracking_uri in printed.replace("\n", "")


def test_a_rerun_wipes_only_a_demo_directory(tmp_path):
    old = tmp_path / "demo"
    prepare_directory(old)
    (old / "stale.txt").write_text("from the previous run")
    assert prepare_directory(old) == old.resolve() and not (old / "stale.txt").exists()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(SertoolError, match="not a sertool demo"):
        prepare_directory(foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"

    result = CliRunner().invoke(app, ["demo", "--dir", str(foreign), "--quick"])
    assert result.exit_code == 2 and "not a sertool demo" in result.output
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def test_size_options_override_the_profile():
    p = DemoConfig(quick=True, clips=60, epochs=4).profile()
    assert (p.clips, p.epochs) == (60, 4) and p.finetune_epochs >= 1
    # the library names the option; the CLI shows it as the flag
    with pytest.raises(InvalidOption, match="clips: must be at least 20") as e:
        DemoConfig(clips=5).profile()
    assert e.value.option == "clips"
    with pytest.raises(InvalidOption, match="epochs"):
        DemoConfig(epochs=0).profile()
    res = CliRunner().invoke(app, ["demo", "--clips", "5"])
    assert res.exit_code == 2 and res.output.strip() == "error: --clips: must be at least 20, got 5"
