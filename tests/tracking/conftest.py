"""One real SQLite tracking store shared by these tests (creating one runs MLflow's migrations: seconds)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here; don't try


@pytest.fixture(scope="package")
def store_uri(tmp_path_factory) -> str:
    project = tmp_path_factory.mktemp("project")
    return f"sqlite:///{project / 'experiments' / 'mlflow.db'}"


@pytest.fixture(scope="package")
def tracker(store_uri):
    from sertool.tracking import Tracker

    return Tracker(store_uri, experiment="sertool-test")
