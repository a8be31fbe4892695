"""What every run records of where it ran: the code's commit, the user, the host and process (so a
killed run's orphan can be told from a live one), and how patiently MLflow's client retries."""

from __future__ import annotations

import getpass
import os
import subprocess

from .. import launch
from .names import HOST_TAG, PID_START_TAG, PID_TAG


def git_commit() -> str | None:
    """The working tree's commit, so every run records the code it ran (best effort)."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() or None


def limit_http_retries() -> None:
    """MLflow retries a dead server for minutes by default; a training job should learn sooner."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def identity_tags() -> dict[str, str]:
    who = launch.identity()
    return {HOST_TAG: who["host"], PID_TAG: who["pid"], PID_START_TAG: who["pid_start"]}


def run_user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return None
