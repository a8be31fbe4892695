"""The encoders loaded from the session's tiny models (`models_dir`, tests/conftest.py)."""

from __future__ import annotations

import pytest

from sertool.encoders.registry import load_encoder


@pytest.fixture(scope="session")
def whisper(models_dir):
    return load_encoder("whisper", "tiny", models_dir=models_dir)


@pytest.fixture(scope="session")
def wavlm(models_dir):
    return load_encoder("wavlm", "tiny", models_dir=models_dir)


@pytest.fixture(scope="session")
def roberta(models_dir):
    return load_encoder("roberta", "tiny", models_dir=models_dir)
