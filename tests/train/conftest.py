"""A small store of label-correlated frames, a real SQLite MLflow store, and one tiny trained run,
built once per session and shared by the training tests (the machine is small: keep it cheap)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TINY = dict(
    proj_dim=32, lstm_hidden=32, epochs=6, warmup_epochs=1, batch_size=32, lr=3e-3, min_lr=1e-5,
    device="cpu", num_workers=0, experiment="train-tests",
)
"""Dims and schedule of every test run: a few seconds per run on one core."""


@pytest.fixture
def tiny() -> dict:
    """The tiny run settings (a fresh copy per test)."""
    return dict(TINY)



@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Shared cores: one intra-op thread avoids OpenMP spin contention and keeps CPU results stable."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def frame_store(tmp_path_factory):
    """Train 320 / Development 48 / Test1 24 / Test3 16 (unlabelled) clips; whisper, wavlm (+ `noise`
    variant on Train) and roberta (clean only) frames whose statistics follow the labels."""
    from sertool.train.synthetic import FrameSpec, write_frame_store

    spec = FrameSpec(seed=3, splits={"Train": 320, "Development": 48, "Test1": 24, "Test3": 16})
    return write_frame_store(tmp_path_factory.mktemp("frames") / "store", spec)


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory):
    """A smaller store for the sweep tests whose children are processes: Train 96 / Development 24 and no
    test split, so a child's fixed costs (loading, predictions, plots) stay small beside its interpreter's."""
    from sertool.train.synthetic import FrameSpec, write_frame_store

    spec = FrameSpec(seed=5, splits={"Train": 96, "Development": 24})
    return write_frame_store(tmp_path_factory.mktemp("sweep-frames") / "store", spec)


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    project = tmp_path_factory.mktemp("project")
    return f"sqlite:///{project / 'experiments' / 'mlflow.db'}"


@pytest.fixture(scope="session")
def tracker(tracking_uri):
    from sertool.tracking.tracker import Tracker

    return Tracker(tracking_uri, experiment="train-tests")


@pytest.fixture(scope="session")
def tiny_run(frame_store, tracker):
    """One multi-task pre-training run (with a data-loader worker, as in real use)."""
    from sertool.train.config import TrainConfig
    from sertool.train.runs import train

    config = TrainConfig(**{**TINY, "num_workers": 1})
    return train(config, frame_store, tracker=tracker)
