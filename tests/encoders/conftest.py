"""The encoders loaded from the session's tiny models (`models_dir`, tests/conftest.py)."""

from __future__ import annotations

import pytest

from sertool.encoders.registry import load_encoder


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One intra-op thread, as tests/jobs/embed does: on the shared 2-core machine two threads under
    load made the long-clip WavLM tests 10-20x slower (OpenMP spin contention), not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def whisper(models_dir):
    return load_encoder("whisper", "tiny", models_dir=models_dir)


@pytest.fixture(scope="session")
def wavlm(models_dir):
    return load_encoder("wavlm", "tiny", models_dir=models_dir)


@pytest.fixture(scope="session")
def roberta(models_dir):
    return load_encoder("roberta", "tiny", models_dir=models_dir)
