"""Tracking-store failures a team meets, each one line (exit 2) before any work, passwords never shown:
a wrong password on a basic-auth server (401), a server whose database is down (500), a database URI
whose driver is not installed. Real servers, started and stopped here on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sertool.cli import app
from team_servers import MlflowServer, free_port, tree_digest

pytestmark = pytest.mark.slow  # starts MLflow servers


def _one_error_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert "Traceback" not in output
    return lines[0]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """MLflow's basic-auth app on a SQLite backend: user admin, password 'team-admin-pw-2026'."""
    base = tmp_path_factory.mktemp("auth-server")
    ini = base / "basic_auth.ini"
    ini.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{base / 'auth.db'}\n"
                   "admin_username = admin\nadmin_password = team-admin-pw-2026\n")
    server = MlflowServer(f"sqlite:///{base / 'mlflow.db'}", base / "artifacts", base / "server.log")
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # the same command as MlflowServer.start, with the basic-auth app
    from sertool.tracking.server import wait_healthy

    cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--backend-store-uri", server.backend,
           "--artifacts-destination", str(server.artifacts), "--host", "127.0.0.1", "--port", str(server.port),
           "--workers", "1"]
    with open(server.log, "ab") as log:
        server.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    if not wait_healthy(server.uri, 120, server.proc):
        server.kill()
        pytest.fail(f"basic-auth mlflow server did not come up:\n{server.log.read_text()[-3000:]}")
    try:
        yield server
    finally:
        server.kill()


def test_wrong_password_is_one_line_before_any_work(auth_server, frame_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    before = tree_digest(frame_store.root)
    res = CliRunner().invoke(app, ["--store", str(frame_store.root), "--tracking-uri", auth_server.uri, "train",
                                   "--epochs", "1", "--device", "cpu", "--num-workers", "0"])
    assert res.exit_code == 2
    line = _one_error_line(res.output)
    assert "refused the credentials (HTTP 401)" in line and "not-the-password" not in line
    assert tree_digest(frame_store.root) == before
    # the right password gets through: the server itself answers (this store has no experiment there yet)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "team-admin-pw-2026")
    res = CliRunner().invoke(app, ["--store", str(frame_store.root), "--tracking-uri", auth_server.uri, "runs"])
    assert "no experiment named" in _one_error_line(res.output)


def test_credentials_in_the_uri_are_never_echoed(auth_server, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    uri = auth_server.uri.replace("http://", "http://admin:s3cr3t-word@")
    res = CliRunner().invoke(app, ["--tracking-uri", uri, "runs"])
    assert res.exit_code == 2
    line = _one_error_line(res.output)
    assert "s3cr3t-word" not in line and "admin:***@" in line


def test_server_with_its_database_down_is_one_line(postgres, frame_store, tmp_path):
    pytest.importorskip("psycopg2")
    backend = postgres.create_db("mlflow_down")
    server = MlflowServer(backend, tmp_path / "artifacts", tmp_path / "server.log")
    server.start()
    try:
        # The database refuses connections from now on (and the server's open ones are cut): PostgreSQL
        # is "down" for this server only, so the session's other server goes on.
        sql = ("ALTER DATABASE mlflow_down ALLOW_CONNECTIONS false; "
               "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'mlflow_down';")
        res = postgres._run(str(postgres.bindir / "psql"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U",
                            postgres.user, "-d", "postgres", "-c", sql)
        assert res.returncode == 0, res.stderr
        before = tree_digest(frame_store.root)
        res = CliRunner().invoke(app, ["--store", str(frame_store.root), "--tracking-uri", server.uri, "train",
                                       "--epochs", "1", "--device", "cpu", "--num-workers", "0"])
        assert res.exit_code == 2
        line = _one_error_line(res.output)
        # MLflow's server retries its database for ~100 s before its HTTP 500: the probe stops waiting sooner
        assert "answers but fails" in line and "database may be down" in line
        assert tree_digest(frame_store.root) == before
    finally:
        server.kill()


def test_database_uri_without_its_driver_is_one_line(tmp_path):
    port = free_port()  # nothing listens: the driver is missing before any connection is tried
    res = CliRunner().invoke(app, ["--tracking-uri", f"mysql://sertool:pw-in-uri@127.0.0.1:{port}/mlflow", "runs"])
    assert res.exit_code == 2
    line = _one_error_line(res.output)
    assert "driver is not installed" in line and "pw-in-uri" not in line and "sertool:***@" in line
