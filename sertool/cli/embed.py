"""`sertool embed`: frozen-encoder embeddings (clean and augmented variants) into the feature store."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ._common import err, out, state
from ..audio import DEFAULT_MAX_TRANSCRIPT_CHARS
from ._options import (
    MAX_SECONDS,
    Device,
    DeviceOpt,
    MaxSecondsOpt,
    ModelDirOpt,
    Preset,
    PresetOpt,
    TextChoice,
    WhisperWindow,
    WhisperWindowOpt,
    names,
)


def embed(
    ctx: typer.Context,
    preset: PresetOpt = Preset.paper,
    encoders: Annotated[str, typer.Option(help="Comma-separated encoders.")] = "whisper,wavlm,roberta",
    layer: Annotated[Optional[int], typer.Option(help="Hidden layer to take (default: the last).")] = None,
    model_dir: ModelDirOpt = None,
    augment: Annotated[
        str, typer.Option(help="Augmented variants to store besides clean: any of noise,reverb,gain.")
    ] = "",
    device: DeviceOpt = Device.cpu,
    batch_seconds: Annotated[
        Optional[float], typer.Option(help="Padded seconds of audio per forward pass (length bucketing).", show_default="60 on cpu, 320 on cuda")
    ] = None,
    seed: Annotated[int, typer.Option(help="Augmentation seed.")] = 0,
    splits: Annotated[Optional[str], typer.Option(help="Only clips of these splits (comma-separated).")] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Record bad clips (unreadable, NaN samples, too short or long, "
                           "transcript over the limit) in `skipped` and go on.")
    ] = False,
    whisper_window: WhisperWindowOpt = WhisperWindow.padded,
    max_seconds: MaxSecondsOpt = MAX_SECONDS,
    max_transcript_chars: Annotated[
        int, typer.Option("--max-transcript-chars", help="Longest transcript text encoders take; a longer one is "
                          "bad input (--skip-bad skips the clip).")
    ] = DEFAULT_MAX_TRANSCRIPT_CHARS,
    text: Annotated[
        TextChoice, typer.Option("--text", help="Which transcript text encoders read: preferred (the corpus's, else "
                                 "ASR's; variant clean), corpus (variant text-corpus; clips without one are left "
                                 "out) or asr (variant text-asr; `sertool transcribe --all` first).")
    ] = TextChoice.preferred,
    part: Annotated[
        Optional[str],
        typer.Option(help="Embed only part I/N (one of N workers) into a segment; then `sertool store merge`. "
                     "Under torchrun: one part per rank, merged by rank 0."),
    ] = None,
) -> None:
    """Embed every clip with the frozen encoders; resumable (a rerun does only what is missing)."""
    from ..jobs.embed import EmbedConfig, embed_store
    from ..jobs.embed_parts import embed_parts

    cfg = EmbedConfig(
        preset=preset.value, encoders=names(encoders), layer=layer, model_dir=model_dir, augment=names(augment),
        device=device.value, batch_seconds=batch_seconds, seed=seed, splits=names(splits) or None, skip_bad=skip_bad,
        max_seconds=max_seconds, max_transcript_chars=max_transcript_chars, whisper_window=whisper_window.value,
        text=text.value,
    )
    layout = state(ctx).layout
    parted = embed_parts(layout, cfg, part, console=err)
    if parted is None:
        report = embed_store(layout, cfg, console=err)
    elif parted.part.index != 0 and part is None:  # a torchrun rank other than 0: rank 0 reports
        return
    else:
        report = parted.embed
        if parted.merge is not None:
            m = parted.merge
            err.print(f"merged {len(m.segments)} segment(s): {m.clips} clip embeddings committed", highlight=False)
        elif part is not None:
            err.print(f"part {parted.part} is in {parted.segment.root}; once all {parted.part.count} parts are "
                      "done, `sertool store merge` commits them to the store", highlight=False)
    if report.readmitted:
        err.print(f"re-checked: {len(report.readmitted)} clip(s) skipped by an earlier embed pass every check now "
                  f"and are embedded ({_some(report.readmitted)})", highlight=False, soft_wrap=True)
    if report.remade:
        clips = sorted({c for c, _, _ in report.remade})
        err.print(f"audio changed since it was embedded: {len(report.remade)} embedding(s) of {len(clips)} clip(s) "
                  f"made again ({_some(clips)}); `sertool store compact` gives back the old frames' space",
                  highlight=False, soft_wrap=True)
    if report.stale_left:
        units = sorted({f"{e}/{v}" for _, e, v in report.stale_left})
        err.print(f"note: {len(report.stale_left)} embedding(s) of {', '.join(units)} were made from audio that has "
                  "changed since; this run does not embed those: run `sertool embed` with them "
                  "(`sertool store verify --audio` lists them)", highlight=False, soft_wrap=True)
    if report.text_remade:
        clips = sorted({c for c, _, _ in report.text_remade})
        err.print(f"transcript changed since it was embedded: {len(report.text_remade)} text embedding(s) of "
                  f"{len(clips)} clip(s) made again ({_some(clips)})", highlight=False, soft_wrap=True)
    if report.text_stale_left:
        units = sorted({f"{e}/{v}" for _, e, v in report.text_stale_left})
        err.print(f"note: {len(report.text_stale_left)} embedding(s) of {', '.join(units)} embedded a transcript that "
                  "has changed since; this run does not embed those: run `sertool embed` with that --text "
                  "(`sertool store verify` lists them)", highlight=False, soft_wrap=True)
    if report.untracked_text:
        err.print(f"note: {report.untracked_text} stored text embedding(s) record no transcript hash (embedded "
                  "before sertool kept it): a changed transcript cannot be noticed for them; `sertool store drop "
                  "ENCODER/VARIANT` and embed again to give them one", highlight=False, soft_wrap=True)
    if report.unchecked:
        err.print(f"note: {report.unchecked} stored embedding(s) have no frame checksum (embedded before sertool kept "
                  "them): they read as ever, but `store verify --frames` cannot check them; `sertool store drop "
                  "ENCODER/VARIANT` and embed again to give them one", highlight=False, soft_wrap=True)
    for clip_id, path, reason in report.skipped:
        err.print(f"skipped {clip_id} ({path}): {reason}", highlight=False, soft_wrap=True)
    if report.nothing_to_do:
        out.print(f"nothing to do: all {len(report.units)} encoder/variant sets are complete")
        return
    from rich.table import Table

    table = Table(title="embedded")
    for col in ("encoder", "variant", "new clips", "already", "frames", "clips/s"):
        table.add_column(col, justify="left" if col in ("encoder", "variant") else "right")
    for u in report.units:
        rate = f"{u.written / u.seconds:.1f}" if u.seconds > 0 else "-"
        table.add_row(u.encoder, u.variant, str(u.written), str(u.already), str(u.frames), rate)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)


def _some(clips: list[str]) -> str:
    """The first five clip ids, and how many more: enough to find them, short enough for one line."""
    return ", ".join(clips[:5]) + (f" and {len(clips) - 5} more" if len(clips) > 5 else "")
