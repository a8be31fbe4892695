"""Real tiny checkpoints logged as runs, and wav files that no corpus holds.

The tiny encoders are built offline into the test store; small `FusionModel`s with random weights are
saved with the training code's checkpoint helpers and logged as train runs whose tags and checkpoint
config carry the encoders' real fingerprints; an ensemble run records members as `sertool ensemble` does.
Stacked ensembles are made by `sertool ensemble --method stack` itself, over two such runs that also
carry dev and Test3 predictions of a small labelled catalog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TEXTS = [
    "i can not believe you did that again",
    "that is wonderful news thank you so much",
    "well i guess we will see what happens tomorrow",
    "please stop talking about the weather all the time",
] * 5
ENCODERS = ("whisper", "wavlm", "roberta")


def speechlike(seconds: float, seed: int, sr: int = 16_000) -> np.ndarray:
    """Noise with a slow loudness envelope (real dynamics for normalisation and attention to act on)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    env = 0.05 + 0.3 * np.abs(np.sin(np.linspace(0, 3 * seconds, n)))
    return (rng.standard_normal(n) * env).astype(np.float32)


@dataclass
class Setup:
    layout: object
    uri: str
    experiment: str
    encoders: dict  # name -> loaded Encoder
    tracker: object
    models: dict = field(default_factory=dict)  # run name -> FusionModel
    run_ids: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict)  # name -> Path


def _log_checkpoint(tracker, tmp: Path, name: str, seed: int, encoders: dict, experiment: str,
                    fingerprints: dict[str, str] | None = None, tags: dict[str, str] | None = None,
                    predictions: dict | None = None, metrics: dict[str, float] | None = None,
                    aux: dict[str, int] | None = None):
    import torch

    from sertool.model.fusion import FusionConfig, FusionModel
    from sertool.labels import ATTRIBUTES, CLASSES
    from sertool.tracking.names import encoder_tag
    from sertool.train.checkpoint import CheckpointInfo, save_checkpoint

    fps = {n: e.record.fingerprint for n, e in encoders.items()} | (fingerprints or {})
    torch.manual_seed(seed)
    config = FusionConfig(encoders={n: e.record.dim for n, e in encoders.items()}, proj_dim=16, lstm_hidden=16,
                          lstm_layers=1, attn_hidden=8, aux=aux or {})
    model = FusionModel(config).eval()
    # what a training run records of each encoder (train.data.TrainingData.encoder_meta)
    meta = {n: {"dim": e.record.dim, "fingerprint": fps[n], "kind": e.record.kind, "layer": e.record.layer}
            for n, e in encoders.items()}
    info = CheckpointInfo(fusion=config.to_dict(), encoders=meta,
                          classes=list(CLASSES), attributes=list(ATTRIBUTES))
    weights = save_checkpoint(tmp / name, model.state_dict(), info)
    with tracker.start("train", experiment=experiment, run_name=name,
                       tags={encoder_tag(n): fp for n, fp in fps.items()} | (tags or {})) as run:
        run.log_checkpoint(weights, info.to_dict())
        run.log_metrics(metrics or {})
        for split, df in (predictions or {}).items():
            run.log_predictions(split, df)
    return run.run_id, model


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    import soundfile as sf

    from sertool.encoders.presets import build_tiny
    from sertool.encoders.registry import load_encoder
    from sertool.ensemble.spec import EnsembleSpec
    from sertool.tracking.names import ENSEMBLE_SPEC as SPEC_ARTIFACT
    from sertool.store.layout import StoreLayout
    from sertool.tracking import Tracker

    root = tmp_path_factory.mktemp("project")
    layout = StoreLayout.at(root / "store")
    build_tiny(layout.models / "tiny", TEXTS)
    encoders = {n: load_encoder(n, "tiny", models_dir=layout.models) for n in ENCODERS}
    uri = f"sqlite:///{root / 'experiments' / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="predict")
    s = Setup(layout, uri, "predict", encoders, tracker)
    for name, seed in (("tiny-a", 1), ("tiny-b", 2)):
        s.run_ids[name], s.models[name] = _log_checkpoint(tracker, root, name, seed, encoders, s.experiment)
    s.run_ids["tiny-badfp"], _ = _log_checkpoint(tracker, root, "tiny-badfp", 3, encoders, s.experiment,
                                                 {"wavlm": "deadbeefdeadbeef"})
    # trained on frames of `sertool embed --whisper-window trimmed`
    trimmed = {"whisper": encoders["whisper"].configured(window="trimmed").record.fingerprint}
    s.run_ids["tiny-trimmed"], s.models["tiny-trimmed"] = _log_checkpoint(tracker, root, "tiny-trimmed", 4, encoders,
                                                                          s.experiment, trimmed)
    a, b = s.run_ids["tiny-a"], s.run_ids["tiny-b"]
    spec = EnsembleSpec(task=2, method="topk", top=1,
                        members={"arousal": [a], "valence": [b], "dominance": [a, b]})
    with tracker.start("ensemble", experiment=s.experiment, run_name="ens-ab") as run:
        run.log_params(spec.params())
        run.log_dict(spec.to_dict(), SPEC_ARTIFACT)
    s.run_ids["ens-ab"] = run.run_id
    # An ensemble with an ensemble member (and a baseline, which new audio has no predictions from).
    nested = EnsembleSpec(task=2, method="topk", top=1, baseline="challenge_baseline.csv",
                          members={a: [run.run_id, b, "baseline"] for a in ("arousal", "valence", "dominance")})
    with tracker.start("ensemble", experiment=s.experiment, run_name="ens-nested") as run:
        run.log_params(nested.params())
        run.log_dict(nested.to_dict(), SPEC_ARTIFACT)
    s.run_ids["ens-nested"] = run.run_id

    audio = root / "new-audio"
    audio.mkdir()
    sf.write(audio / "short.wav", speechlike(2.5, 1), 16_000)
    # 44.1 kHz stereo: predict resamples and downmixes like ingest does.
    long = speechlike(7.0, 2, sr=44_100)
    sf.write(audio / "long.wav", np.stack([long, 0.5 * long], axis=1), 44_100)
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(64))
    s.audio = {"short": audio / "short.wav", "long": audio / "long.wav", "broken": audio / "broken.wav",
               "missing": audio / "missing.wav"}
    return s


