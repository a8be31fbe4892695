"""A tiny corpus made here (wavs via soundfile, clip rows via Catalog) and the tiny models built once.

Independent of the ingest code on purpose: these tests exercise the embedding pipeline only.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sertool.store.catalog import Catalog
from sertool.store.layout import StoreLayout

@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The test machine's few cores are shared: one intra-op thread avoids OpenMP spin contention
    (measured here: 2 threads under load made a tiny Whisper forward 15x slower, not faster)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


WORDS = "i am so happy today this is terrible news what a calm quiet evening why did you do that".split()


def write_corpus(root: Path, n: int = 10, seed: int = 0) -> list[dict]:
    """`n` speech-like clips of 0.6-4 s; one at 8 kHz stereo to exercise downmix and resampling."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        sr, channels = (8_000, 2) if i == 3 else (16_000, 1)
        dur = float(rng.uniform(0.6, 4.0))
        t = np.arange(int(dur * sr)) / sr
        f0 = rng.uniform(100, 250)
        x = 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) * np.sin(2 * np.pi * f0 * t)
        x = (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        if channels == 2:
            x = np.stack([x, 0.5 * x], axis=1)
        name = f"clip_{i:03d}.wav"
        sf.write(root / name, x, sr)
        words = rng.choice(WORDS, size=int(rng.integers(3, 12)))
        rows.append(dict(clip_id=f"clip_{i:03d}", path=name, split="Train" if i % 4 else "Development",
                         duration_s=t.size / sr, sample_rate=sr, n_channels=channels,
                         transcript=" ".join(words)))
    return rows


def make_store(root: Path, corpus_dir: Path, rows: list[dict]) -> StoreLayout:
    layout = StoreLayout.at(root)
    with Catalog(layout.catalog) as cat, cat.transaction():
        cat.execute("INSERT INTO corpora VALUES ('tiny', ?, 'wav', ?)", [str(corpus_dir), dt.datetime.now()])
        for r in rows:
            cat.execute(
                "INSERT INTO clips (clip_id, corpus, path, split, duration_s, sample_rate, n_channels, transcript, "
                "transcript_source) VALUES (?, 'tiny', ?, ?, ?, ?, ?, ?, 'corpus')",
                [r["clip_id"], r["path"], r["split"], r["duration_s"], r["sample_rate"], r["n_channels"],
                 r["transcript"]],
            )
            # beside the clip, as ingest writes it (`store.transcripts`)
            cat.execute("INSERT INTO transcripts (clip_id, source, text) VALUES (?, 'corpus', ?)",
                        [r["clip_id"], r["transcript"]])
    return layout


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> tuple[Path, Path]:
    """(store root, corpus dir) of a store holding the tiny corpus and the built tiny models."""
    from sertool.encoders.presets import build_tiny

    base = tmp_path_factory.mktemp("embed-template")
    rows = write_corpus(base / "corpus")
    layout = make_store(base / "store", base / "corpus", rows)
    build_tiny(layout.models / "tiny", [r["transcript"] for r in rows])
    return layout.root, base / "corpus"


@pytest.fixture
def layout(template, tmp_path) -> StoreLayout:
    """A fresh copy of the template store (catalog + tiny models, no embeddings yet)."""
    root = tmp_path / "store"
    shutil.copytree(template[0], root)
    return StoreLayout.at(root)


@pytest.fixture(scope="session")
def tiny_encoders(template):
    """The three tiny encoders, loaded once (they depend only on the models folder, shared by copies)."""
    from sertool.encoders.registry import load_encoder

    models = StoreLayout.at(template[0]).models
    return {k: load_encoder(k, "tiny", models_dir=models) for k in ("whisper", "wavlm", "roberta")}
