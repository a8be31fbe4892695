"""`sertool transcribe`: Whisper ASR for every clip the corpus gave no transcript.

Corpus transcripts are never touched (only rows with `transcript IS NULL` are selected and updated).
Each batch is committed on its own, so an interrupted run loses at most one batch and a rerun picks up
the clips still without a transcript; a rerun with nothing left does nothing.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotFound
from ..store.catalog import Catalog
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


def corpus_transcripts(cat: Catalog) -> list[str]:
    """Transcripts that came with the corpus (what the tiny preset's tokenizers are trained on)."""
    rows = cat.execute(
        "SELECT transcript FROM clips WHERE transcript IS NOT NULL "
        "AND transcript_source IS DISTINCT FROM ? ORDER BY clip_id",
        [ASR_SOURCE],
    )
    return [r[0] for r in rows]


def audio_path(path: str, root: str | None) -> Path:
    """Catalog paths are relative to their corpus root (absolute ones are taken as they are)."""
    p = Path(path)
    return p if p.is_absolute() or not root else Path(root) / p


def transcribe_missing(
    layout: StoreLayout,
    *,
    preset: str = "tiny",
    model_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    console: "Console | None" = None,
) -> TranscribeReport:
    """Transcribe clips with no transcript, in batches, committing each batch (source `asr`)."""
    from .audio import SAMPLE_RATE, load_audio

    from .presets import PRESETS

    if preset not in PRESETS:  # before anything else, even when there is nothing to do
        raise NotFound(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    t0 = time.perf_counter()
    with Catalog(layout.catalog) as cat:
        # Sorted by duration: batch-mates need similar token budgets (see WhisperASR.max_new_tokens).
        rows = cat.execute(
            "SELECT c.clip_id, c.path, co.root FROM clips c LEFT JOIN corpora co USING (corpus) "
            "WHERE c.transcript IS NULL "
            "AND c.clip_id NOT IN (SELECT clip_id FROM skipped) "  # unreadable audio, recorded by ingest/embed
            "ORDER BY c.duration_s NULLS LAST, c.clip_id"
        )
        todo = [(clip_id, audio_path(path, root)) for clip_id, path, root in rows]
        if not todo:
            return TranscribeReport(0, 0, time.perf_counter() - t0, 0.0)
        from .asr import load_asr

        asr = load_asr(
            preset, model_dir=model_dir, device=device, store_models_dir=layout.models,
            texts=corpus_transcripts(cat) if preset == "tiny" else None,
        )
        done, audio_s = 0, 0.0
        with _progress(console) as progress:
            task = progress.add_task("transcribing", total=len(todo)) if progress else None
            for i in range(0, len(todo), max(1, batch_size)):
                batch = todo[i : i + batch_size]
                wavs = [load_audio(path) for _, path in batch]
                texts = asr.transcribe(wavs)
                with cat.transaction():
                    for (clip_id, _), text in zip(batch, texts):
                        cat.execute(
                            "UPDATE clips SET transcript = ?, transcript_source = ? "
                            "WHERE clip_id = ? AND transcript IS NULL",
                            [text, ASR_SOURCE, clip_id],
                        )
                done += len(batch)
                audio_s += sum(len(w) for w in wavs) / SAMPLE_RATE
                if progress:
                    progress.update(task, advance=len(batch))
    return TranscribeReport(len(todo), done, time.perf_counter() - t0, audio_s)


def _progress(console: "Console | None"):
    """A rich progress bar with clips/s and ETA on `console` (stderr), or nothing."""
    if console is None:
        return nullcontext()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class ClipsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} clips/s" if task.speed else "", style="progress.data.speed")

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), ClipsPerSecond(),
        TimeRemainingColumn(), console=console,
    )
