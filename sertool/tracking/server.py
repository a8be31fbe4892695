"""`sertool ui`: the MLflow UI over the project's tracking store, as a child process.

The UI is MLflow's own server (`mlflow server`) from this interpreter's environment, bound to
127.0.0.1 unless asked otherwise: run data often holds unpublished results. One worker is
plenty for one user and spares the CPU cores that training needs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ..errors import SertoolError
from .uri import artifact_root_for, sqlite_path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


def ui_command(uri: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> list[str]:
    """The `mlflow server` command line for a tracking store (artifacts of UI-made experiments beside it)."""
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--host", host,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    root = artifact_root_for(uri)
    if root is not None:
        cmd += ["--artifacts-destination", str(root)]
    return cmd


def landing_url(base: str, experiment_id: str | None) -> str:
    """Where `sertool ui` sends a browser: the store's experiment on its runs table in machine-learning mode,
    newest runs first (the server's root when there is no experiment yet)."""
    from .names import ML_WORKFLOW

    if experiment_id is None:
        return base
    return f"{base}/#/experiments/{experiment_id}/runs?{ML_WORKFLOW}"


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll `<url>/health` until it answers 200 (True) or `timeout` passes or `proc` dies (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def serve_ui(
    uri: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[str], None] | None = None,
    startup_timeout: float = 120.0,
    experiment_id: str | None = None,
) -> int:
    """Run the MLflow UI until Ctrl-C or SIGTERM; stops the server with us. Returns its exit code.

    `on_ready(url)` is called once the server answers `/health`, with the page to open (`landing_url`).
    """
    if not port_free(host, port):
        raise SertoolError(f"port {port} on {host} is in use; pick another with --port")
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    # MLflow's background job runner (GenAI evaluation jobs) is one more process we never use, and its AI
    # Gateway (LLM endpoints) one more menu; the user's own environment wins.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_ENABLE_AI_GATEWAY": "false"} | dict(os.environ)
    proc = subprocess.Popen(ui_command(uri, host, port), env=env)

    def _stop(signum, frame):  # SIGTERM -> the same clean shutdown as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        if wait_healthy(url, startup_timeout, proc):
            if on_ready is not None:
                on_ready(landing_url(url, experiment_id))
        elif proc.poll() is not None:
            raise SertoolError(f"mlflow server exited with code {proc.returncode} before serving {url}")
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _terminate(proc)


def _terminate(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


