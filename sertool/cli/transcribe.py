"""`sertool transcribe`: Whisper ASR for clips that have no transcript."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import err, out, state
from ._options import Device, DeviceOpt, ModelDirOpt, Preset, PresetOpt


def transcribe(
    ctx: typer.Context,
    preset: PresetOpt = Preset.paper,
    model_dir: ModelDirOpt = None,
    device: DeviceOpt = Device.cpu,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Clips per generate call (and per commit).")] = 16,
) -> None:
    """Transcribe clips with no transcript (source `asr`); corpus transcripts are never overwritten."""
    from ..jobs.transcribe import transcribe_missing

    report = transcribe_missing(state(ctx).layout, preset=preset.value, model_dir=model_dir, device=device.value,
                                batch_size=batch_size, console=err)
    if report.pending == 0:
        out.print("nothing to transcribe: every clip has a transcript")
        return
    out.print(
        f"transcribed {report.transcribed} clips ({report.audio_seconds:.0f} s of audio) "
        f"in {report.seconds:.1f} s with the {preset.value} preset"
    )


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)
