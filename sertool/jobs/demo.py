"""`sertool demo`: the whole workflow, end to end, on a fresh synthetic corpus with the tiny preset.

Why it exists: one command that shows a new user (and CI) every stage working together on real data
the tool makes itself, offline, in a few minutes on a laptop CPU. It calls the same library
functions the commands call (no subprocesses), in the order a user would type them:

    1. corpus      `sertool ingest synthetic`: write the corpus, then ingest it. The synthetic corpus
                   ships transcripts for every clip, Test3 included; the demo deletes the Test3
                   transcript files before ingesting, as the challenge release has none, so that
    2. transcribe  `sertool transcribe` has work: Whisper ASR (tiny) fills those clips' transcripts
    3. embed       `sertool embed --preset tiny --augment noise`: the three tiny encoders, clean + noise
    4. pretrain    `sertool train --alpha 0.5 --beta 0.5`: multi-task pre-training
    5. task1       `sertool train --stage task1 --init-from PRE` (class-weighted and plain CE)
    6. task2       `sertool train --stage task2 --init-from PRE` (MSE and Gaussian-penalty sigmas)
    7. ensembles   `sertool ensemble --task 2 --top K` and `sertool ensemble --task 1 --top K`
    8. predict     `sertool predict ENSEMBLE new.wav` on a clip rendered outside the corpus
    then a summary (dev macro-F1 and mean CCC of the best single run and of each ensemble) and the
    `sertool ui` command line that opens the runs in MLflow's UI.

Fresh, not resumed: every run starts from an empty demo directory (a directory holding the demo's
marker file is wiped; any other non-empty directory is refused), so the printed figures always
describe one complete, seeded run and never a mix of two. Everything lives under the directory:
`corpus/`, `store/` (the feature store), `mlflow.db` + `mlartifacts/` (the SQLite tracking store)
and `new_audio/` (the clip given to `predict`). Given a tracking URI (a team server, whose runs cannot
be wiped; the CLI reads `--tracking-uri` / `MLFLOW_TRACKING_URI`), the demo logs there instead, in an experiment of its own named
after the start time, so its ensembles never pick up an earlier demo's runs.

The figures are what a tiny model learns from ~350 synthetic training clips in a minute of CPU: real,
seeded and printed as measured, far from the paper's (see DESIGN.md §1).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOption, SertoolError
from ..store.layout import StoreLayout

if TYPE_CHECKING:
    from rich.console import Console

    from ..corpus.ingest import IngestReport
    from .embed import EmbedReport
    from ..ensemble.build import EnsembleResult
    from .predict import PredictReport
    from ..train.loop import TrainResult

MARKER = ".sertool-demo"
"""Marks a directory as the demo's own, so a re-run may wipe it."""
TEST3_PREFIX = "MSP-PODCAST_test3_"


@dataclass(frozen=True)
class DemoProfile:
    """How big the demo is: corpus size, model dims and schedule, and which runs it trains."""

    clips: int
    """Synthetic clips (15% Test3, the rest Train/Development)."""
    epochs: int
    """Pre-training epochs."""
    finetune_epochs: int
    """Epochs of each Task 1 / Task 2 fine-tune."""
    proj_dim: int = 32
    lstm_hidden: int = 32
    batch_size: int = 16
    lr: float = 3e-3
    """Peak lr of pre-training; tiny models need far more than the paper's 2e-5 to move in a few epochs."""
    finetune_lr: float = 1e-3
    samples_per_epoch: int = 2000
    """Capped at the training split's size by the trainer."""
    task1_class_weights: tuple[bool, ...] = (True, False)
    """One Task 1 fine-tune per entry: class-weighted CE (True) or plain CE (False)."""
    task2_sigmas: tuple[float | None, ...] = (None, 3.0, 5.0, 7.0)
    """One Task 2 fine-tune per entry: plain MSE (None) or the Gaussian-penalty MSE with this sigma."""
    pooled_norm: bool = True
    """Standardise pooled encoder statistics across clips: the tiny preset's random-weight encoders
    barely learn without it (see `TrainConfig.pooled_norm`)."""
    augment: str = "noise"
    top: int = 3
    """K of both ensembles."""
    seed: int = 0


