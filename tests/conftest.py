"""Fixtures shared across test folders: the tiny models, and one quick `sertool demo` run per session.

The quick demo (every stage of the workflow, tiny everything) takes tens of seconds, so the demo test
and the browser test (which opens the MLflow UI over the demo's tracking store) share one run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# importlib import mode puts no test folder on sys.path; shared helper modules sit beside this file.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A store's `models` directory holding the tiny preset (built once, offline, fixed seed)."""
    from encoder_helpers import TEXTS
    from sertool.encoders.presets import build_tiny

    root = tmp_path_factory.mktemp("store") / "models"
    build_tiny(root / "tiny", TEXTS)
    return root


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """`run_demo(quick=True)` in a temporary directory, tracked in its own SQLite store."""
    from sertool.jobs.demo import DemoConfig, run_demo

    # The demo's own SQLite store and experiment, whatever the environment running the tests says.
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline: don't try
    try:
        result = run_demo(DemoConfig(directory=tmp_path_factory.mktemp("quick") / "demo", quick=True))
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return result
