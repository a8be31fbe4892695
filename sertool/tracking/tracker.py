"""Logging runs to MLflow and reading them back, behind one class.

Lightning-logger style: an explicit `MlflowClient` and run id, never MLflow's hidden global active
run, so a sweep can hold a parent and a child run at once and nothing leaks between tests. Params
are flattened and cleaned here, at the boundary, so callers hand over their config as it is.

    tracker = Tracker(store_root=layout.root)           # MLFLOW_TRACKING_URI or experiments/mlflow.db
    with tracker.start("train", run_name="pretrain", tags={STAGE_TAG: "pretrain"}) as run:
        run.log_params(config)                          # nested dicts -> "model.proj_dim" etc.
        for epoch in ...:
            run.log_metrics({"dev_f1_macro": f1, "lr": lr}, step=epoch)
        run.log_checkpoint("best.safetensors", model_config)
        run.log_predictions("Development", df)
    best = tracker.find_runs(order_by=["metrics.best_dev_ccc_valence DESC"], max_results=3)
    preds = tracker.load_predictions(best[0].run_id, "Development")
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from ..errors import NotFound, SertoolError
from .names import (
    CHECKPOINT_CONFIG,
    CHECKPOINT_DIR,
    GIT_COMMIT_TAG,
    KIND_TAG,
    KINDS,
    PARENT_TAG,
    RUN_CONFIG,
    predictions_path,
)
from .records import RunInfo
from .uri import (
    TrackingUnreachable,
    artifact_root_for,
    check_reachable,
    default_experiment_name,
    is_remote,
    resolve_tracking_uri,
    sqlite_path,
)

if TYPE_CHECKING:
    import pandas as pd

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


def _git_commit() -> str | None:
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


def _limit_http_retries() -> None:
    """MLflow retries a dead server for minutes by default; a training job should learn sooner."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


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

    def log_text(self, text: str, name: str) -> None:
        with _staged(name) as local:
            local.write_text(text)
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

    def log_checkpoint(self, weights: str | Path, config: Mapping[str, Any]) -> None:
        """The best checkpoint: `checkpoint/model.safetensors` + `checkpoint/config.json`, whatever the local name."""
        with _staged(f"{CHECKPOINT_DIR}/model.safetensors") as local:
            shutil.copyfile(weights, local)
            self._upload(local, CHECKPOINT_DIR)
        self.log_dict(dict(config), CHECKPOINT_CONFIG)

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
    """Accepts every call and logs nothing: what DDP ranks other than 0 hold."""

    def __init__(self) -> None:
        super().__init__(None, None, None)

    def _batch(self, metrics: list = (), params: list = (), tags: list = ()) -> None:  # type: ignore[assignment]
        pass

    def _upload(self, local: Path, artifact_path: str | None) -> None:
        pass

    def _terminate(self, status: str) -> None:
        pass


def _lost_connection(error: BaseException | None) -> bool:
    """True when `error`, or what it was raised from, is a refused, reset or timed-out connection."""
    import requests

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
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
        uri = getattr(client, "tracking_uri", "the tracking URI")
        raise TrackingUnreachable(
            f"tracking server unreachable at {uri} (connection lost mid-run; the run is left unfinished "
            "there: rerun once the server is back)"
        ) from None


@contextmanager
def _staged(name: str) -> Iterator[Path]:
    """A temporary local file named like the artifact's last path part (MLflow keeps the file name)."""
    with tempfile.TemporaryDirectory(prefix="sertool-artifact-") as tmp:
        yield Path(tmp) / Path(name).name


def _dirname(name: str) -> str | None:
    parent = str(Path(name).parent)
    return None if parent in ("", ".") else parent


# ---------------------------------------------------------------- the tracking store