PROFILES: dict[str, DemoProfile] = {
    # ~2 minutes on 2 quiet CPU cores, several more on a busy machine (README "The demo": measurements).
    "full": DemoProfile(clips=600, epochs=30, finetune_epochs=8),
    # Small enough for the test suite: every stage, one run of each kind that an ensemble needs.
    "quick": DemoProfile(clips=40, epochs=2, finetune_epochs=1, task1_class_weights=(True,),
                         task2_sigmas=(None, 5.0), top=2, samples_per_epoch=64),
}


@dataclass(frozen=True)
class DemoConfig:
    """What `sertool demo` was asked for: a directory, a profile, and overrides of its size."""

    directory: Path = Path("demo")
    clips: int | None = None
    epochs: int | None = None
    """Overrides pre-training epochs (fine-tunes keep the profile's ratio, at least 1)."""
    quick: bool = False
    tracking_uri: str | None = None
    """Log to this tracking store instead of the demo directory's own SQLite store."""

    def profile(self) -> DemoProfile:
        base = PROFILES["quick" if self.quick else "full"]
        p = base
        if self.clips is not None:
            from ..corpus.synthetic import MIN_CLIPS

            if self.clips < MIN_CLIPS:
                raise InvalidOption("clips", f"must be at least {MIN_CLIPS}, got {self.clips}")
            p = replace(p, clips=self.clips)
        if self.epochs is not None:
            if self.epochs < 1:
                raise InvalidOption("epochs", f"must be at least 1, got {self.epochs}")
            ratio = base.finetune_epochs / base.epochs
            p = replace(p, epochs=self.epochs, finetune_epochs=max(1, round(self.epochs * ratio)))
        return p


@dataclass
class SummaryRow:
    """One line of the demo's summary: a run and its dev figures (NaN where it has none)."""

    label: str
    run_name: str
    run_id: str | None
    f1_macro: float
    ccc_mean: float


@dataclass
class DemoResult:
    """Everything the demo did, for the CLI to print and tests to check."""

    directory: Path
    layout: StoreLayout
    tracking_uri: str
    experiment: str
    profile: DemoProfile
    ingest: "IngestReport | None" = None
    transcribed: int = 0
    embed: "EmbedReport | None" = None
    runs: dict[str, "TrainResult"] = field(default_factory=dict)
    """Run name -> training result, in training order."""
    ensembles: dict[int, "EnsembleResult"] = field(default_factory=dict)
    """Task -> ensemble."""
    predict_audio: Path | None = None
    prediction: "PredictReport | None" = None
    summary: list[SummaryRow] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    """Stage -> seconds."""

    @property
    def total_seconds(self) -> float:
        return sum(self.timings.values())

    def ui_command(self) -> str:
        """The command line that opens these runs in the MLflow UI."""
        from ..tracking.uri import is_remote

        if is_remote(self.tracking_uri):
            return f"open {self.tracking_uri} (experiment {self.experiment})"
        return f"MLFLOW_TRACKING_URI={self.tracking_uri} sertool ui"

    def runs_command(self) -> str:
        return f"sertool --store {self.layout.root} runs --experiment {self.experiment} --sort ccc"


# -- the stages ------------------------------------------------------------------------------------------

