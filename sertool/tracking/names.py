"""Every tag and artifact name a run carries: strings other code and users rely on.

These strings are an interface. Ensembles find their candidates by tags and read the
`predictions/<split>.csv` tables; users filter runs with `tags."sertool.kind" = 'train'`. Metric names
are the metrics module's (`sertool.metrics`). Change a name here only together with every reader.

Artifact layout of a training run::

    checkpoint/model.safetensors   best checkpoint's weights
    checkpoint/config.json         everything needed to rebuild the model (dims, encoders, classes)
    predictions/<split>.csv        one row per clip (`sertool.predictions`): Development, Test1, ...
    plots/<name>.png               confusion matrix, attribute scatter plots
    config.json                    the full resolved run config (also flattened into params)

An ensemble run adds `ensemble.json` (its members; a stacked one's meta-models as plain numbers) and
`submission/<file>.csv`; a sweep's parent run holds `recipe/<file>.toml` and `sweep_summary.csv` (a search's also
`search_trials.csv`, one row per Optuna trial).

Besides its artifacts a training run outputs its checkpoint as an MLflow 3 logged model (named
`<run>-checkpoint`; `sertool.checkpoint_model` holds its id) and logs its `training` and `evaluation`
datasets (`train.lineage`); an ensemble registered with `--register` outputs a `<run>-pyfunc` model.
Logged models' names never equal an artifact folder's: MLflow reads `runs:/<run>/<name>` from the
model of that name.
"""

from __future__ import annotations

from typing import Literal

RunKind = Literal["train", "sweep", "ensemble", "asr"]
KINDS: tuple[str, ...] = ("train", "sweep", "ensemble", "asr")

# Tags every sertool run may carry.
KIND_TAG = "sertool.kind"
STAGE_TAG = "sertool.stage"
INIT_FROM_TAG = "sertool.init_from"
STORE_TAG = "sertool.store"
SPLITS_TAG = "sertool.splits"
"""The split scheme a training run used (ensembles inherit it when all members agree)."""
SELECT_TAG = "sertool.select"
RECIPE_TAG = "sertool.recipe"
TASK_TAG = "sertool.task"
"""An ensemble's task (1 or 2)."""
RESUME_TAG = "sertool.resume_state"
"""Where a training run keeps the state `sertool train --resume` goes on from (`train.resume`)."""
HOST_TAG = "sertool.host"
PID_TAG = "sertool.pid"
PID_START_TAG = "sertool.pid_start"
"""Which process writes the run (`launch.identity()`): a RUNNING run whose process is gone was killed."""
ORPHANED_TAG = "sertool.orphaned"
WARNING_SCHEDULE_TAG = "sertool.warning.schedule"
WARNING_CONSTANT_TAG = "sertool.warning.constant"
"""A run that learnt (almost) nothing says so (`train.diagnostics`)."""
REFIT_TAG = "sertool.refit"
"""On a refit run (`--refit train+dev N`): what it trained on. Such a run has no dev figures."""
# Sweeps (`train.sweep`): a child is known by the digest of its resolved config, so that a resumed
# sweep finds it again and never trains it twice.
SWEEP_KEY_TAG = "sertool.sweep.key"
"""On a sweep's child: `TrainConfig.digest()` of its resolved config."""
SWEEP_MODE_TAG = "sertool.sweep.mode"
"""On a sweep's parent: `grid` or `optuna` (a search)."""
SWEEP_DIR_TAG = "sertool.sweep.dir"
"""On a sweep's parent: the folder holding its children's job logs and status files."""
LAUNCHER_TAG = "sertool.launcher"
"""How a sweep ran its children: inline, pool, local (submitit's local executor) or slurm."""
LOG_TAG = "sertool.log"
"""On a child run started by a launcher: the path of its job's log (stdout and stderr)."""
JOB_ID_TAG = "sertool.job_id"
"""On a child run started through submitit: its (Slurm or local) job id."""
TRIAL_TAG = "sertool.trial"
"""On a search's child: the Optuna trial number it trained."""
PRUNED_TAG = "sertool.pruned"
"""On a search's child stopped by the pruner: why (its status is KILLED; it has no checkpoint)."""
STUDY_TAG = "sertool.study"
STUDY_STORAGE_TAG = "sertool.study.storage"
"""On a search's parent: the Optuna study's name and storage (a journal file or database URL)."""
OBJECTIVE_TAG = "sertool.search.objective"
BEST_TRIAL_TAG = "sertool.search.best_trial"
BEST_RUN_TAG = "sertool.search.best_run"
BEST_PARAM_PREFIX = "sertool.search.best."
"""+ option name: the best trial's value of each searched option (tags: a resumed search may change them)."""
ENCODER_TAG_PREFIX = "sertool.encoder."  # + encoder name -> fingerprint
DATA_DIGEST_TAG = "sertool.data_digest"
"""The digest of a run's training data (its `training` dataset input): ensembles compare it, and
`--filter "tags.\"sertool.data_digest\" = '...'"` picks the runs of one version of the data."""
CHECKPOINT_MODEL_TAG = "sertool.checkpoint_model"
"""The id of the MLflow logged model that holds a training run's checkpoint."""
TRAINING, EVALUATION = "training", "evaluation"
"""Dataset contexts (`mlflow.data.context`): what trained the model, and what selected and scored it."""
GIT_COMMIT_TAG = "mlflow.source.git.commit"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: "custom_model_development"}
"""Set on every experiment sertool makes: MLflow's UI types it as model training, not a GenAI app (3.17
picks the landing page from the URL's `workflowType`, which `sertool ui` sets; the tag says the same to
versions and clients that read it)."""
ML_WORKFLOW = "workflowType=machine_learning"
"""The UI query that opens an experiment on its runs table (MLflow 3.17 otherwise lands on the GenAI
overview: traces, token usage)."""

# Artifact layout.
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_WEIGHTS = "checkpoint/model.safetensors"
CHECKPOINT_CONFIG = "checkpoint/config.json"
PREDICTIONS_DIR = "predictions"
PLOTS_DIR = "plots"
RUN_CONFIG = "config.json"
ENSEMBLE_SPEC = "ensemble.json"
SUBMISSION_DIR = "submission"
RECIPE_DIR = "recipe"
SWEEP_SUMMARY = "sweep_summary.csv"
SEARCH_TRIALS = "search_trials.csv"


def predictions_path(split: str, fmt: str = "csv") -> str:
    """Artifact path of a split's predictions table, e.g. `predictions/Development.csv`."""
    return f"{PREDICTIONS_DIR}/{split}.{fmt}"


def encoder_tag(name: str) -> str:
    """Tag key holding an encoder's fingerprint, e.g. `sertool.encoder.wavlm`."""
    return ENCODER_TAG_PREFIX + name
