"""Writing one run: `RunLogger`, and the cleaning of names and values at MLflow's boundary.

Lightning-logger style: an explicit `MlflowClient` and run id, never MLflow's hidden global active
run, so a sweep can hold a parent and a child run at once and nothing leaks between tests. Params
are flattened and cleaned here, at the boundary, so callers hand over their config as it is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from ..errors import NotFound, SertoolError
from .names import CHECKPOINT_CONFIG, CHECKPOINT_DIR, CHECKPOINT_MODEL_TAG, RUN_CONFIG, predictions_path
from .uri import TrackingUnreachable, redact

if TYPE_CHECKING:
    import pandas as pd

    from .records import DatasetRef

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
_ELLIPSIS = "..."


# ---------------------------------------------------------------- cleaning values at the boundary


def flatten(config: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings (and dataclasses) to one level with dotted keys: {"model": {"dim": 8}} -> {"model.dim": 8}."""
    if is_dataclass(config) and not isinstance(config, type):
        config = asdict(config)
    out: dict[str, Any] = {}
    for key, value in config.items():
        if is_dataclass(value) and not isinstance(value, type):
            value = asdict(value)
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def clean_model_name(name: str, kind: str) -> str:
    """A logged model's name as MLflow accepts it (no slashes, colons, dots or spaces), ending in `-kind`.

    The suffix matters: MLflow 3 reads `runs:/<run>/<name>/...` from the run's logged model of that name,
    so a model named like one of the run's artifact folders (`checkpoint`) would hide that folder."""
    base = re.sub(r"[^\w\-]+", "-", str(name)).strip("-")
    return f"{base[: MAX_ENTITY_KEY_LENGTH - len(kind) - 1]}-{kind}" if base else f"sertool-{kind}"


def clean_key(key: str) -> str:
    """A key MLflow accepts: invalid characters become `_`, at most 250 characters."""
    return _BAD_KEY_CHARS.sub("_", str(key))[:MAX_ENTITY_KEY_LENGTH]


