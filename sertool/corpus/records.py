"""Typed records a corpus reader hands to the catalog writer: one per catalog row.

Readers validate and build these; `ingest.write_corpus` writes them. Keeping the two apart means a
corpus is read and checked completely before the catalog is touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ClipRecord:
    """A clip's audio index entry and metadata (`clips` row, less the corpus name)."""

    clip_id: str
    path: str  # relative to the corpus root, e.g. Audios/MSP-PODCAST_0001_0001.wav
    split: str | None
    duration_s: float
    sample_rate: int
    n_channels: int
    speaker_id: str | None = None
    gender: str | None = None
    transcript: str | None = None  # from the corpus; ASR fills the rest later

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VoteRecord:
    """One annotator's judgement of one clip (`votes` row). `emotion` is a class code."""

    clip_id: str
    annotator_id: str
    emotion: str
    secondary: str | None
    arousal: float | None
    valence: float | None
    dominance: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LabelRecord:
    """A clip's consensus (`labels` row): imported from the corpus (`source='corpus'`) or derived (`'votes'`)."""

    clip_id: str
    emotion: str
    arousal: float | None
    valence: float | None
    dominance: float | None
    n_annotators: int
    agreement: float | None
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SkippedRecord:
    """A clip left out because its audio is missing or unreadable (`--skip-bad`)."""

    clip_id: str
    path: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CorpusRecords:
    """Everything one corpus contributes to the catalog, already validated."""

    name: str
    root: str
    format: str
    clips: list[ClipRecord] = field(default_factory=list)
    votes: list[VoteRecord] = field(default_factory=list)
    labels: list[LabelRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
