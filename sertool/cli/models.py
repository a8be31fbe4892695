"""`sertool models save`: offline paper-size models written as Hugging Face checkpoint directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import out, state
from ._options import Preset, PresetOpt, names

group = typer.Typer(help="Models on disk: the paper architectures with random weights, saved as checkpoints.",
                  no_args_is_help=True)


@group.command("save")
def save(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write <kind>/ checkpoint folders into.")],
    preset: PresetOpt = Preset.paper_random,
    encoders: Annotated[str, typer.Option(help="Comma-separated encoders.")] = "whisper,wavlm,roberta",
    layers: Annotated[
        Optional[int], typer.Option("--layers", help="Transformer layers per model instead of the paper's (paper "
                                    "widths kept): the same code at a size quick checks can run.", show_default=False)
    ] = None,
) -> None:
    """Write the paper-random models (full size, random weights) as checkpoints that `--preset paper
    --model-dir DIR` loads like the real ones; tokenizers trained on the store's transcripts. Full size
    draws ~2.2 B parameters on the CPU (Whisper's decoder too, for ASR) and writes ~8.3 GiB."""
    from ..jobs.models import save_models

    report = save_models(state(ctx).layout, out_dir, preset=preset.value, kinds=names(encoders), layers=layers)
    from rich.table import Table

    table = Table(title=f"saved ({report.n_texts} corpus transcripts trained the tokenizers)")
    for col in ("encoder", "directory", "parameters", "size"):
        table.add_column(col, justify="right" if col in ("parameters", "size") else "left")
    for m in report.models:
        table.add_row(m.kind, str(m.path), f"{m.parameters / 1e6:,.1f} M", f"{m.bytes / 2**30:.2f} GiB")
    out.print(table)
    out.print(f"load them with: sertool embed --preset paper --model-dir {out_dir}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="models")
