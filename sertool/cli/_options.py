"""Options shared by several commands, declared once (the `hf` CLI's `_cli_utils` style): `Annotated`
aliases and one enum per choice. Commands use these and never redeclare them.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..audio import DEFAULT_MAX_SECONDS


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Preset(str, Enum):
    paper = "paper"
    paper_random = "paper-random"
    tiny = "tiny"


class WhisperWindow(str, Enum):
    padded = "padded"
    trimmed = "trimmed"


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


class Stage(str, Enum):
    pretrain = "pretrain"
    task1 = "task1"
    task2 = "task2"


class Pooling(str, Enum):
    asp = "asp"
    mean = "mean"
    meanstd = "meanstd"


class ClipUse(str, Enum):
    regression = "regression"
    exclude = "exclude"


class TargetKind(str, Enum):
    hard = "hard"
    soft = "soft"


class SoftLoss(str, Enum):
    ce = "ce"
    kl = "kl"


class OVotes(str, Enum):
    drop = "drop"
    uniform = "uniform"


class AttributeTargets(str, Enum):
    consensus = "consensus"
    votes = "votes"


class Batching(str, Enum):
    random = "random"
    bucketed = "bucketed"


class ReadOrder(str, Enum):
    random = "random"
    blocked = "blocked"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Select(str, Enum):
    f1 = "f1"
    ccc = "ccc"
    ccc_arousal = "ccc_arousal"
    ccc_valence = "ccc_valence"
    ccc_dominance = "ccc_dominance"


class Method(str, Enum):
    topk = "topk"
    greedy = "greedy"
    stack = "stack"


class Alias(str, Enum):
    """Registry aliases a registered ensemble version may get: a candidate, or what was submitted."""

    candidate = "candidate"
    submitted = "submitted"


class RunKind(str, Enum):
    train = "train"
    sweep = "sweep"
    ensemble = "ensemble"
    asr = "asr"


class TextChoice(str, Enum):
    """Which transcript text encoders read (`store.transcripts.TEXT_CHOICES`)."""

    preferred = "preferred"
    corpus = "corpus"
    asr = "asr"


class Launcher(str, Enum):
    pool = "pool"
    local = "local"
    slurm = "slurm"


class SearchKind(str, Enum):
    optuna = "optuna"


class Objective(str, Enum):
    ccc_mean = "ccc_mean"
    f1_macro = "f1_macro"
    ccc_arousal = "ccc_arousal"
    ccc_valence = "ccc_valence"
    ccc_dominance = "ccc_dominance"


class SplitBy(str, Enum):
    speaker = "speaker"
    clip = "clip"


ExperimentOpt = Annotated[
    Optional[str],
    typer.Option("--experiment", "-e", envvar="MLFLOW_EXPERIMENT_NAME",
                 help="MLflow experiment. (default: one per store)", show_default=False),
]
DeviceOpt = Annotated[Device, typer.Option("--device", help="cpu or cuda (bf16/fp16 autocast on cuda).")]
PresetOpt = Annotated[
    Preset, typer.Option("--preset", help="Model weights: paper (the real checkpoints), paper-random (the paper "
                         "architectures at full size, random weights, offline: checks of the paper-size path) or "
                         "tiny (small, offline, random weights: tests and the demo).")
]
WhisperWindowOpt = Annotated[
    WhisperWindow, typer.Option("--whisper-window", help="padded: every clip in Whisper's 30 s window (the paper's, "
                                "whose figures come from it); trimmed: on the clip's own length (a 5 s clip ~1/6 "
                                "of the compute; other frames, own fingerprint).")
]
ModelDirOpt = Annotated[
    Optional[Path],
    typer.Option("--model-dir", help="Load the paper checkpoints from DIR/<model> instead of the Hugging Face cache.",
                 show_default=False),
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
MaxSecondsOpt = Annotated[
    float,
    typer.Option("--max-seconds", help="Longest audio taken; a longer clip is bad input (named; embed --skip-bad "
                 "skips it, predict skips the file). Long audio within it is embedded in windows."),
]
MAX_SECONDS = DEFAULT_MAX_SECONDS


def names(value: str | None) -> tuple[str, ...]:
    """A comma-separated option (`whisper,wavlm`) as a tuple of names."""
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())
