"""Bad clips at embed time (hardening issue, defects 6, 7, 10, 11): audio under 25 ms or over
`--max-seconds`, transcripts over `--max-transcript-chars`, NaN samples only decoding finds, and clips
embed skipped earlier that are fine now.

Every bad clip is one stderr line naming the file and field with exit code 2 and the store as it was
(NaN found while loading: the batches committed before it stay); `--skip-bad` records it in `skipped`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from sertool.cli import app
from sertool.jobs.embed import bucket_batches
from sertool.store.catalog import Catalog
from sertool.store.clips import clips_to_embed

from .test_embed import clip_rows, read_all, snapshot


def tone(seconds: float, sr: int = 16_000) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


def point(layout, clip_id: str, path: Path) -> None:
    with Catalog(layout.catalog) as cat:
        cat.execute("UPDATE clips SET path = ? WHERE clip_id = ?", [str(path), clip_id])


def embed(layout, *args: str):
    return CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--preset", "tiny", *args])


def one_line(result) -> str:
    """The error line: the only stderr line besides the progress bar's last state, which a run stopped
    mid-work leaves above it (how far it got: the batches committed)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and "clips/s" not in ln]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def skipped(layout) -> dict[str, str]:
    with Catalog(layout.catalog, read_only=True) as cat:
        return dict(cat.execute("SELECT clip_id, reason FROM skipped"))


def embedded(layout, encoder: str) -> set[str]:
    with Catalog(layout.catalog, read_only=True) as cat:
        return {r[0] for r in cat.execute("SELECT clip_id FROM embeddings WHERE encoder = ?", [encoder])}


def test_clips_shorter_than_25_ms_are_bad_input(layout, tmp_path):
    """A 10 ms wav (and a 190-sample 8 kHz one: 380 samples at 16 kHz) used to give a conv traceback
    in a batch of its own, or 0 WavLM frames, silently stored, in a mixed batch."""
    click, blip = tmp_path / "click.wav", tmp_path / "blip.wav"
    sf.write(click, tone(0.01), 16_000)
    sf.write(blip, tone(190 / 8_000, 8_000), 8_000)
    point(layout, "clip_002", click)
    point(layout, "clip_007", blip)
    before = snapshot(layout)
    res = embed(layout, "--encoders", "wavlm")
    assert res.exit_code == 2
    line = one_line(res)
    assert str(click) in line and "audio: audio is 10.0 ms long" in line and "25 ms minimum" in line
    assert "1 more bad clip" in line and "--skip-bad" in line
    assert snapshot(layout) == before and not layout.embeddings.exists()

    res = embed(layout, "--encoders", "wavlm", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert "skipped clip_002" in res.stderr and "skipped clip_007" in res.stderr
    reasons = skipped(layout)
    assert set(reasons) == {"clip_002", "clip_007"}
    assert all(r.startswith("embed: audio: audio is") for r in reasons.values())
    frames = read_all(layout, "wavlm", "clean")
    assert set(frames) == {r[0] for r in clip_rows(layout)} - {"clip_002", "clip_007"}
    assert min(f.shape[0] for f in frames.values()) > 0


def test_nan_samples_stop_before_their_batch_or_are_skipped_and_taken_back_once_fixed(layout, tmp_path):
    """NaN samples pass the header check; loading finds them. Without --skip-bad the run stops before
    that batch writes anything (earlier batches stay, a rerun resumes); with it the clip goes to
    `skipped` and the run goes on; once the file is fixed, the next embed takes the clip back."""
    with Catalog(layout.catalog) as cat:  # a skip ingest recorded: embed leaves it alone
        cat.execute("INSERT INTO skipped SELECT clip_id, corpus, path, 'unreadable audio: test' FROM clips "
                    "WHERE clip_id = 'clip_001'")
        plan = bucket_batches(clips_to_embed(cat), 4.0)  # wavlm costs its duration: the run's plan
    bad = plan[-1][0].clip_id  # the last batch: earlier ones commit first
    nan = tmp_path / "nan.wav"
    x = tone(2.0)
    x[5_000:5_100] = np.nan
    sf.write(nan, x, 16_000, subtype="FLOAT")
    point(layout, bad, nan)
    args = ["--encoders", "wavlm,roberta", "--batch-seconds", "4"]

    res = embed(layout, *args)
    assert res.exit_code == 2
    line = one_line(res)
    assert line.startswith(f"error: {nan}: audio: audio contains NaN")
    assert embedded(layout, "wavlm") == {c.clip_id for b in plan[:-1] for c in b}  # nothing of the bad batch
    assert set(skipped(layout)) == {"clip_001"}

    res = embed(layout, *args, "--skip-bad")
    assert res.exit_code == 0, res.output
    assert f"skipped {bad} ({nan}): audio: audio contains NaN" in res.stderr
    assert skipped(layout)[bad].startswith("embed: audio: audio contains NaN")
    everyone = {r[0] for r in clip_rows(layout)} - {"clip_001"}
    assert embedded(layout, "wavlm") == embedded(layout, "roberta") == everyone - {bad}

    sf.write(nan, tone(2.0), 16_000)  # fixed
    res = embed(layout, *args)
    assert res.exit_code == 0, res.output
    assert f"1 clip(s) skipped by an earlier embed pass every check now and are embedded ({bad})" in res.stderr
    assert embedded(layout, "wavlm") == embedded(layout, "roberta") == everyone
    assert skipped(layout) == {"clip_001": "unreadable audio: test"}


def test_clips_over_the_length_limits_are_bad_input_until_the_limits_allow_them(layout):
    """--max-seconds and --max-transcript-chars name the clip over them; with --skip-bad they are
    skipped, and a later embed whose limits allow them takes them back."""
    before = snapshot(layout)
    args = ["--encoders", "wavlm,roberta", "--max-seconds", "2.9", "--max-transcript-chars", "45"]
    res = embed(layout, *args)
    assert res.exit_code == 2
    line = one_line(res)  # clip_000 (47 characters) comes first; clip_007 (3.9 s), clip_008 (3.0 s, 49) too
    assert f"{layout.catalog}: transcript: clip clip_000: transcript is 47 characters" in line
    assert "over the 45 limit (--max-transcript-chars) (2 more bad clip(s)" in line
    assert snapshot(layout) == before

    res = embed(layout, *args, "--skip-bad")
    assert res.exit_code == 0, res.output
    reasons = skipped(layout)
    assert set(reasons) == {"clip_000", "clip_007", "clip_008"}
    assert reasons["clip_007"].startswith("embed: audio: audio is 3.9 s long, over the 2.9 s limit (--max-seconds)")
    assert reasons["clip_008"].startswith("embed: transcript: clip clip_008: transcript is 49 characters")
    assert embedded(layout, "wavlm") == {r[0] for r in clip_rows(layout)} - set(reasons)

    res = embed(layout, "--encoders", "wavlm,roberta")  # the default limits
    assert res.exit_code == 0, res.output
    assert "re-checked: 3 clip(s)" in res.stderr
    assert skipped(layout) == {} and embedded(layout, "roberta") == {r[0] for r in clip_rows(layout)}
