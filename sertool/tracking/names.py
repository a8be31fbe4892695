"""Names other code and users rely on: tags, metrics and the artifact layout of a run.

These strings are an interface. Ensembles select runs by the `best_dev_*` metrics and load the
`predictions/<split>.csv` tables; users filter runs with `tags."sertool.kind" = 'train'`.
Change them only together with every reader.

Artifact layout of a training run::

    checkpoint/model.safetensors   best checkpoint's weights
    checkpoint/config.json         everything needed to rebuild the model (dims, encoders, classes)
    predictions/<split>.csv        one row per clip: clip_id, p_<class>..., pred_class,
                                   arousal, valence, dominance  (splits: Development, Test1, ...)
    plots/<name>.png               confusion matrix, attribute scatter plots
    config.json                    the full resolved run config (also flattened into params)
"""

from __future__ import annotations

from typing import Literal

RunKind = Literal["train", "sweep", "ensemble"]
KINDS: tuple[str, ...] = ("train", "sweep", "ensemble")

# Tags.
KIND_TAG = "sertool.kind"
STAGE_TAG = "sertool.stage"
INIT_FROM_TAG = "sertool.init_from"
STORE_TAG = "sertool.store"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
ENCODER_TAG_PREFIX = "sertool.encoder."  # + encoder name -> fingerprint
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

# Per-epoch metrics (step = epoch) and the selected checkpoint's figures.
ATTRIBUTES: tuple[str, ...] = ("arousal", "valence", "dominance")
DEV_F1 = "dev_f1_macro"
DEV_CCC = {a: f"dev_ccc_{a}" for a in ATTRIBUTES} | {"mean": "dev_ccc_mean"}
BEST_F1 = "best_dev_f1_macro"
BEST_CCC = {a: f"best_dev_ccc_{a}" for a in ATTRIBUTES} | {"mean": "best_dev_ccc_mean"}
BEST_METRICS: tuple[str, ...] = (BEST_F1, *BEST_CCC.values())

# Artifact layout.
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_WEIGHTS = "checkpoint/model.safetensors"
CHECKPOINT_CONFIG = "checkpoint/config.json"
PREDICTIONS_DIR = "predictions"
PLOTS_DIR = "plots"
RUN_CONFIG = "config.json"


def predictions_path(split: str, fmt: str = "csv") -> str:
    """Artifact path of a split's predictions table, e.g. `predictions/Development.csv`."""
    return f"{PREDICTIONS_DIR}/{split}.{fmt}"


def encoder_tag(name: str) -> str:
    """Tag key holding an encoder's fingerprint, e.g. `sertool.encoder.wavlm`."""
    return ENCODER_TAG_PREFIX + name


# `sertool runs --sort` accepts these short names besides full metric names.
SORT_ALIASES: dict[str, str] = {
    "f1": BEST_F1,
    "f1_macro": BEST_F1,
    "ccc": BEST_CCC["mean"],
    "ccc_mean": BEST_CCC["mean"],
    **{a: BEST_CCC[a] for a in ATTRIBUTES},
    **{f"ccc_{a}": BEST_CCC[a] for a in ATTRIBUTES},
}


def metric_for_sort(name: str) -> str:
    """Full metric name for a `--sort` value: an alias (`ccc_valence`) or a metric name as is."""
    return SORT_ALIASES.get(name, name)
