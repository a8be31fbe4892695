"""The tracking store: starting runs and reading them back, behind one class.

    tracker = Tracker(uri, store_root=layout.root)      # a server, a database, or experiments/mlflow.db
    with tracker.start("train", run_name="pretrain", tags={STAGE_TAG: "pretrain"}) as run:
        run.log_params(config)                          # nested dicts -> "model.proj_dim" etc.
        for epoch in ...:
            run.log_metrics({"dev_f1_macro": f1, "lr": lr}, step=epoch)
        run.log_checkpoint("best.safetensors", model_config)
        run.log_predictions("Development", df)
    best = tracker.find_runs(order_by=["metrics.best_dev_ccc_valence DESC"], max_results=3)
    preds = tracker.load_predictions(best[0].run_id, "Development")

Only rank 0 of a torchrun launch writes: `start` hands every other rank a `NullRunLogger`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from .. import launch
from ..errors import NotFound, SertoolError
from .logger import NullRunLogger, RunLogger, _reaching, clean_key, stringify
from .names import (
    CHECKPOINT_DIR,
    EXPERIMENT_TAGS,
    GIT_COMMIT_TAG,
    HOST_TAG,
    KIND_TAG,
    KINDS,
    ORPHANED_TAG,
    PARENT_TAG,
    PID_START_TAG,
    PID_TAG,
    RUN_CONFIG,
    predictions_path,
)
from .health import probe_database, probe_server
from .identity import git_commit, identity_tags, limit_http_retries, run_user
from .records import RunInfo
from .uri import (
    artifact_root_for,
    check_reachable,
    default_experiment_name,
    is_remote,
    redact,
    resolve_tracking_uri,
    sqlite_path,
)

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------- the tracking store


class Tracker:
    """One tracking store (URI) and its default experiment; starts runs and reads them back.

    `tracking_uri`: a server, a database or a local SQLite file (None: `sqlite:///<project>/experiments/
    mlflow.db`; the CLI hands down `--tracking-uri` / `MLFLOW_TRACKING_URI`). `experiment`: the default
    experiment name, else derived from `store_root` (one experiment per feature store). A server URI is
    probed at once, so a dead server fails before any work starts.
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
        self.shown_uri = redact(self.uri)
        """The URI as messages show it (no password)."""
        self.experiment = experiment or default_experiment_name(store_root)
        self._client: MlflowClient | None = None
        if is_remote(self.uri):
            limit_http_retries()
            check_reachable(self.uri)
            probe_server(self.uri)
        elif sqlite_path(self.uri) is None:  # a database server (postgresql://, mysql://...): open it now
            probe_database(lambda: self.client, self.shown_uri)

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
            raise NotFound(f"no tracking store at {self.shown_uri} yet: runs appear after `sertool train`")
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        if not create:
            raise NotFound(f"no experiment named {name!r} in tracking store {self.shown_uri}")
        root = artifact_root_for(self.uri)
        location = (root / _safe_dirname(name)).as_uri() if root is not None else None
        try:
            return self.client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
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
        if not launch.from_env().is_main:
            return NullRunLogger()
        if parent_run_id and experiment is None:
            exp_id = self._get_mlflow_run(parent_run_id).info.experiment_id
        else:
            exp_id = self.experiment_id(experiment, create=True)
        all_tags: dict[str, Any] = {KIND_TAG: kind, **identity_tags()}
        user = run_user()
        if user:
            all_tags["mlflow.user"] = user
        commit = git_commit()
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

    def reopen(self, run_id: str) -> RunLogger:
        """Write to an existing run again (resuming a killed run): its status goes back to RUNNING."""
        if not launch.from_env().is_main:
            return NullRunLogger()
        run = self._get_mlflow_run(run_id)
        with _reaching(self.client):
            self.client.update_run(run_id, status="RUNNING")
        logger = RunLogger(self.client, run_id, run.info.experiment_id)
        logger.set_tags(identity_tags())
        return logger

    def reap_orphans(self, experiment: str | None = None) -> list[RunInfo]:
        """Mark FAILED the RUNNING runs of the experiment whose process, on this host, is gone (kill -9,
        out of memory, a reboot); returns them. Runs of other hosts are left alone: we cannot know."""
        from .. import launch

        if self._store_missing():
            return []
        try:
            running = self.find_runs(experiment, "attributes.status = 'RUNNING'", max_results=10_000)
        except NotFound:
            return []
        gone = []
        for run in running:
            host, pid = run.tags.get(HOST_TAG), run.tags.get(PID_TAG)
            if host and pid and launch.alive(host, pid, run.tags.get(PID_START_TAG, "")) is False:
                with _reaching(self.client):
                    self.client.set_tag(run.run_id, ORPHANED_TAG, f"process {pid} on {host} is gone")
                    self.client.set_terminated(run.run_id, "FAILED")
                gone.append(self.get_run(run.run_id))
        return gone

    def mark_experiment(self, name: str | None = None) -> str | None:
        """The experiment's id, its kind tag set if missing (`EXPERIMENT_TAGS`); None if it does not exist yet."""
        try:
            exp_id = self.experiment_id(name)
        except NotFound:
            return None
        exp = self.client.get_experiment(exp_id)
        missing = {k: v for k, v in EXPERIMENT_TAGS.items() if k not in exp.tags}
        for key, value in missing.items():
            self.client.set_experiment_tag(exp_id, key, value)
        return exp_id

    def end_run(self, run_id: str, status: str, tags: Mapping[str, Any] | None = None) -> None:
        """Mark a run whose own process can no longer do it (a sweep's child it had to kill) as `status`."""
        with _reaching(self.client):
            for key, value in (tags or {}).items():
                if value is not None:
                    self.client.set_tag(run_id, clean_key(key), stringify(value, MAX_TAG_VAL_LENGTH))
            self.client.set_terminated(run_id, status)

    def metric_steps(self, run_id: str, key: str) -> set[int]:
        """The steps at which a run logged metric `key` (a resumed run skips logging them again)."""
        with _reaching(self.client):
            return {m.step for m in self.client.get_metric_history(run_id, key)}

    # -- reading
    def _get_mlflow_run(self, run_id: str):
        try:
            return self.client.get_run(run_id)
        except MlflowException:
            raise NotFound(f"no run with id {run_id!r} in tracking store {self.shown_uri}") from None

    mlflow_run = _get_mlflow_run

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

    def log_text_artifact(self, run_id: str, text: str, name: str) -> None:
        """Attach a text file (a rendered report) to an existing, possibly finished, run."""
        try:
            self.client.log_text(run_id, text, name)
        except MlflowException as e:
            raise SertoolError(f"could not log {name} to run {run_id}: {e.message}") from None

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

    def load_config(self, run_id: str, dst: str | Path) -> dict[str, Any]:
        """A run's full resolved config (`config.json`)."""
        return json.loads(self.download_artifact(run_id, RUN_CONFIG, dst).read_text())

    def load_checkpoint(self, run_id: str, dst: str | Path) -> tuple[Path, dict[str, Any]]:
        """Download a run's checkpoint into `dst`: (path of model.safetensors, its config)."""
        folder = self.download_artifact(run_id, CHECKPOINT_DIR, dst)
        weights, config = folder / "model.safetensors", folder / "config.json"
        if not weights.exists() or not config.exists():
            raise NotFound(f"run {run_id} has no complete checkpoint (model.safetensors + config.json)")
        return weights, json.loads(config.read_text())

    # -- logged models and the model registry
    def download_model(self, model_id: str, dst: str | Path) -> Path:
        """A logged model's files into the directory `dst` (made if need be); returns the folder holding them."""
        import mlflow.artifacts

        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            with _reaching(self.client):
                lm = self.client.get_logged_model(model_id)
                got = mlflow.artifacts.download_artifacts(artifact_uri=lm.artifact_location, dst_path=str(dst),
                                                          tracking_uri=self.uri)
        except (MlflowException, OSError) as e:
            raise NotFound(f"logged model {model_id} cannot be read ({e})") from None
        return Path(got)


def _safe_dirname(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "default"
