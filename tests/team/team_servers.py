"""Real servers for the team-scale tests: PostgreSQL and an MLflow server on it; small helpers.

PostgreSQL runs from the machine's server binaries (`initdb`/`pg_ctl`; `.ci/run` installs Debian's
`postgresql` package where they are missing); as root they run as the `postgres` user, which the
server requires. Everything listens on 127.0.0.1 on free ports, waits are bounded, and every process
started here is stopped here (its whole process group: `mlflow server` forks uvicorn).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TINY_TRAIN = ["--proj-dim", "16", "--lstm-hidden", "16", "--batch-size", "32", "--samples-per-epoch", "64",
              "--warmup-epochs", "1", "--lr", "3e-3", "--min-lr", "1e-5", "--num-workers", "0", "--device", "cpu"]
"""`sertool train` flags of every run here: well under a second per epoch on one core."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path | None:
    """Directory of the PostgreSQL server binaries (Debian's versioned dir, else PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`: what "the store was not touched" means, byte for byte."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class Postgres:
    bindir: Path
    home: Path
    port: int
    user: str = "sertool"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        # The server refuses to run as root: drop to the `postgres` user when we are root.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres")
        res = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                        "-E", "UTF8", "--no-sync")
        if res.returncode:
            raise RuntimeError(f"initdb failed: {res.stderr[-2000:]}")
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.data} -F"
        res = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                        str(self.data / "server.log"), "-w", "-t", "30", "start")
        if res.returncode:
            log = (self.data / "server.log").read_text() if (self.data / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {res.stderr[-1000:]} {log[-2000:]}")

    def create_db(self, name: str) -> str:
        res = self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        if res.returncode:
            raise RuntimeError(f"createdb failed: {res.stderr}")
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "20", "stop",
                  timeout=30)


@dataclass
class MlflowServer:
    """`mlflow server` on a PostgreSQL backend with proxied artifacts in a local folder; restartable."""

    backend: str
    artifacts: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        from sertool.tracking.server import wait_healthy

        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend,
               "--artifacts-destination", str(self.artifacts), "--serve-artifacts",
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if not wait_healthy(self.uri, timeout, self.proc):
            self.kill()
            raise RuntimeError(f"mlflow server did not come up in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server and its uvicorn worker at once (SIGKILL: a crash, not a shutdown)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)
        self.proc = None


def wait_for(predicate, timeout: float, every: float = 0.3):
    """Poll `predicate()` until it returns something truthy (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None
