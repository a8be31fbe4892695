"""`sertool transcribe` on a tiny catalog: ASR fills only missing transcripts, batch by batch."""

import json
import shutil

import pytest
import soundfile as sf
from typer.testing import CliRunner

from sertool.cli import app
from sertool.jobs.transcribe import transcribe_missing
from sertool.store.clips import corpus_transcripts
from sertool.errors import BadInput
from sertool.store.catalog import Catalog
from sertool.store.layout import StoreLayout

from encoder_helpers import speechlike

# clip_id, seconds, transcript, source
CLIPS = [
    ("c1", 0.5, "i can not believe it", "corpus"),
    ("c2", 0.6, None, None),
    ("c3", 0.7, "", "corpus"),  # an empty corpus transcript is still the corpus's
    ("c4", 0.8, None, None),
    ("c5", 1.0, None, None),
    ("c6", 0.9, None, None),  # recorded in `skipped` (unreadable): left alone
]


@pytest.fixture
def layout(tmp_path, models_dir) -> StoreLayout:
    layout = StoreLayout.at(tmp_path / "store")
    shutil.copytree(models_dir / "tiny", layout.models / "tiny")  # reuse the session's tiny models
    (tmp_path / "audio").mkdir()
    with Catalog(layout.catalog) as cat, cat.transaction():
        # clip paths are relative to the corpus root, as ingest writes them
        cat.execute("INSERT INTO corpora VALUES ('toy', ?, 'test', now()::TIMESTAMP)", [str(tmp_path)])
        for i, (cid, sec, text, src) in enumerate(CLIPS):
            sf.write(tmp_path / "audio" / f"{cid}.wav", speechlike(sec, i), 16_000, subtype="PCM_16")
            cat.execute(
                "INSERT INTO clips (clip_id, corpus, path, split, duration_s, transcript, transcript_source) "
                "VALUES (?, 'toy', ?, ?, ?, ?, ?)",
                [cid, f"audio/{cid}.wav", "Train" if i < 3 else "Development", sec, text, src],
            )
            if src == "corpus":  # beside the clip, as ingest writes it
                cat.execute("INSERT INTO transcripts (clip_id, source, text) VALUES (?, 'corpus', ?)", [cid, text])
        (tmp_path / "audio" / "c6.wav").write_bytes(b"not audio")
        cat.execute("INSERT INTO skipped VALUES ('c6', 'toy', 'audio/c6.wav', 'cannot read audio')")
    return layout


def rows(layout):
    with Catalog(layout.catalog, read_only=True) as cat:
        return {r[0]: r[1:] for r in cat.execute("SELECT clip_id, transcript, transcript_source FROM clips")}


def test_fills_missing_transcripts_only(layout):
    before = rows(layout)
    report = transcribe_missing(layout, preset="tiny", batch_size=2)
    assert (report.pending, report.transcribed) == (3, 3)
    after = rows(layout)
    for cid, _, text, src in CLIPS:
        if text is None and cid != "c6":
            assert after[cid][1] == "asr" and isinstance(after[cid][0], str)
        else:
            assert after[cid] == before[cid]
    with Catalog(layout.catalog, read_only=True) as cat:
        assert corpus_transcripts(cat) == ["i can not believe it", ""]
    # nothing left: a rerun does nothing
    assert transcribe_missing(layout, preset="tiny").pending == 0
    assert rows(layout) == after


def test_interrupted_run_keeps_committed_batches_and_resumes(layout):
    bad = layout.root.parent / "audio" / "c5.wav"  # the longest clip: transcribed last
    good = bad.read_bytes()
    bad.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(BadInput, match="c5.wav"):
        transcribe_missing(layout, preset="tiny", batch_size=1)
    mid = rows(layout)
    assert mid["c2"][1] == mid["c4"][1] == "asr" and mid["c5"] == (None, None)
    bad.write_bytes(good)
    report = transcribe_missing(layout, preset="tiny", batch_size=1)
    assert (report.pending, report.transcribed) == (1, 1)
    final = rows(layout)
    assert final["c5"][1] == "asr" and final["c2"] == mid["c2"] and final["c4"] == mid["c4"]


