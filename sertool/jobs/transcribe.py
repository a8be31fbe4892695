"""`sertool transcribe`: Whisper ASR for the catalog's clips, with the model that wrote each transcript.

Which clips: by default those with no transcript at all (what RoBERTa cannot read without); `every`
(`--all`) also those with a corpus transcript, whose ASR text is kept beside it (`store.transcripts`),
never replacing it, so a team can train on one and test on the other; `redo` (`--redo`) also those whose
ASR transcript another configuration (model or decoding) wrote, and replaces it.

The catalog's ASR transcripts come from one configuration at a time: a run with another one refuses to
start unless told `--redo`, naming the model that wrote the existing ones (a mix would make "the ASR
text" mean two things). `--redo` with nothing written by another configuration refuses too: it would
silently do nothing. Both refusals come before anything is read or written.

Each batch is committed on its own, so an interrupted run loses at most one batch and a rerun picks up
the clips still to do; a rerun with nothing left does nothing. `asr_quality` (`--wer`) measures the ASR
transcripts against the corpus's, per split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, StoreMismatch
from ..store.catalog import Catalog
from ..store.clips import corpus_transcripts, sources_of
from ..store.layout import StoreLayout
from ..store.transcripts import ASR, asr_writers, clips_for_asr, transcript_pairs, write_asr

if TYPE_CHECKING:
    from rich.console import Console

    from ..store.records import TranscriberRecord
    from ..tracking.tracker import Tracker


@dataclass(frozen=True)
class TranscribeReport:
    """What one `transcribe` run did."""

    pending: int
    """Clips to transcribe when the run started."""
    transcribed: int
    seconds: float
    audio_seconds: float
    model: str = ""
    """The ASR configuration that wrote them (`TranscriberRecord.describe`); empty when nothing was to do."""
    replaced: int = 0
    """ASR transcripts of another configuration this run replaced (`--redo`)."""


def _check_writers(cat: Catalog, record: "TranscriberRecord", redo: bool) -> int:
    """Refuse to mix two ASR configurations (unless `redo`), and a `redo` with nothing to redo; returns
    how many clips' ASR transcripts `redo` replaces."""
    others = [w for w in asr_writers(cat) if w.fingerprint != record.fingerprint]
    n = sum(w.clips for w in others)
    if others and not redo:
        raise StoreMismatch(
            f"the ASR transcripts of {n} clip(s) were written by {others[0].describe()}"
            f"{f' and {len(others) - 1} other configuration(s)' if len(others) > 1 else ''}; this run's model is "
            f"{record.describe()}: pass --redo to replace them with this model's, or transcribe with that model")
    if redo and not others:
        raise NotFound(f"nothing to redo: every ASR transcript in the catalog was written by {record.describe()} "
                       "(drop --redo; --all adds ASR transcripts beside the corpus's)")
    return n


def transcribe_missing(
    layout: StoreLayout,
    *,
    preset: str = "paper",
    model_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    every: bool = False,
    redo: bool = False,
    console: "Console | None" = None,
) -> TranscribeReport:
    """Transcribe the clips the options select (module docstring), in batches, committing each batch
    with the model's provenance."""
    from ..audio import SAMPLE_RATE, load_audio
    from ..encoders.presets import BUILT, check_preset
    from ..model.device import check_device
    from ..progress import progress_bar

    check_preset(preset)  # before anything else, even when there is nothing to do
    check_device(device)
    t0 = time.perf_counter()
    with Catalog(layout.catalog, hold=False) as cat:  # the writer lock throughout; readers get the file when they ask
        if redo and not asr_writers(cat):
            raise NotFound("nothing to redo: the catalog has no ASR transcripts (run `sertool transcribe`, or "
                           "`sertool transcribe --all` for every clip)")
        if not asr_writers(cat) and not clips_for_asr(cat, every=every):
            return TranscribeReport(0, 0, time.perf_counter() - t0, 0.0)
        from ..encoders.asr import asr_source, load_asr, transcriber_record

        texts = corpus_transcripts(cat, ASR) if preset in BUILT else None
        source = asr_source(preset, model_dir=model_dir, models_dir=layout.models, texts=texts)
        record = transcriber_record(source)
        replaced = _check_writers(cat, record, redo)
        todo = sources_of(cat, clips_for_asr(cat, every=every, redo=record.fingerprint if redo else None))
        if not todo:
            return TranscribeReport(0, 0, time.perf_counter() - t0, 0.0, record.describe())
        asr = load_asr(source, device=device)
        done, audio_s = 0, 0.0
        with progress_bar(console, unit="clips") as progress:
            task = progress.add_task("transcribing", total=len(todo))
            for i in range(0, len(todo), max(1, batch_size)):
                batch = todo[i : i + batch_size]
                wavs = [load_audio(c.path) for c in batch]
                out = asr.transcribe(wavs)
                write_asr(cat, [(c.clip_id, text) for c, text in zip(batch, out)], record)
                done += len(batch)
                audio_s += sum(len(w) for w in wavs) / SAMPLE_RATE
                progress.advance(task, len(batch))
    return TranscribeReport(len(todo), done, time.perf_counter() - t0, audio_s, record.describe(), replaced)


