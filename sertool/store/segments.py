"""Per-worker segments of a store: how N embedding workers share one store (merging: `store.merge`).

zarr loses data when two writers touch one chunk or shard file, and DuckDB allows one writer per
file, so a worker never writes the store itself. Worker I of N (part I/N of the work) writes a
*segment*: a small store at ``<store>/segments/part-I-of-N/`` with its own catalog (a copy of the
clip rows it plans from, plus the embedding rows it commits) and its own Zarr arrays, through the
ordinary crash-safe `EmbeddingWriter`. It holds the segment's writer lock (`locking.WriterLock`) for
its whole run, which is how a merge knows the segment is still being written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidOption
from .catalog import Catalog
from .layout import StoreLayout
from .locking import WriterLock

SEGMENTS_DIR = "segments"
_SEGMENT = re.compile(r"^part-(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class PartSpec:
    """Which part of the work one worker does: part `index` of `count` (0-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InvalidOption("part", f"{self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> "PartSpec":
        """`I/N` as users type it (`--part 0/2`)."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise InvalidOption("part", f"{text!r}: expected I/N, e.g. 0/4")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def name(self) -> str:
        return f"part-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def segments_root(layout: StoreLayout) -> Path:
    return layout.root / SEGMENTS_DIR


def segment_layout(layout: StoreLayout, part: PartSpec) -> StoreLayout:
    """The segment store worker `part` writes (its catalog and arrays live there, nothing else)."""
    return StoreLayout(segments_root(layout) / part.name)


def list_segments(layout: StoreLayout) -> list[StoreLayout]:
    """Segments present under the store, in part order."""
    root = segments_root(layout)
    if not root.is_dir():
        return []
    found = [(tuple(map(int, m.groups())), p) for p in root.iterdir() if (m := _SEGMENT.match(p.name))]
    return [StoreLayout(p) for _, p in sorted(found, key=lambda t: (t[0][1], t[0][0]))]


def claim_segment(segment: StoreLayout, part: PartSpec) -> WriterLock:
    """The segment's writer lock, for its worker to hold over the whole run (a context manager):
    a second worker of the same part is refused, and `store merge` refuses the segment meanwhile."""
    return WriterLock(segment.catalog, what=(
        f"{segment.root}: part {part} is already being embedded by another worker; wait for it to finish"))


SEEDED_TABLES = ("corpora", "clips", "skipped", "encoders", "transcripts")
"""Tables a segment copies from the store: what planning reads (the texts a text choice embeds too), and
the encoder provenance to check against."""


def seed_segment(layout: StoreLayout, segment: StoreLayout) -> dict[tuple[str, str], set[str]]:
    """Create (or refresh) a segment's catalog from the store's; return the store's finished clips per
    (encoder, variant), so the worker skips them. The store's catalog is opened read-only and only for
    this: N workers may do it at once, and a merge of finished segments can run while others work."""
    with Catalog(layout.catalog, read_only=True) as main:
        tables = {t: main.df(f"SELECT * FROM {t}") for t in SEEDED_TABLES if main.columns(t)}  # older stores lack some
        done_rows = main.execute("SELECT encoder, variant, clip_id FROM embeddings")
    with Catalog(segment.catalog) as seg, seg.transaction():
        for t, df in tables.items():
            seg.con.register("_seed", df)
            try:
                seg.execute(f"INSERT OR IGNORE INTO {t} BY NAME SELECT * FROM _seed")  # by name: the store may be older
            finally:
                seg.con.unregister("_seed")
    done: dict[tuple[str, str], set[str]] = {}
    for enc, var, cid in done_rows:
        done.setdefault((enc, var), set()).add(cid)
    return done
