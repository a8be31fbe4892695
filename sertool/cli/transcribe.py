"""`sertool transcribe`: Whisper ASR for clips that have no transcript."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import err, out, state


def transcribe(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option(help="Model preset: tiny (offline, for tests/demo) or paper (whisper-large-v3).")] = "tiny",
    model_dir: Annotated[
        Optional[Path], typer.Option("--model-dir", help="Load the paper checkpoints from DIR/<model> instead of the HF cache.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Clips per generate call (and per commit).")] = 16,
) -> None:
    """Transcribe clips with no transcript (source `asr`); corpus transcripts are never overwritten."""
    from ..jobs.transcribe import transcribe_missing

    report = transcribe_missing(
        state(ctx).layout, preset=preset, model_dir=model_dir, device=device, batch_size=batch_size, console=err
    )
    if report.pending == 0:
        out.print("nothing to transcribe: every clip has a transcript")
        return
    out.print(
        f"transcribed {report.transcribed} clips ({report.audio_seconds:.0f} s of audio) "
        f"in {report.seconds:.1f} s with the {preset} preset"
    )
