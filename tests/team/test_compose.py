"""The team tracking stack (docker-compose.yml): `docker compose config` where docker exists, and its invariants
checked from the YAML itself everywhere (ports on 127.0.0.1, health-gated start, bucket, proxied artifacts,
auth, no secrets in the committed files)."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
START = ROOT / "docker" / "start-mlflow.sh"
DOCKERFILE = ROOT / "docker" / "mlflow.Dockerfile"
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "USER")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    pairs = [ln.split("=", 1) for ln in ENV_EXAMPLE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    ok = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0
    return [docker, "compose"] if ok else None


def _project(tmp_path: Path, with_env: bool) -> Path:
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    if with_env:
        shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    return tmp_path


def test_docker_compose_config_passes(tmp_path):
    cmd = _docker_compose()
    if cmd is None:
        pytest.skip("the docker CLI with the compose plugin is not installed here (`docker compose version` fails)")
    project = _project(tmp_path, with_env=True)
    res = subprocess.run([*cmd, "config"], cwd=project, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    resolved = yaml.safe_load(res.stdout)
    assert set(resolved["services"]) == {"postgres", "minio", "minio-init", "mlflow"}
    # Without a .env the required credentials stop compose with a message naming the file.
    (tmp_path / "bare").mkdir()
    bare = _project(tmp_path / "bare", with_env=False)
    res = subprocess.run([*cmd, "config"], cwd=bare, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "set in .env" in res.stderr


def test_every_port_is_bound_to_localhost(compose):
    ports = [(name, p) for name, svc in compose["services"].items() for p in svc.get("ports", [])]
    assert ports, "the stack publishes no port"
    assert all(str(p).startswith("127.0.0.1:") for _, p in ports), ports
    assert any(name == "mlflow" and str(p).endswith(":5000") for name, p in ports)


def test_start_order_is_health_gated(compose):
    svc = compose["services"]
    assert "pg_isready" in " ".join(svc["postgres"]["healthcheck"]["test"])
    assert svc["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert svc["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert "/health" in " ".join(svc["mlflow"]["healthcheck"]["test"])


def test_bucket_is_created_and_artifacts_are_proxied(compose):
    svc = compose["services"]
    init = " ".join(str(x) for x in (svc["minio-init"].get("entrypoint"), svc["minio-init"].get("command")) if x)
    assert re.search(r"mc mb --ignore-existing local/\$\$\{MLFLOW_BUCKET\}", init), init
    env = svc["mlflow"]["environment"]
    assert env["ARTIFACTS_DESTINATION"].startswith("s3://${MLFLOW_BUCKET")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    start = START.read_text()
    assert "--serve-artifacts" in start and '--artifacts-destination "$ARTIFACTS_DESTINATION"' in start


def test_authentication_is_on(compose):
    start = START.read_text()
    assert "--app-name basic-auth" in start
    assert "admin_password = ${MLFLOW_ADMIN_PASSWORD}" in start
    env = compose["services"]["mlflow"]["environment"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] and env["MLFLOW_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD")


def test_no_secrets_in_committed_files(compose):
    """Credentials come from .env: in the compose file every secret-looking value is an interpolation."""
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if any(w in key for w in SECRET_WORDS):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*|:-[\w.-]*)?\}", str(value)), (name, key, value)
            if key == "BACKEND_STORE_URI":
                assert "${POSTGRES_PASSWORD}" in value
    example = env_example()
    secrets = {k: v for k, v in example.items() if "PASSWORD" in k or "SECRET" in k}
    assert secrets and all(v.startswith("change-me") for v in secrets.values()), secrets
    # Every variable the compose file needs without a default is in the example.
    needed = set(re.findall(r"\$\{(\w+)(?::\?[^}]*)?\}", COMPOSE.read_text()))
    assert needed <= set(example), needed - set(example)


def test_image_is_the_pinned_mlflow(compose):
    pinned = version("mlflow")
    assert env_example()["MLFLOW_VERSION"] == pinned
    assert compose["services"]["mlflow"]["build"]["args"]["MLFLOW_VERSION"] == f"${{MLFLOW_VERSION:-{pinned}}}"
    docker = DOCKERFILE.read_text()
    assert f"ARG MLFLOW_VERSION={pinned}" in docker and "FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}" in docker
