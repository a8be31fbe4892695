"""Audio provenance: every audio row records the SHA-256 of the bytes it was made from; audio changed
after embedding is flagged by `store verify --audio` and made again by `embed` (never silently reused),
while a file that was only touched keeps its rows."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from sertool.cli import app
from sertool.jobs.embed import EmbedConfig, embed_store
from sertool.store.catalog import Catalog

from .test_embed import clip_rows, read_all


def verify_audio(layout) -> tuple[int, dict]:
    res = CliRunner().invoke(app, ["--store", str(layout.root), "store", "verify", "--audio", "--format", "json"])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def test_changed_audio_is_flagged_then_embedded_again(layout, tiny_encoders):
    encoders = [tiny_encoders["whisper"], tiny_encoders["wavlm"], tiny_encoders["roberta"]]
    cfg = EmbedConfig(preset="tiny", encoders=("whisper", "wavlm", "roberta"), batch_seconds=40.0)
    embed_store(layout, cfg, encoders=encoders)
    rows = clip_rows(layout)
    clip, path = rows[2][0], rows[2][1]
    with Catalog(layout.catalog, read_only=True) as cat:
        hashes = dict(cat.execute("SELECT encoder, audio_sha256 FROM embeddings WHERE clip_id = ?", [clip]))
        sums = cat.scalar("SELECT count(*) FROM embeddings WHERE checksum IS NULL")
        stamp = cat.execute("SELECT sha256, size_bytes FROM audio_hashes WHERE clip_id = ?", [clip])[0]
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert hashes == {"whisper": sha, "wavlm": sha, "roberta": None} and sums == 0  # text rows: no audio
    assert stamp == (sha, os.path.getsize(path))
    assert verify_audio(layout)[0] == 0

    before = {e: read_all(layout, e, "clean") for e in ("whisper", "wavlm")}
    x, sr = sf.read(path)
    sf.write(path, np.ascontiguousarray(x[::-1]), sr)  # the same length, other audio
    code, report = verify_audio(layout)
    changed = {(p["encoder"], p["variant"]): p["clips"] for p in report["problems"] if p["kind"] == "audio-changed"}
    assert code == 1 and changed == {("whisper", "clean"): [clip], ("wavlm", "clean"): [clip]}

    # embed with wavlm only: its row is made again; whisper's is reported, left for a whisper run
    wavlm_only = EmbedConfig(preset="tiny", encoders=("wavlm",), batch_seconds=40.0)
    report = embed_store(layout, wavlm_only, encoders=[tiny_encoders["wavlm"]])
    assert report.remade == [(clip, "wavlm", "clean")] and report.stale_left == [(clip, "whisper", "clean")]
    assert report.written == 1
    after = read_all(layout, "wavlm", "clean")
    assert not np.array_equal(after[clip], before["wavlm"][clip])
    assert all(np.array_equal(after[c], before["wavlm"][c]) for c in after if c != clip)  # nobody else moved
    code, report = verify_audio(layout)
    assert code == 1 and [(p["encoder"], p["clips"]) for p in report["problems"]] == [("whisper", [clip])]

    res = CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--preset", "tiny", "--encoders", "whisper",
                                   "--batch-seconds", "40"])
    assert res.exit_code == 0, res.output
    assert "audio changed since it was embedded: 1 embedding(s)" in res.stderr and clip in res.stderr
    assert verify_audio(layout)[0] == 0
    # the frames of the new audio are what a fresh embed of it makes
    fresh = tiny_encoders["whisper"].embed([__import__("sertool.audio", fromlist=["load_audio"]).load_audio(path)])[0]
    np.testing.assert_allclose(read_all(layout, "whisper", "clean")[clip].astype(np.float32),
                               np.asarray(fresh, dtype=np.float16).astype(np.float32), rtol=0, atol=1e-3)


def test_a_touched_file_keeps_its_rows(layout, tiny_encoders):
    cfg = EmbedConfig(preset="tiny", encoders=("wavlm",), batch_seconds=40.0)
    embed_store(layout, cfg, encoders=[tiny_encoders["wavlm"]])
    clip, path = clip_rows(layout)[0][:2]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    report = embed_store(layout, cfg, encoders=[tiny_encoders["wavlm"]])
    assert report.remade == [] and report.nothing_to_do
    with Catalog(layout.catalog, read_only=True) as cat:  # the fresh stamp is kept: the next run only stats
        assert cat.scalar("SELECT mtime_ns FROM audio_hashes WHERE clip_id = ?", [clip]) == st.st_mtime_ns + 5_000_000_000


def test_embed_says_which_rows_have_no_checksum(layout, tiny_encoders):
    """Rows from before checksums read as ever; a re-embed says they cannot be checked."""
    cfg = EmbedConfig(preset="tiny", encoders=("wavlm",), batch_seconds=40.0)
    embed_store(layout, cfg, encoders=[tiny_encoders["wavlm"]])
    with Catalog(layout.catalog) as cat:
        cat.execute("UPDATE embeddings SET checksum = NULL")
    report = embed_store(layout, cfg, encoders=[tiny_encoders["wavlm"]])
    assert report.nothing_to_do and report.unchecked == len(clip_rows(layout))
