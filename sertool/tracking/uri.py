"""Where runs are tracked: the tracking URI, the default experiment name, and a fast reachability probe.

Nothing here imports mlflow, so the CLI can resolve the store (for `sertool ui`) without paying
mlflow's import time. The local default is a SQLite store under `experiments/`: MLflow's file store
is deprecated, and a database keeps run search fast as the number of runs grows.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import SertoolError

URI_ENV = "MLFLOW_TRACKING_URI"
"""Where the CLI reads the tracking URI from when `--tracking-uri` is not given (MLflow's own variable)."""
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
EXPERIMENTS_DIR = "experiments"
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


class TrackingUnreachable(SertoolError):
    """The tracking server named by the URI does not answer."""


def default_tracking_uri(project_dir: Path | None = None) -> str:
    """`sqlite:///<abs project>/experiments/mlflow.db` — the project's local tracking store."""
    root = Path(project_dir if project_dir is not None else Path.cwd()).resolve()
    return f"sqlite:///{root / EXPERIMENTS_DIR / DB_NAME}"


def resolve_tracking_uri(uri: str | None = None, project_dir: Path | None = None) -> str:
    """The URI the user gave, else the project's local default."""
    return uri if uri else default_tracking_uri(project_dir)


def is_remote(uri: str) -> bool:
    """A tracking server (as opposed to a database or directory this process opens itself)."""
    return urlparse(uri).scheme in ("http", "https")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, else None."""
    if not uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(uri).path)
    # sqlite:///abs/x.db -> path '/abs/x.db'; sqlite:////abs also seen in the wild.
    return Path(re.sub(r"^/+", "/", path)) if path and path != "/:memory:" else None


def artifact_root_for(uri: str) -> Path | None:
    """Where a local SQLite store keeps artifacts: `mlartifacts/` beside the database file.

    For servers and other databases the server (or the user's own configuration) decides.
    """
    db = sqlite_path(uri)
    return db.parent / ARTIFACTS_DIR if db is not None else None


def default_experiment_name(store_root: str | Path | None = None) -> str:
    """One experiment per feature store: `sertool-<store dir>`.

    The conventional `./store` would name every project `sertool-store`, so for a store directory
    literally called `store` the project directory's name is used instead.
    """
    root = Path(store_root if store_root is not None else "store").resolve()
    name = root.parent.name if root.name == "store" and root.parent.name else root.name
    return f"sertool-{name or 'default'}"


def redact(uri: str) -> str:
    """The URI as messages show it: a password inside it (`postgresql://user:secret@host/db`) becomes `***`."""
    parts = urlparse(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_reachable(uri: str, timeout: float = 3.0) -> None:
    """Fail fast when a tracking server does not answer, before hours of training start.

    MLflow's own client retries with back-off for minutes; a plain GET of `/health` with a short
    timeout tells the user at once. Any HTTP answer (even 401/404) means a server is there.
    Local URIs (sqlite, postgres, files) are not probed.
    """
    if not is_remote(uri):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingUnreachable(f"tracking server unreachable at {redact(uri)} ({reason})") from None
