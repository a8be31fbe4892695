"""`sertool predict`: a tracked run (or ensemble) on new audio files, outside any corpus.

    run / ensemble -> the training runs and the weight each has per target (ensembles expand, nested too)
    -> their checkpoints -> the encoders they were trained on, checked by fingerprint
    file -> 16 kHz mono -> windows -> transcript (Whisper ASR, or --transcript) -> frames -> every model
    -> class probabilities + arousal/valence/dominance, combined as the ensemble does (averages, or a
       stacked ensemble's meta-models)

Frames go through float16 before the model sees them, as they do in the store. A file longer than one
window gets a row per window and a row for the whole file (the windows' average, weighted by their
duration). A file that cannot be used is reported and skipped, as embed's bad input: unreadable, NaN
samples, shorter than 25 ms (`audio.MIN_SAMPLES`) or longer than `max_seconds` (checked on the header,
before decoding).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_TRANSCRIPT_CHARS,
    MIN_SAMPLES,
    MIN_SECONDS,
    SAMPLE_RATE,
    check_length,
    window_spans,
)
from ..errors import BadInput, InvalidOption, NotFound, SertoolError
from ..labels import ATTRIBUTES, CLASSES
from ..store.layout import StoreLayout
from .predict_models import Loaded, load_models

if TYPE_CHECKING:
    from rich.console import Console

    from ..tracking.records import RunInfo
    from ..tracking.tracker import Tracker

TAIL_MERGE = 0.25
"""A last window shorter than this share of a window joins the previous one (no 0.2 s windows)."""


@dataclass(frozen=True)
class PredictConfig:
    """How to predict: encoder weights, windowing, transcript."""

    preset: str | None = None
    """Encoder weights (tiny / paper); default: what the store's catalog recorded for each encoder."""
    model_dir: Path | None = None
    """Local directory of the paper checkpoints."""
    window_seconds: float = 30.0
    transcript: str | None = None
    """Use this transcript for every file and window instead of running ASR."""
    device: str = "cpu"
    experiment: str | None = None
    max_seconds: float = DEFAULT_MAX_SECONDS
    """Longest file to predict; a longer one is reported and skipped (`audio.DEFAULT_MAX_SECONDS`)."""
    whisper_window: str | None = None
    """Whisper's window (`padded` / `trimmed`); None: the one the run's frames were made with (found by
    fingerprint among the encoder's `option_choices`)."""

    def __post_init__(self) -> None:
        from ..model.device import check_device

        check_device(self.device)
        if self.whisper_window is not None:
            from ..encoders.whisper import check_window
            check_window(self.whisper_window)
        if not self.window_seconds >= MIN_SECONDS:
            raise InvalidOption("window_seconds", f"must be at least {MIN_SECONDS} (the shortest clip), "
                                                  f"got {self.window_seconds}")
        if not self.max_seconds >= MIN_SECONDS:
            raise InvalidOption("max_seconds", f"must be at least {MIN_SECONDS} (the shortest clip), "
                                               f"got {self.max_seconds}")
        if self.transcript is not None and len(self.transcript) > DEFAULT_MAX_TRANSCRIPT_CHARS:
            raise InvalidOption("transcript", f"{len(self.transcript):,} characters, over the "
                                              f"{DEFAULT_MAX_TRANSCRIPT_CHARS:,} a text encoder takes")


@dataclass
class Prediction:
    """One row of output: a window of a file, or the whole file (`window` None)."""

    file: str
    window: int | None
    """1-based window number; None for the whole file."""
    start_s: float
    end_s: float
    transcript: str | None
    probs: np.ndarray  # (8,)
    attrs: np.ndarray  # (3,)

    @property
    def pred_class(self) -> str:
        return CLASSES[int(np.argmax(self.probs))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file, "window": self.window if self.window is not None else "all",
            "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "transcript": self.transcript,
            "pred_class": self.pred_class, "probabilities": {c: float(p) for c, p in zip(CLASSES, self.probs)},
            **{a: float(v) for a, v in zip(ATTRIBUTES, self.attrs)},
        }


