"""Typed records the store keeps about what it holds.

The store knows nothing of models: an encoder is, to the store, only its provenance. Encoders build an
`EncoderRecord` describing themselves; the store keeps it in the `encoders` table and in the Zarr
attributes of its arrays, and refuses to mix frames of two different fingerprints under one name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


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
