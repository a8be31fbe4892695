"""Models that leave a run: logged models (MLflow 3) attached to finished runs, and the model registry.

A sertool ensemble or training run is exported as an MLflow pyfunc model (`jobs.export`); `log_model`
attaches such a folder to its run as a logged model, and `register_model` makes it a version of a
registered model with an alias (`candidate`, `submitted`), so `models:/NAME@candidate` loads and serves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException

from .. import launch
from ..errors import NotFound
from .logger import NullRunLogger, RunLogger, _reaching

if TYPE_CHECKING:
    from .tracker import Tracker


def log_model(tracker: "Tracker", run_id: str, folder: str | Path, *, name: str, model_type: str,
              tags: Mapping[str, Any] | None = None) -> str | None:
    """Upload `folder` as a logged model output by the (possibly finished) run `run_id`; returns its id."""
    run = tracker.mlflow_run(run_id)
    logger = RunLogger(tracker.client, run_id, run.info.experiment_id) if launch.from_env().is_main else NullRunLogger()
    return logger.log_model_dir(folder, name=name, model_type=model_type, tags=tags)


def register_model(tracker: "Tracker", name: str, model_id: str, alias: str, *, description: str | None = None) -> str:
    """Register logged model `model_id` as a new version of registered model `name` (made on first use)
    and point `alias` at it; returns the version."""
    with _reaching(tracker.client):
        try:
            tracker.client.get_registered_model(name)
        except MlflowException:
            tracker.client.create_registered_model(name, description=description)
        lm = tracker.client.get_logged_model(model_id)
        # The artifact location, not `models:/<id>`: a SQLite registry resolves that through the global
        # tracking URI (not this client's), which may be another store or none.
        mv = tracker.client.create_model_version(name, source=lm.artifact_location, run_id=lm.source_run_id,
                                                 model_id=lm.model_id, await_creation_for=0)
        tracker.client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def model_alias(tracker: "Tracker", name: str, alias: str) -> tuple[str, str | None]:
    """(version, run id) the alias of registered model `name` points at."""
    try:
        mv = tracker.client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise NotFound(f"registered model {name!r} has no alias {alias!r} in {tracker.shown_uri}") from None
    return str(mv.version), mv.run_id