class Tracker:
    """One tracking store (URI) and its default experiment; starts runs and reads them back.

    `tracking_uri`: explicit, else `MLFLOW_TRACKING_URI`, else `sqlite:///<project>/experiments/mlflow.db`.
    `experiment`: the default experiment name, else derived from `store_root` (one experiment per
    feature store). A server URI is probed at once, so a dead server fails before any work starts.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str | None = None,
        store_root: str | Path | None = None,
        project_dir: Path | None = None,
    ) -> None:
        self.uri = resolve_tracking_uri(tracking_uri, project_dir)
        self.experiment = experiment or default_experiment_name(store_root)
        if is_remote(self.uri):
            _limit_http_retries()
            check_reachable(self.uri)
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            db = sqlite_path(self.uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _store_missing(self) -> bool:
        """A local SQLite store not created yet: reading must not create it as a side effect."""
        db = sqlite_path(self.uri)
        return db is not None and not db.exists()

    # -- experiments
    def experiment_id(self, name: str | None = None, *, create: bool = False) -> str:
        """The experiment's id; with `create`, made on first use (artifacts beside a SQLite store)."""
        name = name or self.experiment
        if not create and self._store_missing():
            raise NotFound(f"no tracking store at {self.uri} yet: runs appear after `sertool train`")
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        if not create:
            raise NotFound(f"no experiment named {name!r} in tracking store {self.uri}")
        root = artifact_root_for(self.uri)
        location = (root / _safe_dirname(name)).as_uri() if root is not None else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another process (a parallel sweep) created it between our lookup and create.
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    # -- writing
    def start(
        self,
        kind: str,
        *,
        experiment: str | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> RunLogger:
        """Create a run of `kind` (train|sweep|ensemble); a child of `parent_run_id` if given.

        A child run lands in its parent's experiment unless `experiment` says otherwise.
        """
        if kind not in KINDS:
            raise SertoolError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
        if parent_run_id and experiment is None:
            exp_id = self._get_mlflow_run(parent_run_id).info.experiment_id
        else:
            exp_id = self.experiment_id(experiment, create=True)
        all_tags: dict[str, Any] = {KIND_TAG: kind}
        user = _user()
        if user:
            all_tags["mlflow.user"] = user
        commit = _git_commit()
        if commit:
            all_tags[GIT_COMMIT_TAG] = commit
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        all_tags.update({k: v for k, v in (tags or {}).items() if v is not None})
        with _reaching(self.client):
            run = self.client.create_run(
                exp_id,
                run_name=run_name,
                tags={clean_key(k): stringify(v, MAX_TAG_VAL_LENGTH) for k, v in all_tags.items()},
            )
        return RunLogger(self.client, run.info.run_id, exp_id)

    # -- reading
    def _get_mlflow_run(self, run_id: str):
        try:
            return self.client.get_run(run_id)
        except MlflowException:
            raise NotFound(f"no run with id {run_id!r} in tracking store {self.uri}") from None

    def get_run(self, run_id: str) -> RunInfo:
        return RunInfo.from_mlflow(self._get_mlflow_run(run_id))

    def resolve_run(self, ref: str, experiment: str | None = None) -> RunInfo:
        """A run named by the user: its full id, a unique run name, or a unique id prefix (as `sertool runs` shows)."""
        if re.fullmatch(r"[0-9a-f]{32}", ref):
            return self.get_run(ref)
        escaped = ref.replace("'", "\\'")
        by_name = self.find_runs(experiment, f"attributes.run_name = '{escaped}'", max_results=10)
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            ids = ", ".join(r.run_id[:8] for r in by_name)
            raise SertoolError(f"several runs are named {ref!r} ({ids}); give a run id instead")
        if re.fullmatch(r"[0-9a-f]{4,31}", ref):
            hits = [r for r in self.find_runs(experiment, max_results=50_000) if r.run_id.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise SertoolError(f"run id prefix {ref!r} is ambiguous ({len(hits)} runs); give more characters")
        raise NotFound(f"no run {ref!r} (id, id prefix or name) in experiment {experiment or self.experiment!r}")

    def find_runs(
        self,
        experiment: str | None = None,
        filter_string: str = "",
        order_by: list[str] | None = None,
        max_results: int = 1000,
        *,
        kind: str | None = None,
        parent_run_id: str | None = None,
    ) -> list[RunInfo]:
        """Search runs with MLflow's filter syntax, e.g. `metrics.best_dev_ccc_mean > 0.5`.

        `kind` and `parent_run_id` add the matching tag filters. `order_by` entries look like
        `metrics.best_dev_f1_macro DESC`; runs without the metric come last.
        """
        exp_id = self.experiment_id(experiment)
        clauses = [filter_string] if filter_string.strip() else []
        if kind:
            clauses.append(f"tags.\"{KIND_TAG}\" = '{kind}'")
        if parent_run_id:
            clauses.append(f"tags.\"{PARENT_TAG}\" = '{parent_run_id}'")
        query = " and ".join(clauses)
        runs: list[RunInfo] = []
        token = None
        while len(runs) < max_results:
            try:
                page = self.client.search_runs(
                    [exp_id],
                    filter_string=query,
                    run_view_type=ViewType.ACTIVE_ONLY,
                    max_results=min(max_results - len(runs), 1000),
                    order_by=order_by,
                    page_token=token,
                )
            except MlflowException as e:
                raise SertoolError(f"bad run search ({query!r}, order by {order_by}): {e.message}") from None
            runs.extend(RunInfo.from_mlflow(r) for r in page)
            token = page.token
            if not token:
                break
        return runs

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        """Artifact paths (files and folders) directly under `path` of a run."""
        return [f.path for f in self.client.list_artifacts(run_id, path)]

    def download_artifact(self, run_id: str, path: str, dst: str | Path) -> Path:
        """Copy a run's artifact (file or folder) into the directory `dst`; returns the local path."""
        Path(dst).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr for our progress
        try:
            return Path(self.client.download_artifacts(run_id, path, dst_path=str(dst)))
        except (MlflowException, OSError) as e:
            raise NotFound(f"run {run_id} has no artifact {path!r} ({e})") from None

    def load_table(self, run_id: str, name: str, **read_kwargs: Any) -> "pd.DataFrame":
        """Read a table artifact logged by `RunLogger.log_table` (id columns stay text)."""
        import pandas as pd

        with tempfile.TemporaryDirectory(prefix="sertool-table-") as tmp:
            local = self.download_artifact(run_id, name, tmp)
            if name.endswith(".parquet"):
                return pd.read_parquet(local, **read_kwargs)
            read_kwargs.setdefault("dtype", {"clip_id": str, "FileName": str})
            return pd.read_csv(local, **read_kwargs)

    def load_predictions(self, run_id: str, split: str) -> "pd.DataFrame":
        """A run's predictions for `split` (`predictions/<split>.csv`)."""
        return self.load_table(run_id, predictions_path(split))

    def load_checkpoint(self, run_id: str, dst: str | Path) -> tuple[Path, dict[str, Any]]:
        """Download a run's checkpoint into `dst`: (path of model.safetensors, its config)."""
        folder = self.download_artifact(run_id, CHECKPOINT_DIR, dst)
        weights, config = folder / "model.safetensors", folder / "config.json"
        if not weights.exists() or not config.exists():
            raise NotFound(f"run {run_id} has no complete checkpoint (model.safetensors + config.json)")
        return weights, json.loads(config.read_text())


def _safe_dirname(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "default"


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return None


# -- module-level shortcuts for one-off reads


def find_runs(
    experiment: str | None = None,
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int = 1000,
    *,
    kind: str | None = None,
    tracking_uri: str | None = None,
) -> list[RunInfo]:
    return Tracker(tracking_uri).find_runs(experiment, filter_string, order_by, max_results, kind=kind)


def download_artifact(run_id: str, path: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    return Tracker(tracking_uri).download_artifact(run_id, path, dst)


def load_table(run_id: str, name: str, *, tracking_uri: str | None = None) -> "pd.DataFrame":
    return Tracker(tracking_uri).load_table(run_id, name)

