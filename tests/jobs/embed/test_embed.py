"""`sertool embed` end to end on a tiny corpus: read-back, variants, reruns, bad input, a second writer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.jobs.augment import augment
from sertool.jobs.embed import EmbedConfig, embed_store
from sertool.audio import load_audio
from sertool.errors import BadInput, StoreInUse
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore

ALL = ("whisper", "wavlm", "roberta")


def snapshot(layout) -> dict[str, list[tuple]]:
    """Every catalog table the embed command may touch, in a comparable form."""
    with Catalog(layout.catalog, read_only=True) as cat:
        return {
            t: cat.execute(f"SELECT * {'EXCLUDE (created_at)' if t == 'encoders' else ''} FROM {t} ORDER BY ALL")
            for t in ("clips", "skipped", "encoders", "embeddings")
        }


def clip_rows(layout) -> list[tuple]:
    with Catalog(layout.catalog, read_only=True) as cat:
        return cat.execute(
            "SELECT c.clip_id, co.root || '/' || c.path, c.transcript FROM clips c JOIN corpora co USING (corpus) "
            "ORDER BY 1"
        )


def read_all(layout, encoder: str, variant: str) -> dict[str, np.ndarray]:
    with Catalog(layout.catalog, read_only=True) as cat:
        ids = [r[0] for r in cat.execute(
            "SELECT clip_id FROM embeddings WHERE encoder = ? AND variant = ? ORDER BY 1", [encoder, variant])]
        reader = EmbeddingStore(layout).reader([(encoder, variant)], catalog=cat)
    return dict(zip(ids, reader.read(encoder, variant, ids)))


def test_embed_reads_back_what_each_encoder_makes(layout, tiny_encoders):
    cfg = EmbedConfig(preset="tiny", encoders=ALL, augment=("noise",), batch_seconds=40.0)
    report = embed_store(layout, cfg, encoders=list(tiny_encoders.values()))
    rows = clip_rows(layout)
    n = len(rows)
    assert {(u.encoder, u.variant): u.written for u in report.units} == {
        ("whisper", "clean"): n, ("whisper", "noise"): n, ("wavlm", "clean"): n, ("wavlm", "noise"): n,
        ("roberta", "clean"): n,  # text: no augmented variants
    }
    for kind, enc in tiny_encoders.items():
        stored = read_all(layout, kind, "clean")
        assert sorted(stored) == [r[0] for r in rows]
        for clip_id, path, transcript in rows[:4]:
            x = transcript if kind == "roberta" else load_audio(path)
            (ref,) = enc.embed([x])  # one clip alone: batching must not change a clip's frames
            np.testing.assert_allclose(stored[clip_id].astype(np.float32), ref, rtol=1e-2, atol=2e-3)
    # the augmented variant holds the frames of the augmented audio, not of the clean one
    clip_id, path, _ = rows[0]
    (ref,) = tiny_encoders["wavlm"].embed([augment(load_audio(path), "noise", clip_id=clip_id, seed=0)])
    noisy = read_all(layout, "wavlm", "noise")[clip_id].astype(np.float32)
    np.testing.assert_allclose(noisy, ref, rtol=1e-2, atol=2e-3)
    assert not np.allclose(noisy, read_all(layout, "wavlm", "clean")[clip_id], atol=1e-2)


def test_rerun_does_nothing_and_roberta_is_never_reembedded(layout, tiny_encoders):
    encs = list(tiny_encoders.values())
    embed_store(layout, EmbedConfig(preset="tiny", encoders=ALL), encoders=encs)
    before = snapshot(layout)
    # adding augmented variants embeds audio only: the transcript is the same for every variant
    report = embed_store(layout, EmbedConfig(preset="tiny", encoders=ALL, augment=("gain",)), encoders=encs)
    written = {(u.encoder, u.variant): u.written for u in report.units if u.written}
    assert set(written) == {("whisper", "gain"), ("wavlm", "gain")}
    with Catalog(layout.catalog, read_only=True) as cat:
        assert cat.execute("SELECT DISTINCT variant FROM embeddings WHERE encoder = 'roberta'") == [("clean",)]
        assert cat.scalar("SELECT count(*) FROM embeddings") == cat.scalar(
            "SELECT count(*) FROM (SELECT DISTINCT clip_id, encoder, variant FROM embeddings)")
    roberta_rows = [r for r in snapshot(layout)["embeddings"] if r[1] == "roberta"]
    assert roberta_rows == [r for r in before["embeddings"] if r[1] == "roberta"]

    files = {p: p.stat().st_mtime_ns for p in layout.embeddings.rglob("*") if p.is_file()}
    after = snapshot(layout)
    result = CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--preset", "tiny", "--augment", "gain"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout
    assert snapshot(layout) == after
    assert {p: p.stat().st_mtime_ns for p in layout.embeddings.rglob("*") if p.is_file()} == files


def test_augmented_frames_do_not_depend_on_batching(layout, tiny_encoders, tmp_path, template):
    """Same seed -> the same augmented audio whatever batch a clip lands in."""
    import shutil

    from sertool.store.layout import StoreLayout

    other = StoreLayout.at(tmp_path / "other")
    shutil.copytree(template[0], other.root)
    enc = [tiny_encoders["wavlm"]]
    embed_store(layout, EmbedConfig(preset="tiny", encoders=("wavlm",), augment=("reverb",), batch_seconds=5.0), encoders=enc)
    embed_store(other, EmbedConfig(preset="tiny", encoders=("wavlm",), augment=("reverb",), batch_seconds=500.0), encoders=enc)
    a, b = read_all(layout, "wavlm", "reverb"), read_all(other, "wavlm", "reverb")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k].astype(np.float32), b[k].astype(np.float32), rtol=1e-2, atol=2e-3)


def test_missing_transcript_stops_before_any_work(layout, tiny_encoders):
    with Catalog(layout.catalog) as cat:
        cat.execute("UPDATE clips SET transcript = NULL WHERE clip_id = 'clip_005'")
    before = snapshot(layout)
    with pytest.raises(BadInput) as e:
        embed_store(layout, EmbedConfig(preset="tiny", encoders=ALL), encoders=list(tiny_encoders.values()))
    assert e.value.field == "transcript" and "clip_005" in str(e.value) and "sertool transcribe" in str(e.value)
    assert snapshot(layout) == before and not layout.embeddings.exists()
    # audio encoders alone do not need transcripts
    report = embed_store(layout, EmbedConfig(preset="tiny", encoders=("wavlm",)), encoders=[tiny_encoders["wavlm"]])
    assert report.written == len(clip_rows(layout))


def test_empty_transcript_is_embedded_not_refused(layout, tiny_encoders):
    """ASR that hears no words (or an empty corpus file) leaves '' — an answer, unlike NULL."""
    with Catalog(layout.catalog) as cat:
        cat.execute("UPDATE clips SET transcript = '', transcript_source = 'asr' WHERE clip_id = 'clip_005'")
    embed_store(layout, EmbedConfig(preset="tiny", encoders=("roberta",)), encoders=[tiny_encoders["roberta"]])
    frames = read_all(layout, "roberta", "clean")
    assert frames["clip_005"].shape[0] == 2  # <s></s>
    assert len(frames) == len(clip_rows(layout))


def test_corrupt_wav_is_one_line_exit_2_and_leaves_the_catalog(layout, tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage, not audio")
    with Catalog(layout.catalog) as cat:
        cat.execute("UPDATE clips SET path = ? WHERE clip_id = 'clip_002'", [str(bad)])
    before = snapshot(layout)
    args = ["--store", str(layout.root), "embed", "--preset", "tiny", "--encoders", "wavlm"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "audio" in lines[0]
    assert snapshot(layout) == before

    result = CliRunner().invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "clip_002" in result.stderr
    with Catalog(layout.catalog, read_only=True) as cat:
        assert cat.execute("SELECT clip_id FROM skipped") == [("clip_002",)]
        embedded = {r[0] for r in cat.execute("SELECT clip_id FROM embeddings")}
    assert "clip_002" not in embedded and len(embedded) == len(before["clips"]) - 1


def test_second_writer_is_refused(layout, tiny_encoders):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from sertool.store.catalog import Catalog; c = Catalog(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(layout.catalog)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUse, match="in use"):
            embed_store(layout, EmbedConfig(preset="tiny", encoders=("wavlm",)), encoders=[tiny_encoders["wavlm"]])
        result = CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--preset", "tiny", "--encoders", "wavlm"])
        assert result.exit_code == 2 and "store is in use" in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_paper_preset_is_the_default_and_says_how_to_get_it(layout, monkeypatch):
    """A plain `sertool embed` must never store random-weight embeddings: it means the paper checkpoints,
    and without them it stops before any work with one line saying where to get them."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(layout.root / "empty-hf-cache"))
    before = _dump(layout)
    res = CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--encoders", "wavlm"])
    assert res.exit_code == 2
    (line,) = res.output.strip().splitlines()
    assert "microsoft/wavlm-large: not in the Hugging Face cache" in line and "--model-dir" in line
    assert _dump(layout) == before


def _dump(layout) -> list:
    with Catalog(layout.catalog, read_only=True) as cat:
        tables = [r[0] for r in cat.execute("SELECT table_name FROM information_schema.tables ORDER BY 1")]
        return [(t, sorted(map(repr, cat.execute(f"SELECT * FROM {t}")))) for t in tables]
