"""What reading runs back returns: a typed, mlflow-free record of one run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from .names import KIND_TAG, PARENT_TAG, STAGE_TAG


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
