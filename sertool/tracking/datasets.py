"""A run's dataset inputs as MLflow records them (`mlflow.log_input` with an explicit run)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from .records import DatasetRef

ATTEMPTS = 5


def log_dataset_inputs(client: "MlflowClient", run_id: str, datasets: Sequence["DatasetRef"]) -> None:
    """Name, digest, source and role (`mlflow.data.context`) of each dataset; the profile carries what
    recomputes the digest. MLflow keeps one entry per (name, digest) and run: logging one again
    changes nothing.

    Sibling runs (a parallel sweep's children) log the same dataset at once, and MLflow's SQL store
    looks a dataset up and then inserts it, so all but one meet a UNIQUE violation: asked again, the
    store finds the row and only links it to this run.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    inputs = [
        DatasetInput(
            Dataset(name=d.name, digest=d.digest, source_type=d.source.split("://")[0] if "://" in d.source
                    else "local", source=json.dumps({"uri": d.source}), schema=None,
                    profile=json.dumps(d.profile, sort_keys=True, default=str)),
            tags=[InputTag("mlflow.data.context", d.context)],
        )
        for d in datasets
    ]
    for attempt in range(ATTEMPTS if inputs else 0):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as e:
            raced = "UNIQUE constraint" in str(e) or "duplicate key" in str(e)  # SQLite, PostgreSQL
            if not raced or attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
