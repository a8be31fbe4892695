"""`sertool embed --whisper-window trimmed`: Whisper on each clip's own length, in its own array."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.errors import InvalidOption, StoreMismatch
from sertool.jobs.embed import EmbedConfig, embed_store
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore


def stored(layout, encoder: str = "whisper") -> tuple[str, dict[str, np.ndarray]]:
    """(fingerprint, clip id -> frames) of the encoder's clean array."""
    with Catalog(layout.catalog, read_only=True) as cat:
        (fp,) = cat.execute("SELECT fingerprint FROM encoders WHERE name = ?", [encoder])[0]
        ids = [r[0] for r in cat.execute(
            "SELECT clip_id FROM embeddings WHERE encoder = ? AND variant = 'clean' ORDER BY 1", [encoder])]
        reader = EmbeddingStore(layout).reader([(encoder, "clean")], catalog=cat)
        durations = dict(cat.execute("SELECT clip_id, duration_s FROM clips"))
    frames = dict(zip(ids, reader.read(encoder, "clean", ids)))
    return fp, {c: (f, durations[c]) for c, f in frames.items()}


def test_trimmed_frames_are_50_per_second_under_their_own_fingerprint(layout, tiny_encoders, tmp_path):
    res = CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--preset", "tiny", "--encoders", "whisper",
                                   "--whisper-window", "trimmed"])
    assert res.exit_code == 0, res.output
    fp, frames = stored(layout)
    assert fp == tiny_encoders["whisper"].configured(window="trimmed").record.fingerprint
    assert fp != tiny_encoders["whisper"].record.fingerprint
    for clip_id, (f, duration) in frames.items():
        assert f.shape[0] == int(np.ceil(round(duration * 16_000) / 320)), clip_id

    # never mixed: the padded encoder refuses to write into the trimmed array, before any work
    with pytest.raises(StoreMismatch):
        embed_store(layout, EmbedConfig(preset="tiny", encoders=("whisper",)),
                    encoders=[tiny_encoders["whisper"]])


def test_trimmed_batches_hold_more_clips(layout, tiny_encoders):
    cfg = EmbedConfig(preset="tiny", encoders=("whisper",), whisper_window="trimmed", batch_seconds=30.0)
    assert cfg.encoder_options() == {"whisper": {"window": "trimmed"}}
    trimmed = tiny_encoders["whisper"].configured(window="trimmed")
    report = embed_store(layout, cfg, encoders=[trimmed])
    assert report.units[0].written == 10
    # padded, 30 s of batch holds one clip per forward pass; trimmed packs the clips' own seconds
    assert trimmed.padded_seconds(4.0) == 4.0 and tiny_encoders["whisper"].padded_seconds(4.0) == 30.0


def test_a_window_that_does_not_exist_is_one_line(layout):
    with pytest.raises(InvalidOption, match="whisper_window"):
        EmbedConfig(preset="tiny", whisper_window="cropped")
    res = CliRunner().invoke(app, ["--store", str(layout.root), "embed", "--preset", "tiny",
                                   "--whisper-window", "cropped"])
    assert res.exit_code == 2 and "cropped" in res.output