def stringify(value: Any, limit: int) -> str:
    """A param/tag value as text within MLflow's length limit (lists as JSON; cut values end in '...')."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)):
        text = json.dumps(list(value), default=str)
    elif isinstance(value, Mapping):
        text = json.dumps(dict(value), default=str)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- one run, being written


class RunLogger:
    """Writes one run. A context manager: leaving it marks the run FINISHED, FAILED on an
    exception, KILLED on Ctrl-C. Every write goes through `_batch`, `_upload` and `_terminate`."""

    def __init__(self, client: MlflowClient | None, run_id: str | None, experiment_id: str | None) -> None:
        self._client = client
        self._run_id = run_id
        self._experiment_id = experiment_id
        self._status: str | None = None

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id

    @property
    def status(self) -> str | None:
        """None while running; the final status after `finalize`."""
        return self._status

    # -- values
    def log_params(self, config: Mapping[str, Any] | Any) -> None:
        """Log a (nested) config as params: keys flattened with dots, values stringified and cut to MLflow's limit."""
        params = [
            Param(clean_key(k), stringify(v, MAX_PARAM_VAL_LENGTH)) for k, v in flatten(config).items()
        ]
        for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
            self._batch(params=chunk)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values stringified; None values skipped)."""
        items = [
            RunTag(clean_key(k), stringify(v, MAX_TAG_VAL_LENGTH)) for k, v in tags.items() if v is not None
        ]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._batch(tags=chunk)

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        """Log numbers at one step (the epoch, for per-epoch figures); None values are skipped.

        Numpy and 0-d torch values are accepted (anything `float()` takes).
        """
        ts, st = _now_ms(), int(step) if step is not None else 0
        items = [Metric(clean_key(k), float(v), ts, st) for k, v in metrics.items() if v is not None]
        for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
            self._batch(metrics=chunk)

    # -- files
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file, or a directory's contents, under `artifact_path` (a folder inside the run)."""
        self._upload(Path(path), artifact_path)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        """Save a mapping as JSON at artifact path `name` (e.g. `config.json`)."""
        with _staged(name) as local:
            local.write_text(json.dumps(data, indent=2, default=str, sort_keys=False))
            self._upload(local, _dirname(name))

    def log_table(self, df: "pd.DataFrame", name: str) -> None:
        """Save a DataFrame at artifact path `name`: `.parquet` as Parquet, else CSV (`.csv` added if missing)."""
        if not name.endswith((".csv", ".parquet")):
            name += ".csv"
        with _staged(name) as local:
            if name.endswith(".parquet"):
                df.to_parquet(local, index=False)
            else:
                df.to_csv(local, index=False)
            self._upload(local, _dirname(name))

    def log_figure(self, fig: Any, name: str, **savefig_kwargs: Any) -> None:
        """Save a matplotlib figure at artifact path `name` (PNG unless the name says otherwise)."""
        if "." not in Path(name).name:
            name += ".png"
        with _staged(name) as local:
            fig.savefig(local, **({"dpi": 100, "bbox_inches": "tight"} | savefig_kwargs))
            self._upload(local, _dirname(name))

    # -- the artifact layout of a training run (see names.py)
    def log_config(self, config: Mapping[str, Any] | Any) -> None:
        """The full resolved config: flattened into params (searchable) and whole as `config.json`."""
        self.log_params(config)
        self.log_dict(asdict(config) if is_dataclass(config) else dict(config), RUN_CONFIG)

    def log_checkpoint(self, weights: str | Path, config: Mapping[str, Any], *, name: str = "",
                       step: int | None = None) -> str | None:
        """The best checkpoint: `checkpoint/model.safetensors` + `checkpoint/config.json` (whatever the local
        name), which `--init-from`, `predict` and ensembles read, and the same two files as an MLflow 3
        logged model the run outputs, so MLflow's UI links it from the run (Model column) and it can be
        registered; its id is the run's tag `sertool.checkpoint_model`. Where both live on a local disk
        the model's files are hard links to the run's: one copy of the weights. Returns the model's id."""
        with _staged(f"{CHECKPOINT_DIR}/model.safetensors") as local:
            shutil.copyfile(weights, local)
            self._upload(local, CHECKPOINT_DIR)
        self.log_dict(dict(config), CHECKPOINT_CONFIG)
        if self._client is None:
            return None
        with tempfile.TemporaryDirectory(prefix="sertool-checkpoint-") as tmp:
            folder = Path(tmp)
            shutil.copyfile(weights, folder / "model.safetensors")
            (folder / "config.json").write_text(json.dumps(dict(config), indent=2, default=str))
            run_dir = _local_dir(self._client.get_run(self._run_id).info.artifact_uri)
            linked = None if run_dir is None else {f: run_dir / CHECKPOINT_DIR / f for f in ("model.safetensors", "config.json")}
            model_id = self.log_model_dir(folder, name=clean_model_name(name, "checkpoint"),
                                          model_type="sertool-fusion-checkpoint", step=step, linked=linked)
        self.set_tags({CHECKPOINT_MODEL_TAG: model_id})
        return model_id

    def log_model_dir(self, folder: str | Path, *, name: str, model_type: str, step: int | None = None,
                      tags: Mapping[str, Any] | None = None, linked: Mapping[str, Path] | None = None) -> str | None:
        """Upload a folder as a logged model of this run's experiment, READY, and output by this run
        (the run page and the runs table's Model column link it). Returns the model id. `name` must not
        be a top-level artifact path of the run (see `clean_model_name`).

        `linked`: file name -> the same bytes already in a local artifact store; where the model's own
        artifact location is local too, those become hard links instead of copies."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        with _reaching(self._client):
            lm = self._client.create_logged_model(
                self._experiment_id, name=name, source_run_id=self._run_id, model_type=model_type,
                tags={clean_key(k): stringify(v, MAX_TAG_VAL_LENGTH) for k, v in (tags or {}).items()})
            try:
                model_dir = _local_dir(lm.artifact_location)
                if not (linked and model_dir is not None and _link_all(linked, model_dir)):
                    self._client.log_model_artifacts(lm.model_id, str(folder))
            except BaseException:
                self._client.finalize_logged_model(lm.model_id, LoggedModelStatus.FAILED)
                raise
            self._client.finalize_logged_model(lm.model_id, LoggedModelStatus.READY)
            self._client.log_outputs(self._run_id, [LoggedModelOutput(lm.model_id, int(step or 0))])
        return lm.model_id

    def log_datasets(self, datasets: Sequence["DatasetRef"]) -> None:
        """The run's dataset inputs, shown in MLflow's Dataset column (`datasets.log_dataset_inputs`)."""
        from .datasets import log_dataset_inputs

        with _reaching(self._client):
            log_dataset_inputs(self._client, str(self._run_id), datasets)

    def log_predictions(self, split: str, df: "pd.DataFrame") -> None:
        """A split's predictions as `predictions/<split>.csv` (one row per clip, `clip_id` first)."""
        self.log_table(df, predictions_path(split))

    # -- end
    def finalize(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED, FAILED or KILLED; later calls do nothing."""
        if self._status is not None:
            return
        self._status = status
        self._terminate(status)

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize("FINISHED")
        elif issubclass(exc_type, TrackingUnreachable):
            self._status = "FAILED"  # the server is gone: telling it would only wait out more retries
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finalize("KILLED")
        else:
            self.finalize("FAILED")

    # -- primitives
    def _batch(self, metrics: list = (), params: list = (), tags: list = ()) -> None:  # type: ignore[assignment]
        with _reaching(self._client):
            self._client.log_batch(self._run_id, metrics=metrics, params=params, tags=tags, synchronous=True)

    def _upload(self, local: Path, artifact_path: str | None) -> None:
        if not (local.is_dir() or local.is_file()):
            raise NotFound(f"cannot log artifact {local}: no such file or directory")
        with _reaching(self._client):
            if local.is_dir():
                self._client.log_artifacts(self._run_id, str(local), artifact_path)
            else:
                self._client.log_artifact(self._run_id, str(local), artifact_path)

    def _terminate(self, status: str) -> None:
        with _reaching(self._client):
            self._client.set_terminated(self._run_id, status)


class NullRunLogger(RunLogger):
    """Accepts every call and logs nothing: what `Tracker.start` hands DDP ranks other than 0, the one
    rank-zero mechanism (callers never check ranks to decide whether to log)."""

    def __init__(self) -> None:
        super().__init__(None, None, None)

    def _batch(self, metrics: list = (), params: list = (), tags: list = ()) -> None:  # type: ignore[assignment]
        pass

    def _upload(self, local: Path, artifact_path: str | None) -> None:
        pass

    def _terminate(self, status: str) -> None:
        pass

    def log_model_dir(self, folder: str | Path, *, name: str, model_type: str, step: int | None = None,
                      tags: Mapping[str, Any] | None = None) -> str | None:
        return None

    def log_datasets(self, datasets: Sequence["DatasetRef"]) -> None:
        pass


def _lost_connection(error: BaseException | None) -> bool:
    """True when `error`, or what it was raised from, is a refused, reset or timed-out connection, or a
    server that kept failing (retries exhausted on 5xx answers: its database went down mid-run)."""
    import requests
    from urllib3.exceptions import MaxRetryError

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError,
                              MaxRetryError)):
            return True
        if "Max retries exceeded" in str(error):  # MLflow flattens the retry error into its message
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def _reaching(client: MlflowClient) -> Iterator[None]:
    """A server that dies mid-run becomes one `TrackingUnreachable` line instead of MLflow's traceback
    (MLflow wraps the refused connection in a generic MlflowException after its retries)."""
    try:
        yield
    except Exception as e:
        if isinstance(e, SertoolError) or not _lost_connection(e):
            raise
        uri = redact(getattr(client, "tracking_uri", "the tracking URI"))
        raise TrackingUnreachable(
            f"tracking server unreachable at {uri} (connection lost or the server failing mid-run; the run is "
            "left unfinished there: rerun, or `sertool train --resume RUN`, once the server is back)"
        ) from None


def _local_dir(uri: str) -> Path | None:
    """The local directory of a `file://` artifact URI (None for a server or an object store)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def _link_all(files: Mapping[str, Path], dst: Path) -> bool:
    """Hard-link each file into `dst` under its name; False (nothing left behind) where the filesystem
    cannot, so the caller uploads copies instead."""
    made = []
    try:
        dst.mkdir(parents=True, exist_ok=True)
        for name, src in files.items():
            os.link(src, dst / name)
            made.append(dst / name)
    except OSError:
        for p in made:
            p.unlink(missing_ok=True)
        return False
    return True


@contextmanager
def _staged(name: str) -> Iterator[Path]:
    """A temporary local file named like the artifact's last path part (MLflow keeps the file name)."""
    with tempfile.TemporaryDirectory(prefix="sertool-artifact-") as tmp:
        yield Path(tmp) / Path(name).name


def _dirname(name: str) -> str | None:
    parent = str(Path(name).parent)
    return None if parent in ("", ".") else parent
