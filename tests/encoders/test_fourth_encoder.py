"""Adding an encoder is one new module: HuBERT (`hubert_encoder.py`, beside this file) registers itself,
and embed -> train -> predict work with it without any other change to sertool."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def hubert():
    """Register the fourth kind for this module's tests only."""
    from sertool.encoders import base

    sys.path.insert(0, str(Path(__file__).parent))
    module = importlib.import_module("hubert_encoder")
    base.register(module.HubertEncoder)  # (again, should an earlier import have registered it)
    yield module.HubertEncoder
    base._REGISTRY.pop("hubert", None)


def test_a_fourth_encoder_embeds_trains_and_predicts(hubert, tmp_path):
    import soundfile as sf

    from sertool.corpus.ingest import ingest_msp_podcast
    from sertool.corpus.synthetic import write_synthetic_corpus
    from sertool.jobs.embed import EmbedConfig, embed_store
    from sertool.jobs.predict import PredictConfig, predict_files
    from sertool.store.catalog import Catalog
    from sertool.store.embeddings import stored_encoders
    from sertool.store.layout import StoreLayout
    from sertool.tracking.tracker import Tracker
    from sertool.train.config import TrainConfig
    from sertool.train.runs import train

    layout = StoreLayout.at(tmp_path / "store")
    ingest_msp_podcast(layout.catalog, write_synthetic_corpus(tmp_path / "corpus", n_clips=40), progress=False)
    report = embed_store(layout, EmbedConfig(preset="tiny", encoders=("hubert", "roberta")))
    assert {(u.encoder, u.variant, u.written) for u in report.units} == {("hubert", "clean", 40), ("roberta", "clean", 40)}
    with Catalog(layout.catalog, read_only=True) as cat:
        stored = stored_encoders(cat)
    assert (stored["hubert"].kind, stored["hubert"].dim, stored["hubert"].frame_rate) == ("hubert", 48, 50.0)
    assert stored["hubert"].checkpoint == "sertool-tiny/hubert"

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="fourth")
    config = TrainConfig(encoders=("hubert", "roberta"), epochs=2, warmup_epochs=0, proj_dim=16, lstm_hidden=16,
                         batch_size=8, lr=1e-3, num_workers=0, device="cpu", augment=False)
    result = train(config, layout, tracker)
    run = tracker.get_run(result.run_id)
    assert run.status == "FINISHED" and run.tags["sertool.encoder.hubert"] == stored["hubert"].fingerprint
    assert 0.0 <= result.best["f1_macro"] <= 1.0

    wav = tmp_path / "new.wav"
    rng = np.random.default_rng(0)
    sf.write(wav, (0.1 * rng.standard_normal(16_000 * 2)).astype(np.float32), 16_000)
    pred = predict_files(layout, result.run_id, [wav], PredictConfig(transcript="what a day"), tracker)
    (row,) = pred.rows
    assert np.isclose(row.probs.sum(), 1.0) and np.all((row.attrs >= 1) & (row.attrs <= 7))
