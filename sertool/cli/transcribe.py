"""`sertool transcribe`: Whisper ASR for the catalog's clips, and how good it is (`--wer`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import err, out, state
from ._options import Device, DeviceOpt, ExperimentOpt, ModelDirOpt, Preset, PresetOpt


def transcribe(
    ctx: typer.Context,
    preset: PresetOpt = Preset.paper,
    model_dir: ModelDirOpt = None,
    device: DeviceOpt = Device.cpu,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Clips per generate call (and per commit).")] = 16,
    every: Annotated[bool, typer.Option("--all", help="Also transcribe clips that have a corpus transcript; the ASR "
                                        "text is kept beside it, never replacing it (train on one, test on the other).")] = False,
    redo: Annotated[bool, typer.Option("--redo", help="Replace ASR transcripts another model (or decoding) wrote "
                                       "with this one's; without it such a run refuses, naming that model.")] = False,
    wer: Annotated[bool, typer.Option("--wer", help="Word and character error rates of the ASR transcripts against "
                                      "the corpus's, per split, logged as an MLflow run (kind asr). Alone it "
                                      "transcribes nothing; with --all or --redo, after transcribing.")] = False,
    experiment: ExperimentOpt = None,
) -> None:
    """Transcribe clips with no transcript (source `asr`, with the model that wrote it); corpus transcripts
    are never overwritten."""
    from ..jobs.transcribe import asr_quality, log_asr_quality, transcribe_missing

    st = state(ctx)
    if not wer or every or redo:
        report = transcribe_missing(st.layout, preset=preset.value, model_dir=model_dir, device=device.value,
                                    batch_size=batch_size, every=every, redo=redo, console=err)
        if report.pending == 0:
            what = "every clip has an ASR transcript" if every else "every clip has a transcript"
            out.print(f"nothing to transcribe: {what}" + (f" ({report.model})" if report.model else ""))
        else:
            again = f", replacing {report.replaced} of another model" if report.replaced else ""
            out.print(f"transcribed {report.transcribed} clips ({report.audio_seconds:.0f} s of audio) "
                      f"in {report.seconds:.1f} s with {report.model}{again}")
    if wer:
        from ..metrics import ASR_NORMALISATION

        quality = asr_quality(st.layout)
        run_id = log_asr_quality(st.tracker(experiment), quality, experiment=experiment)
        out.print(f"ASR quality of {'; '.join(quality.models)} against the corpus transcripts "
                  f"(normalised: {', '.join(ASR_NORMALISATION)}):")
        for split, m in quality.splits.items():
            out.print(f"  {split:<12} WER {m['wer']:.3f}  CER {m['cer']:.3f}  ({m['n_pairs']} clips)")
        out.print(f"logged as run {run_id} (kind asr)")


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)
