"""`sertool ingest ...`: read a corpus into the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from ..store.corpora import SHRINK_SHARE
from ._common import err, out, state

if TYPE_CHECKING:
    from ..corpus.ingest import IngestReport
    from ..store.records import SkippedRecord

group = typer.Typer(help="Read a corpus into the catalog.", no_args_is_help=True)

NameOpt = Annotated[
    Optional[str], typer.Option("--name", help="Corpus name in the catalog.", show_default="the directory's name")
]
AllowShrinkOpt = Annotated[
    bool, typer.Option("--allow-shrink", help=f"Let a re-ingest remove more than {SHRINK_SHARE:.0%} of the corpus's clips, votes or labels.")
]


def _warn_skip(rec: "SkippedRecord") -> None:
    err.print(f"[yellow]skipped[/] {rec.clip_id}: {rec.reason}", highlight=False, soft_wrap=True)


def _print_report(report: "IngestReport") -> None:
    t = Table(title=f"Ingested corpus {report.corpus!r} ({report.format})", show_header=False)
    t.add_column("what")
    t.add_column("count", justify="right")
    t.add_row("clips", str(report.clips))
    for split, n in report.splits.items():
        t.add_row(f"  split {split}", str(n))
    t.add_row("votes", str(report.votes))
    t.add_row("labels imported (consensus file)", str(report.labels_imported))
    t.add_row("labels derived from votes", str(report.labels_derived))
    t.add_row("corpus transcripts", str(report.corpus_transcripts))
    if report.asr_transcripts_kept:
        t.add_row("ASR transcripts kept", str(report.asr_transcripts_kept))
    t.add_row("skipped (bad audio)", str(len(report.skipped)))
    out.print(t)
    if not report.changed:
        out.print("Catalog already up to date: nothing changed.")


@group.command("msp-podcast")
def msp_podcast(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Corpus root holding Audios/, Labels/ and Transcripts/.")],
    name: NameOpt = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip (and record) clips whose audio is missing, unreadable, empty, "
                                              "non-finite, a link or a special file.")
    ] = False,
    follow_symlinks: Annotated[
        bool, typer.Option("--follow-symlinks", help="Read symbolic links in the corpus folder (refused otherwise).")
    ] = False,
    allow_shrink: AllowShrinkOpt = False,
) -> None:
    """Read an MSP-Podcast-layout corpus: labels, per-annotator votes, audio index, transcripts."""
    from ..corpus.ingest import ingest_msp_podcast

    report = ingest_msp_podcast(state(ctx).layout.catalog, directory, name=name, skip_bad=skip_bad,
                                follow_symlinks=follow_symlinks, allow_shrink=allow_shrink, on_skip=_warn_skip)
    _print_report(report)


@group.command("synthetic")
def synthetic(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write the synthetic corpus.")],
    clips: Annotated[int, typer.Option("--clips", min=1, help="Number of clips.")] = 240,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same corpus, byte for byte.")] = 0,
    name: NameOpt = None,
    allow_shrink: AllowShrinkOpt = False,
) -> None:
    """Write a small synthetic corpus in the MSP-Podcast layout, then ingest it through the same reader."""
    from ..corpus.ingest import ingest_msp_podcast
    from ..corpus.synthetic import write_synthetic_corpus

    root = write_synthetic_corpus(directory, n_clips=clips, seed=seed)
    err.print(f"wrote synthetic corpus to {root}", highlight=False)
    report = ingest_msp_podcast(state(ctx).layout.catalog, root, name=name, allow_shrink=allow_shrink, on_skip=_warn_skip)
    _print_report(report)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="ingest")