def prepare_directory(directory: Path) -> Path:
    """An empty demo directory: a previous demo's is wiped, anything else non-empty is refused."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise SertoolError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / MARKER).is_file():
            raise SertoolError(
                f"{directory}: directory is not empty and is not a sertool demo ({MARKER} missing); "
                "choose another with --dir"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by `sertool demo`; wiped by the next `sertool demo` run\n",
                                    encoding="utf-8")
    return directory.resolve()


def tracking_for(directory: Path, uri: str | None = None) -> tuple[str, str]:
    """(tracking URI, experiment): SQLite under the demo directory unless another store is given; on a
    server (or a shared database) an experiment of its own, named after the start time."""
    from ..tracking.uri import default_experiment_name, is_remote

    name = default_experiment_name(directory / "store")
    if not uri:
        return f"sqlite:///{directory / 'mlflow.db'}", name
    if is_remote(uri) or not uri.startswith("sqlite:"):
        name = f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    return uri, name


def make_corpus(layout: StoreLayout, directory: Path, profile: DemoProfile) -> "IngestReport":
    """Write the synthetic corpus, drop Test3's transcripts (left to ASR), ingest it."""
    from ..corpus.ingest import ingest_msp_podcast
    from ..corpus.synthetic import write_synthetic_corpus

    root = write_synthetic_corpus(directory / "corpus", n_clips=profile.clips, seed=profile.seed)
    for p in (root / "Transcripts").glob(f"{TEST3_PREFIX}*.txt"):
        p.unlink()
    return ingest_msp_podcast(layout.catalog, root, progress=False)


def render_new_audio(path: Path, seed: int = 12345) -> Path:
    """A speech-like clip made outside the corpus (a new voice, a high-arousal moment) for `predict`."""
    import numpy as np
    import soundfile as sf

    from ..audio import SAMPLE_RATE
    from ..corpus.synthetic_speech import random_voice, render_speech

    rng = np.random.default_rng(seed)
    audio = render_speech(rng, 4.0, 5.8, 5.2, random_voice(rng, "Female"))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return path


def _train_configs(profile: DemoProfile, experiment: str) -> dict[str, Any]:
    return dict(
        proj_dim=profile.proj_dim, lstm_hidden=profile.lstm_hidden, batch_size=profile.batch_size,
        samples_per_epoch=profile.samples_per_epoch, seed=profile.seed, experiment=experiment,
        num_workers=0, device="cpu", min_lr=1e-5, pooled_norm=profile.pooled_norm,
    )


def summarize(result: DemoResult) -> list[SummaryRow]:
    """The best single run by dev macro-F1 and by dev mean CCC, then each ensemble."""
    rows: list[SummaryRow] = []
    runs = list(result.runs.items())
    for label, key in (("best run by macro-F1", "f1_macro"), ("best run by mean CCC", "ccc_mean")):
        scored = [(name, r) for name, r in runs if not math.isnan(r.best.get(key, math.nan))]
        if not scored:
            continue
        name, r = max(scored, key=lambda nr: nr[1].best[key])
        rows.append(SummaryRow(label, name, r.run_id, r.best.get("f1_macro", math.nan), r.best.get("ccc_mean", math.nan)))
    for task, ens in sorted(result.ensembles.items(), reverse=True):
        rows.append(SummaryRow(
            f"task {task} ensemble, top {ens.spec.top}", ens.name, ens.run_id,
            ens.dev_metrics.get("f1_macro", math.nan), ens.dev_metrics.get("ccc_mean", math.nan),
        ))
    return rows


# -- the whole demo ----------------------------------------------------------------------------------------

@contextmanager
def _stage(result: DemoResult, console: "Console | None", name: str, title: str) -> Iterator[None]:
    n = len(STAGES)
    i = STAGES.index(name) + 1
    if console is not None:
        console.rule(f"[bold][{i}/{n}] {title}", align="left")
    t0 = time.perf_counter()
    yield
    result.timings[name] = time.perf_counter() - t0
    if console is not None:
        console.print(f"[dim]{name}: {result.timings[name]:.1f} s[/]", highlight=False)


STAGES = ("corpus", "transcribe", "embed", "pretrain", "task1", "task2", "ensembles", "predict")


