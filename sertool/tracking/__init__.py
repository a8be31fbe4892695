"""Everything MLflow: the only package that imports mlflow.

`Tracker` starts runs (`RunLogger`, in `logger`) and reads them back (`RunInfo`); `names` holds the tag
and artifact-path strings other code relies on; `uri` resolves the tracking store without importing
mlflow. Attributes load lazily so `import sertool.tracking` stays cheap for the CLI.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .uri import (
    TrackingUnreachable,
    check_reachable,
    default_experiment_name,
    default_tracking_uri,
    resolve_tracking_uri,
)

_LAZY = {
    "Tracker": "tracker",
    "RunLogger": "logger",
    "NullRunLogger": "logger",
    "flatten": "logger",
    "RunInfo": "records",
}

__all__ = [
    "TrackingUnreachable",
    "check_reachable",
    "default_experiment_name",
    "default_tracking_uri",
    "resolve_tracking_uri",
    *_LAZY,
]

if TYPE_CHECKING:
    from .records import RunInfo  # noqa: F401  (for type checkers; loaded lazily)
    from .logger import NullRunLogger, RunLogger, flatten  # noqa: F401
    from .tracker import Tracker  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
