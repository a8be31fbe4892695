"""`sertool transcribe` on a tiny catalog: ASR fills only missing transcripts, batch by batch."""

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
                "INSERT INTO clips (clip_id, corpus, path, duration_s, transcript, transcript_source) "
                "VALUES (?, 'toy', ?, ?, ?, ?)",
                [cid, f"audio/{cid}.wav", sec, text, src],
            )
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