@dataclass
class PredictReport:
    run: "RunInfo"
    members: dict[str, dict[str, float]]
    """Target -> training run id -> weight (`Plan.weights`: a stacked target's runs feed its meta-model)."""
    rows: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) of files that could not be used (unreadable, too short or too long)."""
    notes: list[str] = field(default_factory=list)


# -- which runs, combined how --------------------------------------------------------------------------

def load_spec(tracker: "Tracker", run: "RunInfo"):
    """An ensemble run's `EnsembleSpec` (from `ensemble.json`)."""
    from ..ensemble.spec import EnsembleSpec
    from ..tracking.names import ENSEMBLE_SPEC as SPEC_ARTIFACT

    with tempfile.TemporaryDirectory(prefix="sertool-spec-") as tmp:
        try:
            path = tracker.download_artifact(run.run_id, SPEC_ARTIFACT, tmp)
        except NotFound:
            raise NotFound(f"ensemble run {run.name} ({run.run_id[:8]}) has no {SPEC_ARTIFACT}: "
                           "it was not made by `sertool ensemble`") from None
        return EnsembleSpec.from_dict(json.loads(Path(path).read_text()))


@dataclass
class Plan:
    """How a run's predictions come from training runs' outputs: a training run is itself; an ensemble
    combines its members' plans as it did on the corpus (averages, and a stack's meta-models, which no
    weights can express: hence a tree rather than weights per run). Nested ensembles nest."""

    run: "RunInfo"
    spec: Any = None
    """The ensemble's `EnsembleSpec`; None for a training run."""
    members: dict[str, "Plan"] = field(default_factory=dict)

    def weights(self) -> dict[str, dict[str, float]]:
        """Target -> training run id -> its share of that output (for the report and to know which
        checkpoints to load). A stacked target lists the runs that feed its meta-model, equally."""
        from ..ensemble.spec import ALL_TARGETS, BASELINE

        if self.spec is None:
            return {t: {self.run.run_id: 1.0} for t in ALL_TARGETS}
        sub = {m: p.weights() for m, p in self.members.items()}
        out: dict[str, dict[str, float]] = {t: {} for t in ALL_TARGETS}
        for t in ALL_TARGETS:
            w = {m: x for m, x in self.spec.weights(t).items() if m != BASELINE}
            total = sum(w.values())
            for m, x in w.items():
                for r, y in sub[m][t].items():
                    out[t][r] = out[t].get(r, 0.0) + x / total * y
        return out

    def outputs(self, probs: dict[str, np.ndarray], attrs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """This run's (N, 8) probabilities and (N, 3) attributes from every training run's arrays."""
        from ..ensemble.stack import combine

        if self.spec is None:
            return probs[self.run.run_id], attrs[self.run.run_id]
        outs = {m: p.outputs(probs, attrs) for m, p in self.members.items()}
        return combine(self.spec, {m: o[0] for m, o in outs.items()}, {m: o[1] for m, o in outs.items()})


def load_plan(tracker: "Tracker", run: "RunInfo", notes: list[str], _depth: int = 0) -> Plan:
    """The plan of a run or ensemble (specs and meta-models read and checked before any checkpoint).

    The external baseline only exists for corpus clips, so on new audio it is left out of averages (a
    stacked ensemble never has one).
    """
    from ..ensemble.stack import meta_models

    if run.kind != "ensemble":
        return Plan(run)
    if _depth > 8:
        raise SertoolError(f"ensemble {run.name} ({run.run_id[:8]}) nests too deeply")
    spec = load_spec(tracker, run)
    meta_models(spec)
    if spec.baseline:
        notes.append(f"{run.name}: its baseline ({spec.baseline}) has no predictions for new audio; "
                     "averaged without it")
    return Plan(run, spec, {m: load_plan(tracker, tracker.get_run(m), notes, _depth + 1) for m in spec.run_ids()})


# -- one file --------------------------------------------------------------------------------------------

def predict_windows(loaded: Loaded, plan: Plan, pieces: list[np.ndarray],
                    texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(W, 8) probabilities and (W, 3) attributes of the windows, combined over the runs by the plan."""
    import torch

    from ..store.reader import pad_batch

    inputs = {}
    for name, enc in loaded.encoders.items():
        frames = enc.embed(list(texts) if enc.modality == "text" else pieces)
        # float16 values, as the store hands frames to training (the model upcasts exactly)
        inputs[name] = pad_batch(frames, enc.record.dim, torch.float16)
    probs, attrs = {}, {}
    with torch.inference_mode():
        for rid, model in loaded.models.items():
            device = next(model.parameters()).device
            out = model({n: (x.to(device), l.to(device)) for n, (x, l) in inputs.items() if n in model.config.encoders})
            probs[rid] = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
            attrs[rid] = out.attributes.float().cpu().numpy()
    return plan.outputs(probs, attrs)


def predict_file(loaded: Loaded, plan: Plan, path: Path, cfg: PredictConfig) -> list[Prediction]:
    """Rows for one file: one per window and, for several windows, the whole file. `BadInput` for a file
    that cannot be used (the caller reports and skips it)."""
    from ..audio import load_audio, read_header, resampled_length

    frames, rate = read_header(path)
    check_length(path, resampled_length(frames, rate), cfg.max_seconds)  # before decoding a file too long
    wav = load_audio(path)
    check_length(path, len(wav), cfg.max_seconds)
    window = int(round(cfg.window_seconds * SAMPLE_RATE))
    # no window shorter than a clip may be: a tail under MIN_SAMPLES joins the window before it
    spans = window_spans(len(wav), window, tail_merge=max(TAIL_MERGE, MIN_SAMPLES / window))
    pieces = [wav[s:e] for s, e in spans]
    if cfg.transcript is not None:
        texts = [cfg.transcript] * len(pieces)
    elif loaded.asr is not None:
        texts = loaded.asr.transcribe(pieces)
    else:
        texts = [None] * len(pieces)
    probs, attrs = predict_windows(loaded, plan, pieces, texts)
    name = str(path)
    if len(spans) == 1:
        return [Prediction(name, None, 0.0, len(wav) / SAMPLE_RATE, texts[0], probs[0], attrs[0])]
    rows = [Prediction(name, i + 1, s / SAMPLE_RATE, e / SAMPLE_RATE, t, p, a)
            for i, ((s, e), t, p, a) in enumerate(zip(spans, texts, probs, attrs))]
    dur = np.array([e - s for s, e in spans], dtype=np.float64)
    w = dur / dur.sum()
    joined = " ".join(t for t in texts if t) if any(texts) else (None if texts[0] is None else "")
    rows.append(Prediction(name, None, 0.0, len(wav) / SAMPLE_RATE, joined, w @ probs, w @ attrs))
    return rows


# -- the command -----------------------------------------------------------------------------------------

def predict_files(
    layout: StoreLayout,
    ref: str,
    files: Sequence[str | Path],
    cfg: PredictConfig,
    tracker: "Tracker",
    *,
    console: "Console | None" = None,
) -> PredictReport:
    """Predict every readable file with run or ensemble `ref` (id, id prefix or name)."""
    from ..progress import progress_bar

    if not files:
        raise SertoolError("no audio files given")
    run = tracker.resolve_run(ref, cfg.experiment)
    report = PredictReport(run, {})
    plan = load_plan(tracker, run, report.notes)
    report.members = plan.weights()
    run_ids = list(dict.fromkeys(r for w in report.members.values() for r in w))
    loaded = load_models(tracker, layout, run_ids, cfg, need_asr=cfg.transcript is None)
    if loaded.asr is not None:  # the text the models read at prediction time: which ASR wrote it
        report.notes.append(f"transcripts by Whisper ASR: {loaded.asr.record.describe()}")
    with progress_bar(console, transient=True) as progress:
        task = progress.add_task("predicting", total=len(files))
        for f in files:
            try:
                report.rows += predict_file(loaded, plan, Path(f), cfg)
            except BadInput as e:
                report.skipped.append((str(f), str(e)))
            progress.advance(task)
    return report
