"""What reading runs back returns: typed, mlflow-free records of runs and the datasets they logged."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from .names import KIND_TAG, PARENT_TAG, STAGE_TAG


@dataclass(frozen=True)
class DatasetRef:
    """One dataset input of a run, as MLflow shows it: a name, a digest, where it lives, and its role."""

    name: str
    digest: str
    source: str
    """The data's location (the feature store's root)."""
    context: str
    """`training` or `evaluation`."""
    profile: dict = field(default_factory=dict)
    """What else the dataset says about itself (sertool: the spec that recomputes the digest, clip count)."""


@dataclass(frozen=True)
class RunInfo:
    """One tracked run as plain Python values (metrics are each metric's latest value)."""

    run_id: str
    name: str
    kind: str | None
    status: str
    experiment_id: str
    artifact_uri: str
    start_time: datetime | None
    end_time: datetime | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: tuple[DatasetRef, ...] = ()
    """The run's dataset inputs (`RunLogger.log_datasets`); empty for runs from before sertool logged them."""
    model_ids: tuple[str, ...] = ()
    """Logged models the run output (its checkpoint, an exported model)."""

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get(PARENT_TAG)

    @property
    def stage(self) -> str | None:
        return self.tags.get(STAGE_TAG)

    def metric(self, name: str, default: float = math.nan) -> float:
        return self.metrics.get(name, default)

    @classmethod
    def from_mlflow(cls, run) -> "RunInfo":
        """Convert an `mlflow.entities.Run` (kept duck-typed so this module needs no mlflow import)."""
        info, data = run.info, run.data

        def ts(ms: int | None) -> datetime | None:
            return datetime.fromtimestamp(ms / 1000) if ms else None

        tags = dict(data.tags)
        return cls(
            datasets=tuple(_dataset(d) for d in getattr(getattr(run, "inputs", None), "dataset_inputs", None) or ()),
            model_ids=tuple(o.model_id for o in getattr(getattr(run, "outputs", None), "model_outputs", None) or ()),
            run_id=info.run_id,
            name=info.run_name or "",
            kind=tags.get(KIND_TAG),
            status=info.status,
            experiment_id=info.experiment_id,
            artifact_uri=info.artifact_uri,
            start_time=ts(info.start_time),
            end_time=ts(info.end_time),
            params=dict(data.params),
            metrics={k: float(v) for k, v in data.metrics.items()},
            tags=tags,
        )


def _dataset(di) -> DatasetRef:
    """An `mlflow.entities.DatasetInput` as a `DatasetRef` (duck-typed, as `RunInfo.from_mlflow`)."""
    import json

    d = di.dataset
    try:
        source = json.loads(d.source).get("uri", d.source) if d.source else ""
    except (ValueError, AttributeError):
        source = d.source or ""
    try:
        profile = json.loads(d.profile) if d.profile else {}
    except ValueError:
        profile = {}
    context = next((t.value for t in di.tags or () if t.key == "mlflow.data.context"), "")
    return DatasetRef(d.name, d.digest, str(source), context, profile if isinstance(profile, dict) else {})
