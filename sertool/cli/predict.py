"""`sertool predict`: a tracked run or ensemble on new audio files; results to stdout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import err, out, state
from ._options import (
    MAX_SECONDS,
    Device,
    DeviceOpt,
    ExperimentOpt,
    FormatOpt,
    MaxSecondsOpt,
    ModelDirOpt,
    OutputFormat,
    Preset,
    WhisperWindow,
)


def predict(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Run or ensemble: id, id prefix or name (as `sertool runs` shows).")],
    audio: Annotated[list[Path], typer.Argument(help="Audio files (any rate and channels; resampled to 16 kHz mono).")],
    transcript: Annotated[
        Optional[str], typer.Option("--transcript", help="Transcript to use instead of Whisper ASR (every file).")
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    preset: Annotated[
        Optional[Preset], typer.Option("--preset", help="Encoder weights (paper|paper-random|tiny); default: as the "
                                       "store recorded.")
    ] = None,
    model_dir: ModelDirOpt = None,
    window_seconds: Annotated[
        float, typer.Option("--window-seconds", help="Longer files are predicted in windows of this length.")
    ] = 30.0,
    experiment: ExperimentOpt = None,
    device: DeviceOpt = Device.cpu,
    max_seconds: MaxSecondsOpt = MAX_SECONDS,
    whisper_window: Annotated[
        Optional[WhisperWindow], typer.Option("--whisper-window", help="Whisper's window (padded|trimmed); default: "
                                              "the one the run's frames were made with.", show_default=False)
    ] = None,
) -> None:
    """Class, class probabilities and arousal/valence/dominance for new audio (one row per window + file)."""
    from ..errors import SertoolError
    from ..jobs.predict import PredictConfig, predict_files

    cfg = PredictConfig(preset=preset.value if preset else None, model_dir=model_dir, window_seconds=window_seconds,
                        transcript=transcript, device=device.value, experiment=experiment, max_seconds=max_seconds,
                        whisper_window=whisper_window.value if whisper_window else None)
    st = state(ctx)
    report = predict_files(st.layout, run, audio, cfg, st.tracker(experiment), console=err)
    for note in report.notes:
        err.print(f"note: {note}", highlight=False)
    for _, reason in report.skipped:
        err.print(f"skipped {reason}", highlight=False, soft_wrap=True)
    if not report.rows:
        raise SertoolError(f"nothing could be predicted: none of the {len(audio)} file(s) could be used")
    rows = [r.to_dict() for r in report.rows]
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=2))
    elif fmt is OutputFormat.csv:
        typer.echo(_csv(rows), nl=False)
    else:
        _table(report)


def _csv(rows: list[dict]) -> str:
    from ..labels import ATTRIBUTES

    buf = io.StringIO()
    probs = list(rows[0]["probabilities"])
    cols = ["file", "window", "start_s", "end_s", "transcript", "pred_class", *(f"p_{c}" for c in probs),
            *ATTRIBUTES]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r["file"], r["window"], r["start_s"], r["end_s"], r["transcript"] or "", r["pred_class"],
                    *(f"{r['probabilities'][c]:.6f}" for c in probs),
                    *(f"{r[a]:.6f}" for a in ATTRIBUTES)])
    return buf.getvalue()


def _table(report) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title=f"{report.run.name} ({report.run.run_id[:8]}, {report.run.kind})", title_justify="left",
                  caption="aro/val/dom: arousal, valence, dominance on 1-7", box=box.SIMPLE_HEAD)
    table.add_column("file", overflow="fold", min_width=12)
    table.add_column("window", no_wrap=True)
    table.add_column("transcript", no_wrap=True, overflow="ellipsis", max_width=12)
    for col in ("class", "p", "aro", "val", "dom"):
        table.add_column(col, justify="left" if col == "class" else "right", no_wrap=True)
    last = None
    for r in report.rows:
        if last is not None and r.file != last:
            table.add_section()
        where = "all" if r.window is None else f"{r.window}: {r.start_s:.1f}-{r.end_s:.1f}"
        text = "".join(ch if ch.isprintable() else "?" for ch in r.transcript or "")  # ASR may emit control bytes
        table.add_row(Path(r.file).name if r.file != last else "", where, text, r.pred_class,
                      f"{r.probs.max():.2f}", *(f"{v:.2f}" for v in r.attrs))
        last = r.file
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
