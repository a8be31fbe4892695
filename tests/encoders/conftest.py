"""Tiny models built once per test session (offline, fixed seed) and the encoders loaded from them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sertool.encoders.presets import build_tiny
from sertool.encoders.registry import load_encoder

# importlib import mode puts no test folder on sys.path; the helpers module sits beside this file.
sys.path.insert(0, str(Path(__file__).parent))
from encoder_helpers import TEXTS  # noqa: E402


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A store's `models` directory holding the tiny preset."""
    root = tmp_path_factory.mktemp("store") / "models"
    build_tiny(root / "tiny", TEXTS)
    return root


@pytest.fixture(scope="session")
def whisper(models_dir):
    return load_encoder("whisper", "tiny", store_models_dir=models_dir)


@pytest.fixture(scope="session")
def wavlm(models_dir):
    return load_encoder("wavlm", "tiny", store_models_dir=models_dir)


@pytest.fixture(scope="session")
def roberta(models_dir):
    return load_encoder("roberta", "tiny", store_models_dir=models_dir)
