"""`sertool predict` on wav files outside any corpus, with real tiny checkpoints logged as runs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.errors import InvalidOption, StoreMismatch
from sertool.labels import ATTRIBUTES, CLASSES
from sertool.audio import window_spans
from sertool.jobs.predict import TAIL_MERGE, PredictConfig, predict_files


def invoke(setup, *args: str):
    return CliRunner().invoke(app, ["--store", str(setup.layout.root), "predict", *args])


def direct(setup, run: str, wav: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray]:
    """What the run's model says when fed the encoders' frames by hand (fp16-rounded, as stored)."""
    import torch

    batch = {}
    for name, enc in setup.encoders.items():
        (f,) = enc.embed([text] if enc.modality == "text" else [wav])
        batch[name] = (torch.from_numpy(f.astype(np.float16).astype(np.float32))[None], torch.tensor([len(f)]))
    with torch.inference_mode():
        out = setup.models[run](batch)
    return torch.softmax(out.logits, -1)[0].numpy(), out.attributes[0].numpy()


def test_windows_cover_the_file_and_a_short_tail_joins_the_last():
    assert window_spans(7 * 16_000, 3 * 16_000, tail_merge=TAIL_MERGE) == [(0, 48_000), (48_000, 96_000), (96_000, 112_000)]
    assert window_spans(6_500, 3_000, tail_merge=TAIL_MERGE) == [(0, 3_000), (3_000, 6_500)]  # 0.5 s tail < 25 % of a window
    assert window_spans(2_000, 3_000, tail_merge=TAIL_MERGE) == [(0, 2_000)]


def test_predict_new_files_with_asr_and_a_skipped_file(setup, cli_env):
    a = setup.audio
    res = invoke(setup, "tiny-a", str(a["broken"]), str(a["short"]), str(a["missing"]), "--format", "json")
    assert res.exit_code == 0, res.output
    # Each unreadable file: one line on stderr naming it; the others are predicted.
    skipped = [line for line in res.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 2 and "broken.wav" in skipped[0] and "missing.wav" in skipped[1]
    assert "note: transcripts by Whisper ASR: sertool-tiny/whisper (fingerprint " in res.stderr  # which model
    (short,) = json.loads(res.stdout)
    assert short["file"] == str(a["short"]) and short["window"] == "all"
    assert short["start_s"] == 0 and short["end_s"] == pytest.approx(2.5)
    assert isinstance(short["transcript"], str)  # from Whisper ASR (tiny: random weights, any text)
    assert sum(short["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert short["pred_class"] == max(short["probabilities"], key=short["probabilities"].get)
    assert all(1 <= short[x] <= 7 for x in ATTRIBUTES)
    print(f"tiny-a on short.wav (ASR {short['transcript']!r}): {short['pred_class']} "
          + " ".join(f"{x} {short[x]:.3f}" for x in ATTRIBUTES))

    res = invoke(setup, "tiny-a", str(a["short"]), "--transcript", "hello there")
    assert res.exit_code == 0 and "short.wav" in res.stdout and "hello there" in res.stdout
    assert "Whisper ASR" not in res.stderr  # no ASR ran


def test_long_file_in_windows_plus_its_average(setup, cli_env):
    res = invoke(setup, "tiny-a", str(setup.audio["long"]), "--window-seconds", "3", "--transcript", "hi there",
                 "--format", "csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(rows[0]) == ["file", "window", "start_s", "end_s", "transcript", "pred_class",
                             *(f"p_{c}" for c in CLASSES), *ATTRIBUTES]
    assert [(r["window"], float(r["start_s"]), float(r["end_s"])) for r in rows] == [
        ("1", 0, 3), ("2", 3, 6), ("3", 6, 7), ("all", 0, 7)]
    # The file's row is the duration-weighted average of its windows.
    w = np.array([3, 3, 1]) / 7
    for col in (*ATTRIBUTES, *(f"p_{c}" for c in CLASSES)):
        assert float(rows[3][col]) == pytest.approx(float(w @ [float(r[col]) for r in rows[:3]]), abs=1e-5)
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in CLASSES) == pytest.approx(1, abs=1e-4)
    assert len({r["arousal"] for r in rows[:3]}) == 3  # windows differ


def test_runs_and_ensembles_predict_with_their_own_models_and_encoders(setup):
    from sertool.audio import load_audio

    cfg = PredictConfig(transcript="well then", experiment=setup.experiment)
    files = [setup.audio["short"]]
    (a,) = predict_files(setup.layout, "tiny-a", files, cfg, tracker=setup.tracker).rows
    (b,) = predict_files(setup.layout, "tiny-b", files, cfg, tracker=setup.tracker).rows
    # A run's figures are its checkpoint's model on its encoders' (fp16-stored) frames.
    probs, attrs = direct(setup, "tiny-a", load_audio(setup.audio["short"]), "well then")
    np.testing.assert_allclose(a.probs, probs, atol=1e-5)
    np.testing.assert_allclose(a.attrs, attrs, atol=1e-5)
    assert not np.allclose(a.attrs, b.attrs)  # the members really differ

    # The ensemble: arousal from tiny-a, valence from tiny-b, dominance their mean; classes: both once.
    ens = predict_files(setup.layout, "ens-ab", files, cfg, tracker=setup.tracker)
    assert ens.members["arousal"] == {setup.run_ids["tiny-a"]: 1.0}
    (e,) = ens.rows
    np.testing.assert_allclose(e.attrs, [a.attrs[0], b.attrs[1], (a.attrs[2] + b.attrs[2]) / 2], atol=1e-5)
    np.testing.assert_allclose(e.probs, (a.probs + b.probs) / 2, atol=1e-5)

    # Nested: half ens-ab, half tiny-b (the baseline is left out, with a note).
    nested = predict_files(setup.layout, "ens-nested", files, cfg, tracker=setup.tracker)
    assert any("baseline" in n for n in nested.notes)
    (n,) = nested.rows
    np.testing.assert_allclose(n.attrs, (e.attrs + b.attrs) / 2, atol=1e-5)
    np.testing.assert_allclose(n.probs, (e.probs + b.probs) / 2, atol=1e-5)


def test_a_run_on_trimmed_whisper_frames_predicts_with_trimmed_whisper(setup):
    import dataclasses

    from sertool.audio import load_audio

    files = [setup.audio["short"]]
    cfg = PredictConfig(transcript="well then", experiment=setup.experiment)
    (row,) = predict_files(setup.layout, "tiny-trimmed", files, cfg, tracker=setup.tracker).rows
    trimmed = dict(setup.encoders, whisper=setup.encoders["whisper"].configured(window="trimmed"))
    probs, attrs = direct(dataclasses.replace(setup, encoders=trimmed), "tiny-trimmed",
                          load_audio(setup.audio["short"]), "well then")
    np.testing.assert_allclose(row.probs, probs, atol=1e-5)
    np.testing.assert_allclose(row.attrs, attrs, atol=1e-5)
    (same,) = predict_files(setup.layout, "tiny-trimmed", files, dataclasses.replace(cfg, whisper_window="trimmed"),
                            tracker=setup.tracker).rows
    np.testing.assert_allclose(same.attrs, row.attrs, atol=1e-6)
    with pytest.raises(StoreMismatch, match="whisper frames with fingerprint"):
        predict_files(setup.layout, "tiny-trimmed", files, dataclasses.replace(cfg, whisper_window="padded"),
                      tracker=setup.tracker)
    with pytest.raises(InvalidOption, match="whisper_window"):
        PredictConfig(whisper_window="cropped")


def test_a_run_of_other_encoders_is_refused(setup):
    with pytest.raises(StoreMismatch, match=r"tiny-badfp .*wavlm frames with fingerprint deadbeefdeadbeef"):
        predict_files(setup.layout, "tiny-badfp", [setup.audio["short"]],
                      PredictConfig(transcript="x", experiment=setup.experiment), tracker=setup.tracker)


def test_nothing_readable_is_an_error(setup, cli_env):
    res = invoke(setup, "tiny-b", str(setup.audio["broken"]), "--transcript", "x")
    assert res.exit_code == 2
    assert "broken.wav" in res.stderr and "nothing could be predicted" in res.stderr


def test_broken_checkpoints_are_one_line_and_run_no_code(setup, cli_env, tmp_path):
    """A pickle saved as model.safetensors is refused unread (no code runs: safetensors only), and a
    config.json asking for an absurd model is refused before any allocation."""
    import pickle

    from sertool.tracking.names import CHECKPOINT_DIR

    ran = tmp_path / "pickle-ran"
    payload = pickle.dumps(type("Evil", (), {"__reduce__": lambda self: (open, (str(ran), "w"))})())
    run_id = setup.run_ids["tiny-a"]
    weights, config = setup.tracker.load_checkpoint(run_id, tmp_path / "a")
    for name, write in (("pickled", lambda d: (d / "model.safetensors").write_bytes(payload)),
                        ("huge", lambda d: (d / "config.json").write_text(json.dumps(
                            {**config, "fusion": {**config["fusion"], "lstm_hidden": 10**6, "proj_dim": 10**6}})))):
        folder = tmp_path / name / CHECKPOINT_DIR
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(weights.read_bytes())
        (folder / "config.json").write_text(json.dumps(config))
        write(folder)
        with setup.tracker.start("train", experiment=setup.experiment, run_name=f"broken-{name}") as run:
            run.log_artifact(folder, CHECKPOINT_DIR)
        res = invoke(setup, f"broken-{name}", str(setup.audio["short"]), "--transcript", "x")
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.output, res.output
        assert ("not a readable safetensors checkpoint" if name == "pickled" else "beyond any sane model") in lines[0]
    assert not ran.exists()


def test_a_file_too_short_or_too_long_is_reported_and_skipped(setup, cli_env, tmp_path):
    """A 10 ms wav used to stop predict with a conv kernel-size traceback; it is reported and skipped
    like an unreadable file, as is a file over --max-seconds (refused from its header, before decoding)."""
    import soundfile as sf

    from encoder_helpers import speechlike

    click = tmp_path / "click.wav"
    sf.write(click, speechlike(0.01, 3), 16_000)
    a = setup.audio
    res = invoke(setup, "tiny-a", str(click), str(a["short"]), "--transcript", "hi", "--format", "json")
    assert res.exit_code == 0, res.output
    (skipped,) = [ln for ln in res.stderr.splitlines() if ln.startswith("skipped")]
    assert str(click) in skipped and "audio: audio is 10.0 ms long" in skipped
    assert [r["file"] for r in json.loads(res.stdout)] == [str(a["short"])]

    res = invoke(setup, "tiny-a", str(a["long"]), str(a["short"]), "--transcript", "hi", "--max-seconds", "5",
                 "--format", "json")
    assert res.exit_code == 0, res.output
    (skipped,) = [ln for ln in res.stderr.splitlines() if ln.startswith("skipped")]
    assert str(a["long"]) in skipped and "audio is 7.0 s long, over the 5 s limit (--max-seconds)" in skipped
    assert [r["file"] for r in json.loads(res.stdout)] == [str(a["short"])]

    res = invoke(setup, "tiny-a", str(click), "--transcript", "hi")
    assert res.exit_code == 2 and "nothing could be predicted" in res.stderr


def test_windows_never_leave_a_tail_shorter_than_a_clip(setup, tmp_path):
    """With 50 ms windows a 1,900-sample file would end in a 300-sample window (over a quarter window,
    so kept), which WavLM has no frame for: a tail under 25 ms joins the window before it. Options no
    clip could satisfy are refused before any work."""
    import soundfile as sf

    from encoder_helpers import speechlike

    f = tmp_path / "brief.wav"
    sf.write(f, speechlike(1.0, 4)[:1_900], 16_000)
    cfg = PredictConfig(transcript="hi", window_seconds=0.05, experiment=setup.experiment)
    rows = predict_files(setup.layout, "tiny-a", [f], cfg, tracker=setup.tracker).rows
    assert [(r.window, r.start_s, r.end_s) for r in rows] == [(1, 0, 0.05), (2, 0.05, 0.11875), (None, 0, 0.11875)]
    with pytest.raises(InvalidOption, match="window_seconds: must be at least 0.025"):
        PredictConfig(window_seconds=0.01)
    with pytest.raises(InvalidOption, match="transcript: 100,001 characters, over the 100,000"):
        PredictConfig(transcript="x" * 100_001)


def test_stacked_ensembles_apply_their_meta_models_to_new_audio(setup, stacked, cli_env):
    """Ensembles made by `sertool ensemble --method stack` over two real checkpoints: on a file no
    corpus holds, Task 2's attributes are each attribute's ridge over the members' predictions and its
    classes their average; Task 1's classes are the logistic meta-model over the members' log
    probabilities and its attributes their average. Computed here by hand from ensemble.json."""
    from sertool.audio import load_audio
    from sertool.tracking.names import ENSEMBLE_SPEC

    ids = stacked.run_ids
    wav, text = load_audio(setup.audio["short"]), "well then"
    outputs = {ids["stk-a"]: direct(setup, "tiny-a", wav, text), ids["stk-b"]: direct(setup, "tiny-b", wav, text)}
    cfg = PredictConfig(transcript=text, experiment=stacked.experiment)
    rows = {}
    for task in (1, 2):
        run_id = ids[f"stack-t{task}"]
        path = setup.tracker.download_artifact(run_id, ENSEMBLE_SPEC, setup.layout.root / f"spec-{task}")
        meta = json.loads(path.read_text())["meta"]
        report = predict_files(setup.layout, f"stack-t{task}", [setup.audio["short"]], cfg, tracker=setup.tracker)
        (row,) = report.rows
        rows[task] = row
        mean_p = np.mean([p for p, _ in outputs.values()], axis=0)
        mean_a = np.mean([a for _, a in outputs.values()], axis=0)
        if task == 2:
            want = [np.clip(m["intercept"] + sum(w * outputs[r][1][j] for w, r in zip(m["coef"], m["members"])), 1, 7)
                    for j, m in enumerate(meta[a] for a in ATTRIBUTES)]
            np.testing.assert_allclose(row.attrs, want, atol=1e-5)
            np.testing.assert_allclose(row.probs, mean_p, atol=1e-5)
            assert not np.allclose(row.attrs, mean_a, atol=1e-3)  # the meta-model, not the average
        else:
            m = meta["class"]
            x = np.concatenate([np.log(np.clip(outputs[r][0], 1e-6, 1)) for r in m["members"]])
            z = np.array(m["coef"]) @ x + np.array(m["intercept"])
            want = np.zeros(len(CLASSES))
            want[[CLASSES.index(c) for c in m["classes"]]] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            np.testing.assert_allclose(row.probs, want, atol=1e-5)
            np.testing.assert_allclose(row.attrs, mean_a, atol=1e-5)
            assert not np.allclose(row.probs, mean_p, atol=1e-3)
        assert set(report.members["class"]) == {ids["stk-a"], ids["stk-b"]}
        print(f"stack-t{task} on short.wav: {row.pred_class} " + " ".join(f"{v:.3f}" for v in row.attrs))

    # A stacked ensemble nested in an average: its own output (meta-model and all) is what is averaged.
    from sertool.ensemble.spec import EnsembleSpec

    outer = EnsembleSpec(task=2, method="topk", top=2, members={a: [ids["stack-t2"], ids["stk-b"]] for a in ATTRIBUTES})
    with setup.tracker.start("ensemble", experiment=stacked.experiment, run_name="avg-of-stack") as run:
        run.log_dict(outer.to_dict(), ENSEMBLE_SPEC)
    (nested,) = predict_files(setup.layout, "avg-of-stack", [setup.audio["short"]], cfg, tracker=setup.tracker).rows
    np.testing.assert_allclose(nested.attrs, (rows[2].attrs + outputs[ids["stk-b"]][1]) / 2, atol=1e-5)

    res = invoke(setup, "stack-t1", str(setup.audio["short"]), "--transcript", text, "--experiment", stacked.experiment,
                 "--format", "json")
    assert res.exit_code == 0, res.output
    (out,) = json.loads(res.stdout)
    assert out["pred_class"] == max(out["probabilities"], key=out["probabilities"].get)
