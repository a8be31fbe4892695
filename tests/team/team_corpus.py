"""A tiny audio corpus in a fresh store (wavs via soundfile, clip rows via Catalog), with the tiny models built."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import soundfile as sf

from sertool.store.catalog import Catalog
from sertool.store.layout import StoreLayout

WORDS = "i am so happy today this is terrible news what a calm quiet evening why did you do that".split()


def make_audio_store(root: Path, n: int = 8, seed: int = 0) -> StoreLayout:
    """`n` speech-like clips of 0.5-3 s with transcripts, and the tiny encoders built into the store."""
    from sertool.encoders.presets import build_tiny

    rng = np.random.default_rng(seed)
    audio = root / "corpus"
    audio.mkdir(parents=True)
    layout = StoreLayout.at(root / "store")
    texts = []
    with Catalog(layout.catalog) as cat, cat.transaction():
        cat.execute("INSERT INTO corpora VALUES ('tiny', ?, 'wav', ?)", [str(audio), dt.datetime.now()])
        for i in range(n):
            sr = 16_000
            t = np.arange(int(rng.uniform(0.5, 3.0) * sr)) / sr
            x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 250) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            x = (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
            sf.write(audio / f"c{i:02d}.wav", x, sr)
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 10))))
            texts.append(text)
            cat.execute(
                "INSERT INTO clips (clip_id, corpus, path, split, duration_s, sample_rate, n_channels, transcript, "
                "transcript_source) VALUES (?, 'tiny', ?, 'Train', ?, ?, 1, ?, 'corpus')",
                [f"c{i:02d}", f"c{i:02d}.wav", t.size / sr, sr, text],
            )
    build_tiny(layout.models / "tiny", texts)
    return layout
