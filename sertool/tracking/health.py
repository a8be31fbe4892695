"""Is the tracking store usable? Asked once, before any work, so that a wrong password, a server whose
database is down or a missing database driver is one line at the start, not a traceback hours later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .uri import TrackingUnreachable, redact

if TYPE_CHECKING:
    from mlflow import MlflowClient


def probe_server(uri: str, timeout: float = 15.0) -> None:
    """Ask the server something that needs both its credentials and its database (an experiment
    search), once, without MLflow's retries: a wrong password (401/403) or a server whose database is
    down (5xx) is one line now, not a traceback after hours of training."""
    from mlflow.tracking._tracking_service.utils import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        resp = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "POST",
                            json={"max_results": 1}, max_retries=0, retry_codes=frozenset(), timeout=timeout,
                            raise_on_status=False)
    except Exception as e:  # MLflow's own server waits ~100 s for a database that is down before its 500
        if "timeout" in str(e).lower():
            raise TrackingUnreachable(
                f"tracking server at {redact(uri)} answers but fails: no answer to an experiment search in "
                f"{timeout:.0f} s (its database may be down; see the server's log)") from None
        raise TrackingUnreachable(f"tracking server unreachable at {redact(uri)} ({type(e).__name__})") from None
    if resp.status_code in (401, 403):
        raise TrackingUnreachable(
            f"tracking server at {redact(uri)} refused the credentials (HTTP {resp.status_code}): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user of that server")
    if resp.status_code >= 500:
        raise TrackingUnreachable(
            f"tracking server at {redact(uri)} answers but fails (HTTP {resp.status_code}: its database may be "
            "down; see the server's log)")
    if resp.status_code != 200:
        raise TrackingUnreachable(f"tracking server at {redact(uri)} answered HTTP {resp.status_code} to an "
                                  "experiment search: is this an MLflow server?")


def probe_database(client: Callable[[], "MlflowClient"], shown_uri: str) -> None:
    """A database URI fails before any work: a missing driver or an unreachable database, one line.
    (`client` makes the client: creating it already imports the driver.)"""
    try:
        client().search_experiments(max_results=1)
    except ImportError as e:
        scheme = shown_uri.split(":", 1)[0]
        raise TrackingUnreachable(
            f"tracking URI {shown_uri}: the {scheme} driver is not installed ({e.name or e}); "
            "install it (PostgreSQL: pip install psycopg2-binary) or use the team's tracking server URL"
        ) from None
    except Exception as e:  # sqlalchemy's OperationalError and friends, wrapped or not by MLflow
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TrackingUnreachable(f"tracking database unreachable at {shown_uri} ({first[:300]})") from None
