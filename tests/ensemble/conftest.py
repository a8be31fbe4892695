"""A tiny labelled catalog and training runs with known predictions in a real SQLite tracking store.

Each run's dev predictions are the truth plus noise of a chosen size per attribute, so which runs are
best for which attribute is known by construction (and checked against the CCC the tests compute).
Built once per module: creating a SQLite MLflow store runs its migrations (seconds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from sertool.labels import ATTRIBUTES, CLASSES  # noqa: E402
from sertool.store.catalog import Catalog  # noqa: E402
from sertool.store.layout import StoreLayout  # noqa: E402
from sertool.metrics import CCC, F1, best  # noqa: E402
from sertool.tracking.names import STAGE_TAG, encoder_tag  # noqa: E402
from sertool.metrics import ccc, f1_macro  # noqa: E402

N_DEV, N_TEST3, N_TEST1 = 60, 12, 8
FINGERPRINTS = {"whisper": "aaaa000011112222", "wavlm": "bbbb000011112222", "roberta": "cccc000011112222"}

# Noise sd per attribute (arousal, valence, dominance) and class-signal strength of each run:
# the best two differ for every attribute (arousal: a, d; valence: b, d; dominance: c, e).
RUNS: dict[str, tuple[tuple[float, float, float], float]] = {
    "ft-a": ((0.3, 2.0, 1.0), 1.2),
    "ft-b": ((2.0, 0.3, 1.2), 0.3),
    "ft-c": ((1.0, 1.0, 0.3), 0.9),
    "ft-d": ((0.6, 0.8, 2.0), 1.5),
    "ft-e": ((1.5, 1.5, 0.6), 0.1),
}


@dataclass
class World:
    layout: StoreLayout
    uri: str
    experiment: str
    dev_ids: list[str]
    test3_ids: list[str]
    truth_attrs: np.ndarray  # (N_DEV, 3)
    truth_class: np.ndarray  # (N_DEV,) class index, -100 for O / X
    agreed: np.ndarray  # (N_DEV,) bool: not X
    run_ids: dict[str, str] = field(default_factory=dict)
    preds: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)  # name -> split -> table

    def dev_ccc(self, attribute: str, values: np.ndarray) -> float:
        """Officially: over every rated Development clip, X included."""
        j = ATTRIBUTES.index(attribute)
        return ccc(self.truth_attrs[:, j], np.asarray(values))

    def dev_f1(self, probs: np.ndarray) -> float:
        """Officially: over the clips whose consensus is one of the 8 classes."""
        keep = self.truth_class >= 0
        return f1_macro(self.truth_class[keep], np.asarray(probs)[keep].argmax(axis=1))


def make_catalog(layout: StoreLayout, rng: np.random.Generator):
    """Clips of Development (labelled; one X and one O), Test1 (labelled) and Test3 (audio only)."""
    dev_ids = [f"MSP-PODCAST_0001_{i:04d}" for i in range(N_DEV)]
    t1_ids = [f"MSP-PODCAST_0002_{i:04d}" for i in range(N_TEST1)]
    t3_ids = [f"MSP-PODCAST_test3_{i:04d}" for i in range(N_TEST3)]
    attrs = rng.uniform(1.5, 6.5, size=(N_DEV, 3)).round(2)
    emotions = [CLASSES[i % len(CLASSES)] for i in range(N_DEV)]
    emotions[5], emotions[6] = "X", "O"
    with Catalog(layout.catalog) as cat, cat.transaction():
        for ids, split in ((dev_ids, "Development"), (t1_ids, "Test1"), (t3_ids, "Test3")):
            for c in ids:
                cat.execute("INSERT INTO clips (clip_id, corpus, path, split) VALUES (?, 'msp', ?, ?)",
                            [c, f"Audios/{c}.wav", split])
        for c, e, (a, v, d) in zip(dev_ids, emotions, attrs):
            cat.execute("INSERT INTO labels (clip_id, emotion, arousal, valence, dominance) VALUES (?, ?, ?, ?, ?)",
                        [c, e, a, v, d])
        for c in t1_ids:
            cat.execute("INSERT INTO labels (clip_id, emotion, arousal, valence, dominance) VALUES (?, 'N', 4, 4, 4)", [c])
    target = np.array([CLASSES.index(e) if e in CLASSES else -100 for e in emotions])
    agreed = np.array([e != "X" for e in emotions])
    return dev_ids, t1_ids, t3_ids, attrs, target, agreed


def predictions(ids: list[str], attrs: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({"clip_id": ids})
    for j, c in enumerate(CLASSES):
        df[f"p_{c}"] = probs[:, j]
    df["pred_class"] = [CLASSES[i] for i in probs.argmax(axis=1)]
    for j, a in enumerate(ATTRIBUTES):
        df[a] = attrs[:, j]
    return df


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_run(tracker, world: World, name: str, dev: pd.DataFrame, tests: dict[str, pd.DataFrame],
            experiment: str, fingerprints: dict[str, str] = FINGERPRINTS, metrics: dict | None = None,
            stage: str = "task2") -> str:
    """A finished train run as the training loop leaves it: tags, best_dev_* metrics, prediction tables."""
    if metrics is None:
        metrics = {best(CCC[a]): world.dev_ccc(a, dev[a].to_numpy()) for a in ATTRIBUTES}
        metrics[best(CCC["mean"])] = float(np.mean(list(metrics.values())))
        metrics[best(F1)] = world.dev_f1(dev[[f"p_{c}" for c in CLASSES]].to_numpy())
    with tracker.start("train", experiment=experiment, run_name=name,
                       tags={STAGE_TAG: stage, "sertool.splits": "corpus",
                             **{encoder_tag(k): v for k, v in fingerprints.items()}}) as run:
        run.log_metrics(metrics)
        run.log_predictions("Development", dev)
        for split, df in tests.items():
            run.log_predictions(split, df)
    return run.run_id


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    from sertool.tracking import Tracker

    root = tmp_path_factory.mktemp("project")
    layout = StoreLayout.at(root / "store")
    uri = f"sqlite:///{root / 'experiments' / 'mlflow.db'}"
    rng = np.random.default_rng(7)
    dev_ids, t1_ids, t3_ids, attrs, target, agreed = make_catalog(layout, rng)
    w = World(layout, uri, "ens", dev_ids, t3_ids, attrs, target, agreed)
    tracker = Tracker(uri, experiment="ens")
    for name, (noise, strength) in RUNS.items():
        dev_attrs = np.clip(attrs + rng.normal(0, 1, attrs.shape) * np.array(noise), 1, 7)
        onehot = np.eye(len(CLASSES))[np.maximum(target, 0) % len(CLASSES)]
        dev_probs = softmax(strength * onehot + rng.normal(0, 1, (N_DEV, len(CLASSES))))
        dev = predictions(dev_ids, dev_attrs, dev_probs)
        tests = {
            "Test3": predictions(t3_ids, rng.uniform(1, 7, (N_TEST3, 3)), softmax(rng.normal(0, 1, (N_TEST3, 8)))),
            "Test1": predictions(t1_ids, rng.uniform(1, 7, (N_TEST1, 3)), softmax(rng.normal(0, 1, (N_TEST1, 8)))),
        }
        w.run_ids[name] = log_run(tracker, w, name, dev, tests, "ens")
        w.preds[name] = {"Development": dev, **tests}
    return w


@pytest.fixture(scope="module")
def tracker(world):
    from sertool.tracking import Tracker

    return Tracker(world.uri, experiment=world.experiment)


@pytest.fixture(scope="module")
def log(tracker, world):
    """`log(name, dev, tests, experiment, fingerprints=...)`: one more train run in the store."""
    return lambda *args, **kw: log_run(tracker, world, *args, **kw)


@pytest.fixture(scope="module")
def make_predictions():
    return predictions


@pytest.fixture
def cli_env(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.uri)
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return world