@pytest.fixture
def cli_env(setup, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", setup.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", setup.experiment)
    monkeypatch.setenv("COLUMNS", "200")
    return setup


@dataclass
class Stacked:
    experiment: str
    run_ids: dict[str, str]  # name -> run id
    layout: object = None  # the store of their dev catalog (no models of its own)


@pytest.fixture(scope="module")
def stacked(setup, tmp_path_factory) -> Stacked:
    """Stacked ensembles `stack-t1` and `stack-t2` (experiment `predict-stack`) over `stk-a` and `stk-b`:
    the checkpoints of tiny-a and tiny-b (same seeds), with dev predictions of a 40-clip catalog that
    make both members worth a meta-model weight."""
    import pandas as pd

    from sertool.ensemble.build import EnsembleConfig, build_ensemble
    from sertool.labels import ATTRIBUTES, CLASSES
    from sertool.metrics import CCC, F1, best
    from sertool.store.catalog import Catalog
    from sertool.store.layout import StoreLayout
    from sertool.tracking.names import STAGE_TAG

    root = tmp_path_factory.mktemp("stack")
    layout = StoreLayout.at(root / "store")
    rng = np.random.default_rng(4)
    dev = [f"MSP-PODCAST_0100_{i:04d}" for i in range(40)]
    test3 = [f"MSP-PODCAST_test3_{i:04d}" for i in range(6)]
    truth = rng.uniform(1.5, 6.5, (40, 3)).round(2)
    emotions = [CLASSES[i % len(CLASSES)] for i in range(40)]
    with Catalog(layout.catalog) as cat, cat.transaction():
        for ids, split in ((dev, "Development"), (test3, "Test3")):
            for c in ids:
                cat.execute("INSERT INTO clips (clip_id, corpus, path, split) VALUES (?, 'msp', ?, ?)",
                            [c, f"Audios/{c}.wav", split])
        for c, e, (a, v, d) in zip(dev, emotions, truth):
            cat.execute("INSERT INTO labels (clip_id, emotion, arousal, valence, dominance) VALUES (?, ?, ?, ?, ?)",
                        [c, e, a, v, d])

    def table(ids, attrs, probs):
        return pd.DataFrame({"clip_id": ids, **{f"p_{c}": probs[:, j] for j, c in enumerate(CLASSES)},
                             "pred_class": [CLASSES[i] for i in probs.argmax(axis=1)],
                             **{a: attrs[:, j] for j, a in enumerate(ATTRIBUTES)}})

    onehot = np.eye(len(CLASSES))[[CLASSES.index(e) for e in emotions]]
    out, experiment = {}, "predict-stack"
    for name, seed in (("stk-a", 1), ("stk-b", 2)):
        logits = 2.0 * onehot + rng.normal(0, 1, onehot.shape)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        attrs = np.clip(truth + rng.normal(0, 0.8, truth.shape), 1, 7)
        t3 = table(test3, rng.uniform(1, 7, (6, 3)), rng.dirichlet(np.ones(8), 6))
        metrics = {best(F1): 0.5, **{best(CCC[a]): 0.5 for a in ATTRIBUTES}}
        out[name], _ = _log_checkpoint(setup.tracker, root, name, seed, setup.encoders, experiment,
                                       tags={STAGE_TAG: "task2"}, metrics=metrics,
                                       predictions={"Development": table(dev, attrs, probs), "Test3": t3})
    for task in (1, 2):
        cfg = EnsembleConfig(task=task, method="stack", top=2, folds=4, experiment=experiment,
                             stages=("task2",), name=f"stack-t{task}")
        out[f"stack-t{task}"] = build_ensemble(layout, cfg, setup.tracker).run_id
    return Stacked(experiment, out, layout)
