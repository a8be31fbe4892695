"""Text embeddings follow their text: each RoBERTa row records the transcript's source and the SHA-256 of
the text it embedded; each text choice (`--text preferred|corpus|asr`) is its own variant; a transcript
that changes makes `embed` re-make exactly the rows that embedded it, and `store verify` report them."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from typer.testing import CliRunner

from sertool.cli import app
from sertool.jobs.embed import EmbedConfig, embed_store
from sertool.store.catalog import Catalog
from sertool.store.records import TranscriberRecord
from sertool.store.transcripts import write_asr

from .test_embed import clip_rows, read_all

ASR_MODEL = TranscriberRecord("test/hand-written-asr", "0", {"how": "a test writes these rows"})


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def text_rows(layout, variant: str) -> dict[str, tuple]:
    with Catalog(layout.catalog, read_only=True) as cat:
        return {r[0]: r[1:] for r in cat.execute(
            "SELECT clip_id, text_source, text_sha256, audio_sha256 FROM embeddings WHERE encoder = 'roberta' "
            "AND variant = ?", [variant])}


def verify(layout) -> tuple[int, dict]:
    res = CliRunner().invoke(app, ["--store", str(layout.root), "store", "verify", "--format", "json"])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def correct_transcript(layout, clip: str, text: str) -> None:
    """A corpus transcript corrected, as a re-ingest writes it: the clip's preferred text and its corpus row."""
    with Catalog(layout.catalog) as cat, cat.transaction():
        cat.execute("UPDATE clips SET transcript = ? WHERE clip_id = ?", [text, clip])
        cat.execute("UPDATE transcripts SET text = ? WHERE clip_id = ? AND source = 'corpus'", [text, clip])


def test_text_rows_record_the_text_they_embedded_and_the_default_stays_clean(layout, tiny_encoders):
    cfg = EmbedConfig(preset="tiny", encoders=("roberta",), batch_seconds=40.0)
    assert cfg.text == "preferred"
    report = embed_store(layout, cfg, encoders=[tiny_encoders["roberta"]])
    assert [(u.encoder, u.variant) for u in report.units] == [("roberta", "clean")]  # as before --text existed
    got = text_rows(layout, "clean")
    assert got == {cid: ("corpus", sha(text), None) for cid, _, text in clip_rows(layout)}


def test_a_changed_transcript_remakes_exactly_the_rows_that_embedded_it(layout, tiny_encoders):
    encoders = [tiny_encoders["wavlm"], tiny_encoders["roberta"]]
    embed_store(layout, EmbedConfig(preset="tiny", encoders=("wavlm", "roberta"), batch_seconds=40.0), encoders=encoders)
    embed_store(layout, EmbedConfig(preset="tiny", encoders=("roberta",), text="corpus", batch_seconds=40.0),
                encoders=[tiny_encoders["roberta"]])
    before = {(e, v): read_all(layout, e, v) for e, v in (("wavlm", "clean"), ("roberta", "clean"),
                                                          ("roberta", "text-corpus"))}
    assert verify(layout)[0] == 0
    clip = clip_rows(layout)[4][0]
    correct_transcript(layout, clip, "what a calm quiet evening")

    code, report = verify(layout)
    changed = {(p["encoder"], p["variant"]): p["clips"] for p in report["problems"] if p["kind"] == "text-changed"}
    assert code == 1 and changed == {("roberta", "clean"): [clip], ("roberta", "text-corpus"): [clip]}

    # the default text: its row is made again, text-corpus's is reported and left for a --text corpus run
    report = embed_store(layout, EmbedConfig(preset="tiny", encoders=("wavlm", "roberta"), batch_seconds=40.0),
                         encoders=encoders)
    assert report.text_remade == [(clip, "roberta", "clean")]
    assert report.text_stale_left == [(clip, "roberta", "text-corpus")] and report.remade == []
    assert {(u.encoder, u.variant): u.written for u in report.units} == {("wavlm", "clean"): 0, ("roberta", "clean"): 1}
    after = read_all(layout, "roberta", "clean")
    assert not np.array_equal(after[clip], before[("roberta", "clean")][clip])
    assert all(np.array_equal(after[c], before[("roberta", "clean")][c]) for c in after if c != clip)
    assert text_rows(layout, "clean")[clip][:2] == ("corpus", sha("what a calm quiet evening"))
    wavlm = read_all(layout, "wavlm", "clean")
    assert all(np.array_equal(wavlm[c], before[("wavlm", "clean")][c]) for c in wavlm)  # audio untouched

    report = embed_store(layout, EmbedConfig(preset="tiny", encoders=("roberta",), text="corpus", batch_seconds=40.0),
                         encoders=[tiny_encoders["roberta"]])
    assert report.text_remade == [(clip, "roberta", "text-corpus")] and report.written == 1
    assert np.array_equal(read_all(layout, "roberta", "text-corpus")[clip], after[clip])  # the same text, the same frames
    assert verify(layout)[0] == 0
    again = embed_store(layout, EmbedConfig(preset="tiny", encoders=("roberta",), batch_seconds=40.0),
                        encoders=[tiny_encoders["roberta"]])
    assert again.nothing_to_do and again.text_remade == []


def test_each_text_choice_is_its_own_variant(layout, tiny_encoders):
    rows = clip_rows(layout)
    asr = {cid: f"asr heard {i} words" for i, (cid, _, _) in enumerate(rows)}
    with Catalog(layout.catalog) as cat:
        write_asr(cat, list(asr.items()), ASR_MODEL)  # beside the corpus's: the preferred text stays the corpus's
    roberta = [tiny_encoders["roberta"]]
    for text in ("preferred", "asr"):
        embed_store(layout, EmbedConfig(preset="tiny", encoders=("roberta",), text=text, batch_seconds=40.0),
                    encoders=roberta)
    assert text_rows(layout, "text-asr") == {cid: ("asr", sha(t), None) for cid, t in asr.items()}
    assert text_rows(layout, "clean") == {cid: ("corpus", sha(t), None) for cid, _, t in rows}
    direct = dict(zip(asr, roberta[0].embed(list(asr.values()))))
    stored = read_all(layout, "roberta", "text-asr")
    assert all(np.allclose(stored[c], direct[c], atol=2e-3) for c in asr)  # the ASR text's frames, not the corpus's


def test_corpus_text_leaves_out_clips_without_one(layout, tiny_encoders):
    clip = clip_rows(layout)[1][0]
    with Catalog(layout.catalog) as cat, cat.transaction():  # a Test3 clip: audio only, ASR text preferred
        cat.execute("DELETE FROM transcripts WHERE clip_id = ?", [clip])
        cat.execute("UPDATE clips SET transcript = 'asr words', transcript_source = 'asr' WHERE clip_id = ?", [clip])
    embed_store(layout, EmbedConfig(preset="tiny", encoders=("roberta",), text="corpus", batch_seconds=40.0),
                encoders=[tiny_encoders["roberta"]])
    got = text_rows(layout, "text-corpus")
    assert clip not in got and len(got) == len(clip_rows(layout)) - 1


def test_asr_text_without_asr_transcripts_exits_2_naming_what_to_run(layout):
    with Catalog(layout.catalog, read_only=True) as cat:
        before = cat.execute("SELECT count(*) FROM embeddings")
    res = CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--preset", "tiny", "--encoders", "roberta",
                                   "--text", "asr"])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "no asr transcript" in res.stderr and "sertool transcribe --all" in res.stderr
    with Catalog(layout.catalog, read_only=True) as cat:
        assert cat.execute("SELECT count(*) FROM embeddings") == before
