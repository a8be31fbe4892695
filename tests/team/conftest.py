"""Fixtures of the team-scale tests: PostgreSQL, an MLflow server on it (session-wide), a tiny frame store.

The servers themselves live in `team_servers.py` beside this file.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# importlib import mode puts no test folder on sys.path; the helpers module sits beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from team_servers import MlflowServer, Postgres, free_port, pg_bindir  # noqa: E402


@pytest.fixture(scope="session")
def postgres():
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found and not installable here; "
                    "`.ci/run` installs Debian's postgresql package")
    home = Path(tempfile.mkdtemp(prefix="sertool-pg-"))  # not under pytest's 0700 tmp: postgres must reach it
    pg = Postgres(bindir, home, free_port())
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    pytest.importorskip("psycopg2", reason="psycopg2-binary (test extra) is needed for a PostgreSQL backend")
    base = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(postgres.create_db("mlflow"), base / "artifacts", base / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def frame_store(tmp_path_factory):
    """A tiny store of label-correlated frames (Train/Development/Test1/Test3), made once."""
    from sertool.train.synthetic import FrameSpec, write_frame_store

    spec = FrameSpec(splits={"Train": 64, "Development": 24, "Test1": 8, "Test3": 8},
                     encoders={"whisper": 8, "wavlm": 8, "roberta": 8}, frames=(6, 16), variants=(), seed=5)
    return write_frame_store(tmp_path_factory.mktemp("team") / "store", spec)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Two shared cores: one intra-op thread keeps tiny models fast and results stable."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def server_env(mlflow_server, monkeypatch):
    """The process environment of a user pointed at the server (fast failure: one HTTP retry)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return mlflow_server
