"""Typed records of what the store holds: one per catalog row, the store API's currency.

Corpus readers validate and build `ClipRecord`s, `VoteRecord`s and `LabelRecord`s and hand them over in
one `CorpusRecords`; keeping reading and writing apart means a corpus is checked completely before the
catalog is touched. The store knows nothing of models: an encoder is, to the store, only its provenance.
Encoders build an `EncoderRecord` describing themselves; the store keeps it in the `encoders` table and
in the Zarr attributes of its arrays, and refuses to mix frames of two different fingerprints under one
name. Reads hand back records too (`ClipSource`, `StoredEncoder`, `SchemeClip`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class EncoderRecord:
    """Provenance of one encoder configuration (one row of the `encoders` table)."""

    name: str
    """Key in the store, e.g. ``wavlm`` or ``wavlm-l12``: one name, one fingerprint."""
    kind: str
    """Registered encoder family: ``whisper``, ``wavlm`` or ``roberta``."""
    checkpoint: str
    """Hugging Face id or local directory the weights came from."""
    revision: str | None
    """Checkpoint revision (commit hash) or the hash of the local weights file."""
    layer: int | None
    """Hidden layer taken (None = last hidden state)."""
    dim: int
    """Width of one frame."""
    frame_rate: float | None
    """Frames per second of audio (None for text encoders: one frame per token)."""
    dtype: str
    """Storage dtype of the frames (float16)."""
    preprocessing: str
    """Everything else that changes the output: sample rate, mel bins, window policy, tokenizer."""

    @property
    def fingerprint(self) -> str:
        """Stable hash of everything that determines the frames; two configs that differ never share it."""
        payload = json.dumps({k: v for k, v in asdict(self).items() if k != "name"}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {**asdict(self), "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderRecord":
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        return cls(**fields)

@dataclass(frozen=True)
class TranscriberRecord:
    """Provenance of one ASR configuration: the model and how it decoded (the `transcripts` columns of an
    `asr` row). As with encoders, the store keeps only this description of the model, never the model."""

    checkpoint: str
    """Hugging Face id, local directory, or `sertool-tiny/whisper`."""
    revision: str | None
    """Checkpoint revision (commit hash) or the hash of the local files."""
    decoding: dict = field(default_factory=dict)
    """The decoding settings that change the text (language, task, beams, sampling, token budget)."""

    @property
    def fingerprint(self) -> str:
        """Stable hash of model and decoding: two configurations that can write different text never share it."""
        payload = json.dumps({"checkpoint": self.checkpoint, "revision": self.revision, "decoding": self.decoding},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """How messages name it: `sertool-tiny/whisper (fingerprint 1a2b...)`."""
        return f"{self.checkpoint} (fingerprint {self.fingerprint})"


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
    size_bytes: int | None = None
    """The audio file's size in bytes at ingest."""
    mtime_ns: int | None = None
    """The audio file's modification time at ingest (ns since the epoch)."""

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


# -- what reads hand back -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipSource:
    """A clip as the jobs that read its audio or text need it (embedding, ASR)."""

    clip_id: str
    path: Path
    """Absolute audio path (catalog paths are relative to their corpus root)."""
    duration_s: float
    """From the audio header at ingest; NaN where unknown."""
    transcript: str | None


@dataclass(frozen=True)
class StoredEncoder:
    """One row of the `encoders` table: the provenance of an encoder configuration in the store."""

    name: str
    kind: str
    checkpoint: str
    revision: str | None
    layer: int | None
    dim: int
    frame_rate: float | None
    """None for text encoders (one frame per token): their variants are text choices (`store.transcripts`)."""
    fingerprint: str

    @property
    def text(self) -> bool:
        return self.frame_rate is None


@dataclass(frozen=True)
class SchemeClip:
    """A clip of a split scheme with its consensus labels, as training reads it."""

    clip_id: str
    split: str
    emotion: str | None
    arousal: float | None
    valence: float | None
    dominance: float | None
    complete: bool
    """True when every requested encoder has `clean` frames for it."""