# -- ASR quality ---------------------------------------------------------------------------------------

@dataclass
class AsrQuality:
    """Word and character error rates of the catalog's ASR transcripts against its corpus transcripts."""

    splits: dict[str, dict[str, float]] = field(default_factory=dict)
    """Split (`all` for every clip with both) -> wer, cer, n_pairs."""
    models: list[str] = field(default_factory=list)
    """The ASR configurations measured (`AsrWriter.describe`)."""
    run_id: str | None = None
    """The MLflow run (kind `asr`) they were logged to."""


ALL_SPLITS = "all"


def asr_quality(layout: StoreLayout) -> AsrQuality:
    """WER and CER per split, over the clips that have both a corpus and an ASR transcript (`metrics.error_rates`).

    Clips without a corpus transcript (Test3) cannot be measured, and none with both means there is
    nothing to measure: `NotFound` naming what to run.
    """
    from ..metrics import error_rates

    with Catalog(layout.catalog, read_only=True) as cat:
        pairs = transcript_pairs(cat)
        writers = asr_writers(cat)
    if not pairs:
        how = ("run `sertool transcribe --all` (ASR for clips that have a corpus transcript too)" if writers else
               "run `sertool transcribe --all` first")
        raise NotFound(f"{layout.catalog}: no clip has both a corpus and an ASR transcript to compare: {how}")
    by_split: dict[str, list[tuple[str, str]]] = {}
    for _, split, ref, hyp in pairs:
        by_split.setdefault(split or "(none)", []).append((ref, hyp))
    out = AsrQuality(models=[w.describe() for w in writers])
    for split, items in sorted(by_split.items()):
        out.splits[split] = error_rates([r for r, _ in items], [h for _, h in items])
    out.splits[ALL_SPLITS] = error_rates([p[2] for p in pairs], [p[3] for p in pairs])
    return out


def log_asr_quality(tracker: "Tracker", quality: AsrQuality, *, experiment: str | None = None) -> str | None:
    """The figures as an MLflow run of kind `asr`: `wer_<split>`, `cer_<split>`, `pairs_<split>` metrics,
    the models as params, the normalisation written down (params and `asr_quality.json`)."""
    from ..metrics import ASR_NORMALISATION

    metrics: dict[str, Any] = {}
    for split, m in quality.splits.items():
        key = split.lower()
        metrics.update({f"wer_{key}": m["wer"], f"cer_{key}": m["cer"], f"pairs_{key}": m["n_pairs"]})
    with tracker.start("asr", experiment=experiment, run_name="asr-quality") as run:
        run.log_params({"asr_models": "; ".join(quality.models), "normalisation": "; ".join(ASR_NORMALISATION),
                        "reference": "corpus transcripts", "hypothesis": "asr transcripts"})
        run.log_metrics(metrics)
        run.log_dict({"splits": quality.splits, "models": quality.models,
                      "normalisation": list(ASR_NORMALISATION)}, "asr_quality.json")
        quality.run_id = run.run_id
    return quality.run_id
