"""`sertool models save --preset paper-random`, then `embed --preset paper --model-dir`: the path real
checkpoints take, with the frames paper-random makes in memory (paper widths at depth 1: fast)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from sertool.audio import load_audio
from sertool.cli import app
from sertool.encoders.paper import paper_random_encoders
from sertool.store.catalog import Catalog
from sertool.store.clips import corpus_transcripts
from sertool.store.embeddings import EmbeddingStore

KINDS = ("wavlm", "roberta")  # Whisper's round trip: tests/encoders/test_paper_random.py


def test_saved_models_embed_as_paper_checkpoints(layout, tmp_path):
    runner = CliRunner()
    out = tmp_path / "models"
    res = runner.invoke(app, ["--store", str(layout.root), "models", "save", "--out", str(out),
                              "--encoders", ",".join(KINDS), "--layers", "1"])
    assert res.exit_code == 0, res.output
    assert "wavlm" in res.stdout and "roberta" in res.stdout
    for kind in KINDS:
        assert json.loads((out / kind / "config.json").read_text())["sertool_random_weights"].startswith("seed=")

    res = runner.invoke(app, ["--store", str(layout.root), "embed", "--preset", "paper", "--model-dir", str(out),
                              "--encoders", ",".join(KINDS), "--splits", "Development"])  # 3 clips: paper widths
    assert res.exit_code == 0, res.output

    with Catalog(layout.catalog, read_only=True) as cat:
        texts = corpus_transcripts(cat)
        rows = cat.execute("SELECT c.clip_id, co.root || '/' || c.path, c.transcript FROM clips c "
                           "JOIN corpora co USING (corpus) WHERE split = 'Development' ORDER BY 1")
        revisions = dict(cat.execute("SELECT name, revision FROM encoders"))
        reader = EmbeddingStore(layout).reader([(k, "clean") for k in KINDS], catalog=cat)
    assert all(revisions[k].startswith("random(seed=") for k in KINDS)
    live = paper_random_encoders(tmp_path / "live", KINDS, texts=texts, layers=1)
    ids = [r[0] for r in rows]
    assert len(ids) == 3
    for kind in KINDS:
        want = live[kind].embed([r[2] for r in rows] if kind == "roberta" else [load_audio(r[1]) for r in rows])
        for got, w in zip(reader.read(kind, "clean", ids), want):
            # the embed batches clips otherwise: the same frames up to float rounding and fp16 storage
            assert np.abs(got.astype(np.float32) - w).max() / np.abs(w).max() < 2e-3, kind


def test_save_is_one_line_on_bad_input(layout, tmp_path):
    (tmp_path / "models" / "wavlm").mkdir(parents=True)
    runner = CliRunner()
    base = ["--store", str(layout.root), "models", "save", "--layers", "1"]
    for args, words in (
        (["--out", str(tmp_path / "models"), "--encoders", "wavlm"], "exists already"),
        (["--out", str(tmp_path / "x"), "--preset", "tiny"], "only paper-random"),
        (["--out", str(tmp_path / "x"), "--encoders", "hubertish"], "no paper-random model for hubertish"),
    ):
        res = runner.invoke(app, base + args)
        assert res.exit_code == 2, res.output
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1
