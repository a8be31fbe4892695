"""`sertool ingest`: read (and so validate) a whole corpus first, then write it in one transaction.

The writing itself is the store's (`store.corpora.write_corpus`: idempotent, all or nothing); this
module orders the two steps and reports what happened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..store.catalog import Catalog
from ..store.corpora import write_corpus
from ..store.locking import lock_path
from ..store.records import CorpusRecords, SkippedRecord


@dataclass
class IngestReport:
    """What an ingest did, for the CLI to print and tests to check."""

    corpus: str
    format: str
    clips: int
    splits: dict[str, int]
    votes: int
    labels_imported: int
    labels_derived: int
    corpus_transcripts: int
    asr_transcripts_kept: int
    skipped: list[SkippedRecord] = field(default_factory=list)
    changed: bool = True


def ingest_records(
    catalog_path: str | Path,
    read: Callable[[], CorpusRecords],
    *,
    allow_shrink: bool = False,
) -> IngestReport:
    """Read (and so validate) first, then write; a catalog this call created is removed if writing fails.

    `allow_shrink` lets a re-ingest remove more than `store.corpora.SHRINK_SHARE` of the rows the
    catalog holds for the corpus (see `write_corpus`).
    """
    records = read()
    catalog_path = Path(catalog_path)
    created_dir = not catalog_path.parent.exists()
    existed = catalog_path.exists()
    try:
        with Catalog(catalog_path) as catalog:
            written = write_corpus(catalog, records, allow_shrink=allow_shrink)
    except BaseException:
        if not existed:
            for p in (catalog_path, catalog_path.with_name(catalog_path.name + ".wal"), lock_path(catalog_path)):
                p.unlink(missing_ok=True)
            if created_dir:
                try:
                    catalog_path.parent.rmdir()
                except OSError:
                    pass
        raise
    by_source = Counter(lab.source for lab in records.labels)
    return IngestReport(
        corpus=records.name,
        format=records.format,
        clips=len(records.clips),
        splits=dict(sorted(Counter(c.split or "(none)" for c in records.clips).items())),
        votes=len(records.votes),
        labels_imported=by_source.get("corpus", 0),
        labels_derived=by_source.get("votes", 0),
        corpus_transcripts=sum(c.transcript is not None for c in records.clips),
        asr_transcripts_kept=written.asr_transcripts_kept,
        skipped=list(records.skipped),
        changed=written.changed,
    )


def ingest_msp_podcast(
    catalog_path: str | Path,
    root: str | Path,
    *,
    name: str | None = None,
    skip_bad: bool = False,
    follow_symlinks: bool = False,
    allow_shrink: bool = False,
    progress: bool = True,
    on_skip: Callable[[SkippedRecord], None] | None = None,
) -> IngestReport:
    """`sertool ingest msp-podcast`: read and validate the corpus at `root`, then write it in one transaction.

    `follow_symlinks` reads symbolic links inside the corpus folder (refused otherwise); `allow_shrink`
    lets a re-ingest remove a large share of what the catalog holds for this corpus.
    """
    from .msp_podcast import read_msp_podcast

    return ingest_records(
        catalog_path,
        lambda: read_msp_podcast(root, name=name, skip_bad=skip_bad, follow_symlinks=follow_symlinks,
                                 progress=progress, on_skip=on_skip),
        allow_shrink=allow_shrink,
    )