def test_cli(layout):
    runner = CliRunner()
    res = runner.invoke(app, ["--store", str(layout.root), "transcribe", "--preset", "tiny", "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    assert "transcribed 3 clips" in res.stdout
    assert sum(src == "asr" for _, src in rows(layout).values()) == 3
    res = runner.invoke(app, ["--store", str(layout.root), "transcribe", "--preset", "tiny"])
    assert res.exit_code == 0 and "nothing to transcribe" in res.stdout


# -- provenance: which model wrote each transcript, --all, --redo ------------------------------------------

def transcripts(layout) -> dict[tuple[str, str], tuple]:
    """(clip, source) -> (text, model, fingerprint, decoding) of every row of `transcripts`."""
    with Catalog(layout.catalog, read_only=True) as cat:
        return {(r[0], r[1]): r[2:] for r in cat.execute(
            "SELECT clip_id, source, text, model, fingerprint, decoding FROM transcripts")}


def snapshot(layout) -> tuple:
    return rows(layout), transcripts(layout)


@pytest.fixture(scope="module")
def second_whisper(models_dir, tmp_path_factory):
    """A second tiny Whisper: the tiny architecture and tokenizer, weights drawn from another seed (a real,
    different model with its own files and fingerprint), in a folder `--model-dir` loads."""
    import torch
    from transformers import WhisperForConditionalGeneration

    root = tmp_path_factory.mktemp("second-asr")
    shutil.copytree(models_dir / "tiny" / "whisper", root / "whisper")
    first = WhisperForConditionalGeneration.from_pretrained(root / "whisper")
    torch.manual_seed(7)
    other = WhisperForConditionalGeneration(first.config).eval()
    other.generation_config = first.generation_config
    other.save_pretrained(root / "whisper")
    return root


def test_asr_transcripts_record_their_model(layout):
    from sertool.encoders.asr import asr_source, transcriber_record

    report = transcribe_missing(layout, preset="tiny", batch_size=2)
    record = transcriber_record(asr_source("tiny", models_dir=layout.models))
    assert report.model == record.describe() and "sertool-tiny/whisper" in report.model
    got = transcripts(layout)
    asr = {c: v for (c, src), v in got.items() if src == "asr"}
    assert set(asr) == {"c2", "c4", "c5"}
    clips = rows(layout)
    for cid, (text, model, fp, decoding) in asr.items():
        assert (model, fp) == ("sertool-tiny/whisper", record.fingerprint)
        assert json.loads(decoding) == record.decoding and record.decoding["num_beams"] == 1
        assert clips[cid] == (text, "asr")  # the preferred text is the ASR one where the corpus has none
    assert got[("c1", "corpus")][0] == "i can not believe it" and ("c1", "asr") not in got


def test_all_transcribes_beside_the_corpus_and_never_replaces_it(layout):
    before = rows(layout)
    transcribe_missing(layout, preset="tiny", batch_size=4)
    report = transcribe_missing(layout, preset="tiny", batch_size=4, every=True)
    assert (report.pending, report.transcribed) == (2, 2)  # c1, c3: the corpus's clips (c6 is skipped)
    got, after = transcripts(layout), rows(layout)
    assert {c for c, s in got if s == "asr"} == {"c1", "c2", "c3", "c4", "c5"}
    assert after["c1"] == before["c1"] and after["c3"] == before["c3"]  # the corpus's text stays preferred
    assert got[("c1", "corpus")][0] == "i can not believe it" and got[("c3", "corpus")][0] == ""
    assert transcribe_missing(layout, preset="tiny", every=True).pending == 0


def test_a_second_model_refuses_to_mix_then_redo_replaces_only_asr_rows(layout, second_whisper):
    from sertool.audio import load_audio
    from sertool.encoders.asr import load_asr

    transcribe_missing(layout, preset="tiny", batch_size=4, every=True)
    first = snapshot(layout)
    runner = CliRunner()
    base = ["--store", str(layout.root), "transcribe", "--preset", "paper", "--model-dir", str(second_whisper)]
    res = runner.invoke(app, base)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "sertool-tiny/whisper" in res.stderr and "--redo" in res.stderr
    assert snapshot(layout) == first  # nothing written

    res = runner.invoke(app, [*base, "--redo", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    assert "replacing 5 of another model" in res.stdout
    clips, got = snapshot(layout)
    other = load_asr("paper", model_dir=second_whisper)
    assert other.record.fingerprint != first[1][("c2", "asr")][2]
    for (cid, src), (text, model, fp, _) in got.items():
        if src == "corpus":
            assert (text, model, fp) == first[1][(cid, src)][:3]  # corpus rows untouched
        else:
            assert fp == other.record.fingerprint and model == str((second_whisper / "whisper").resolve())
    assert clips["c1"] == first[0]["c1"] and clips["c3"] == first[0]["c3"]  # corpus text still preferred
    wav = load_audio(layout.root.parent / "audio" / "c2.wav")
    assert clips["c2"] == (other.transcribe([wav])[0], "asr")  # the new model's own text


def test_redo_with_nothing_to_redo_exits_2_and_changes_nothing(layout):
    runner = CliRunner()
    cmd = ["--store", str(layout.root), "transcribe", "--preset", "tiny", "--redo"]
    before = snapshot(layout)
    res = runner.invoke(app, cmd)  # no ASR transcripts at all
    assert res.exit_code == 2 and "nothing to redo" in res.stderr and res.stderr.count("\n") == 1
    assert snapshot(layout) == before
    transcribe_missing(layout, preset="tiny")
    before = snapshot(layout)
    res = runner.invoke(app, cmd)  # every ASR transcript is this model's
    assert res.exit_code == 2 and "nothing to redo" in res.stderr and "sertool-tiny/whisper" in res.stderr
    assert snapshot(layout) == before


# -- ASR quality ---------------------------------------------------------------------------------------

def test_error_rates_equal_jiwer_on_a_hand_written_pair():
    import jiwer

    from sertool.metrics import error_rates

    ref, hyp = "The cat sat on the mat.", "the cat sat on a hat"
    got = error_rates([ref], [hyp])
    # normalised: "the cat sat on the mat" vs "the cat sat on a hat": 2 substitutions in 6 words
    assert got["wer"] == pytest.approx(2 / 6) == jiwer.wer("the cat sat on the mat", "the cat sat on a hat")
    assert got["cer"] == pytest.approx(jiwer.cer("the cat sat on the mat", "the cat sat on a hat"))
    assert got["n_pairs"] == 1
    # corpus-level over several pairs (all edits / all reference words), empty references left out
    refs, hyps = ["Hello, world!", "", "good  morning"], ["hello word", "anything", "good morning to you"]
    got = error_rates(refs, hyps)
    assert got["wer"] == pytest.approx(jiwer.wer(["hello world", "good morning"], ["hello word", "good morning to you"]))
    assert got["wer"] == pytest.approx(3 / 4) and got["n_pairs"] == 2


def test_wer_is_reported_per_split_and_logged_as_an_asr_run(layout, tmp_path):
    from sertool.metrics import error_rates
    from sertool.tracking.tracker import Tracker

    runner = CliRunner()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = runner.invoke(app, ["--store", str(layout.root), "--tracking-uri", uri, "transcribe", "--wer"])
    assert res.exit_code == 2 and "sertool transcribe --all" in res.stderr  # nothing to compare yet
    res = runner.invoke(app, ["--store", str(layout.root), "--tracking-uri", uri, "transcribe", "--wer", "--all",
                              "--preset", "tiny"])
    assert res.exit_code == 0, res.output
    got = transcripts(layout)
    train = error_rates([got[("c1", "corpus")][0]], [got[("c1", "asr")][0]])  # c3's empty reference: left out
    assert "Train" in res.stdout and "lower case" in res.stdout
    run = Tracker(uri, store_root=layout.root).find_runs(kind="asr")[0]
    assert run.metrics["wer_train"] == pytest.approx(train["wer"]) and run.metrics["pairs_train"] == 1
    assert "punctuation removed" in run.params["normalisation"]
    assert "sertool-tiny/whisper" in run.params["asr_models"]