def run_demo(config: DemoConfig = DemoConfig(), *, console: "Console | None" = None,
             on_stage: Callable[[str, DemoResult], None] | None = None) -> DemoResult:
    """Run every stage (module docstring) under `config.directory`; progress on `console` (stderr).

    `on_stage(name, result)` is called after each stage (the CLI prints as it goes).
    """
    from .embed import EmbedConfig, embed_store
    from .transcribe import transcribe_missing
    from ..ensemble.build import EnsembleConfig, build_ensemble
    from .predict import PredictConfig, predict_files
    from ..tracking.tracker import Tracker
    from ..train.config import TrainConfig
    from ..train.runs import train

    profile = config.profile()
    directory = prepare_directory(config.directory)
    layout = StoreLayout.at(directory / "store")
    uri, experiment = tracking_for(directory, config.tracking_uri)
    result = DemoResult(directory, layout, uri, experiment, profile)
    tracker = Tracker(uri, experiment=experiment, store_root=layout.root)

    def done(name: str) -> None:
        if on_stage is not None:
            on_stage(name, result)

    with _stage(result, console, "corpus", f"synthetic corpus ({profile.clips} clips) + ingest"):
        result.ingest = make_corpus(layout, directory, profile)
    done("corpus")

    with _stage(result, console, "transcribe", "transcribe the Test3 clips (tiny Whisper ASR)"):
        result.transcribed = transcribe_missing(layout, preset="tiny", console=console).transcribed
    done("transcribe")

    with _stage(result, console, "embed", f"embed: whisper, wavlm, roberta (tiny) + {profile.augment}"):
        result.embed = embed_store(layout, EmbedConfig(preset="tiny", augment=(profile.augment,), seed=profile.seed),
                                   console=console)
    done("embed")

    common = _train_configs(profile, experiment)
    with _stage(result, console, "pretrain", f"multi-task pre-training ({profile.epochs} epochs)"):
        pre = train(TrainConfig(stage="pretrain", alpha=0.5, beta=0.5, epochs=profile.epochs, lr=profile.lr,
                                warmup_epochs=min(1.0, profile.epochs - 1.0), run_name="demo-pretrain", **common),
                    layout, tracker, console=console)
        result.runs["demo-pretrain"] = pre
    done("pretrain")

    fine = dict(common, epochs=profile.finetune_epochs, lr=profile.finetune_lr,
                warmup_epochs=min(1.0, profile.finetune_epochs - 1.0), init_from=pre.run_id)
    with _stage(result, console, "task1", f"Task 1 fine-tunes from the pre-trained run ({profile.finetune_epochs} epochs)"):
        for weighted in profile.task1_class_weights:
            name = f"demo-task1-{'weighted-ce' if weighted else 'ce'}"
            result.runs[name] = train(TrainConfig(stage="task1", class_weights=weighted, run_name=name, **fine),
                                      layout, tracker, console=console)
    done("task1")

    with _stage(result, console, "task2", f"Task 2 fine-tunes: MSE and Gaussian-penalty sigmas ({profile.finetune_epochs} epochs)"):
        for sigma in profile.task2_sigmas:
            name = f"demo-task2-{'mse' if sigma is None else f'gauss{sigma:g}'}"
            result.runs[name] = train(TrainConfig(stage="task2", gaussian_sigma=sigma, run_name=name, **fine),
                                      layout, tracker, console=console)
    done("task2")

    with _stage(result, console, "ensembles", f"ensembles: Task 2 top-{profile.top} per attribute, Task 1 top-{profile.top}"):
        for task in (2, 1):
            cfg = EnsembleConfig(task=task, top=profile.top, experiment=experiment, name=f"demo-ensemble-task{task}")
            result.ensembles[task] = build_ensemble(layout, cfg, tracker, console=console)
    done("ensembles")

    with _stage(result, console, "predict", "predict a new clip with the Task 2 ensemble"):
        result.predict_audio = render_new_audio(directory / "new_audio" / "new_clip.wav")
        result.prediction = predict_files(layout, result.ensembles[2].run_id, [result.predict_audio],
                                          PredictConfig(experiment=experiment), tracker, console=console)
    done("predict")

    result.summary = summarize(result)
    return result
