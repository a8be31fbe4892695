"""`sertool transcribe`: Whisper ASR for every clip the corpus gave no transcript.

Corpus transcripts are never touched (only clips without a transcript are selected and filled).
Each batch is committed on its own, so an interrupted run loses at most one batch and a rerun picks up
the clips still without a transcript; a rerun with nothing left does nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..store.catalog import Catalog
from ..store.clips import clips_without_transcript, corpus_transcripts, set_transcripts
from ..store.layout import StoreLayout

if TYPE_CHECKING:
    from rich.console import Console

ASR_SOURCE = "asr"


@dataclass(frozen=True)
class TranscribeReport:
    """What one `transcribe` run did."""

    pending: int
    """Clips without a transcript when the run started."""
    transcribed: int
    seconds: float
    audio_seconds: float


def transcribe_missing(
    layout: StoreLayout,
    *,
    preset: str = "paper",
    model_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    console: "Console | None" = None,
) -> TranscribeReport:
    """Transcribe clips with no transcript, in batches, committing each batch (source `asr`)."""
    from ..audio import SAMPLE_RATE, load_audio
    from ..encoders.presets import BUILT, check_preset
    from ..progress import progress_bar

    from ..model.device import check_device

    check_preset(preset)  # before anything else, even when there is nothing to do
    check_device(device)
    t0 = time.perf_counter()
    with Catalog(layout.catalog, hold=False) as cat:  # the writer lock throughout; readers get the file when they ask
        todo = clips_without_transcript(cat)
        if not todo:
            return TranscribeReport(0, 0, time.perf_counter() - t0, 0.0)
        from ..encoders.asr import load_asr

        asr = load_asr(preset, model_dir=model_dir, device=device, models_dir=layout.models,
                       texts=corpus_transcripts(cat, ASR_SOURCE) if preset in BUILT else None)
        done, audio_s = 0, 0.0
        with progress_bar(console, unit="clips") as progress:
            task = progress.add_task("transcribing", total=len(todo))
            for i in range(0, len(todo), max(1, batch_size)):
                batch = todo[i : i + batch_size]
                wavs = [load_audio(c.path) for c in batch]
                texts = asr.transcribe(wavs)
                set_transcripts(cat, [(c.clip_id, text) for c, text in zip(batch, texts)], ASR_SOURCE)
                done += len(batch)
                audio_s += sum(len(w) for w in wavs) / SAMPLE_RATE
                progress.advance(task, len(batch))
    return TranscribeReport(len(todo), done, time.perf_counter() - t0, audio_s)
