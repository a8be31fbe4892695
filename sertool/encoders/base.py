"""One small interface for every frozen encoder, and the registry that finds them by kind.

An encoder turns a batch of clips into one ``[frames, dim]`` float32 array per clip, and describes
itself with an `EncoderRecord` whose fingerprint keys its frames in the store. Audio encoders take
16 kHz mono float32 waveforms; text encoders take transcripts. A clip's output must not depend on its
batch-mates (attention masks, per-clip cutting), so batching is only a speed choice.

Each encoder class is the single source of truth about its kind (lhotse's storage backends, keyed by
name, are the model): its modality, the paper checkpoint and its config, how much audio a clip really
costs it (`padded_seconds`), how its stored name is formed (`stored_name`), and how to build its tiny
offline model. Adding an encoder is one new module with one `@register`ed class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from ..errors import NotFound
from ..store.records import EncoderRecord

Modality = Literal["audio", "text"]


@dataclass(frozen=True)
class ModelSource:
    """A model's local directory and the provenance an encoder records for it."""

    path: Path
    """Directory holding config, weights and the feature extractor / tokenizer."""
    checkpoint: str
    """Hugging Face id, local directory, or `sertool-tiny/<kind>` for the tiny preset."""
    revision: str | None
    """Hub commit hash, or a hash of the local files (weights + config + tokenizer)."""
    preset: str


@runtime_checkable
class Encoder(Protocol):
    """A frozen encoder. Implementations register under their `kind`."""

    kind: ClassVar[str]
    modality: ClassVar[Modality]

    @property
    def record(self) -> EncoderRecord:
        """Provenance written to the catalog; its fingerprint guards against mixing configs."""
        ...

    def embed(self, batch: list[np.ndarray] | list[str]) -> list[np.ndarray]:
        """Frames for each clip of the batch: audio (16 kHz float32 mono) or transcripts -> [frames, dim] float32."""
        ...


class EncoderBase:
    """What every registered encoder class declares about its kind (class attributes) and the defaults."""

    kind: ClassVar[str]
    """The registry key, recorded in the catalog's `encoders.kind`."""
    modality: ClassVar[Modality]
    paper_checkpoint: ClassVar[str]
    """Hugging Face id of the paper-size model (`--preset paper`)."""
    paper_config: ClassVar[dict[str, Any]]
    """The paper model's config values, so its architecture can be built without a download."""
    tiny_seed: ClassVar[int] = 0
    """Seed of the tiny preset's random weights (fixed: the tiny model is the same everywhere)."""

    @classmethod
    def stored_name(cls, layer: int | None) -> str:
        """`wavlm` for the last hidden state, `wavlm-l12` for layer 12: one name, one fingerprint."""
        return cls.kind if layer is None else f"{cls.kind}-l{layer}"

    @classmethod
    def padded_seconds(cls, duration_s: float) -> float:
        """Seconds of audio the encoder really processes for one clip (length bucketing plans with it)."""
        return duration_s

    @classmethod
    def build_tiny(cls, directory: Path, texts: list[str]) -> None:
        """Write the tiny preset's model (same architecture, small dims, fixed random weights) as a
        Hugging Face checkpoint directory; `texts` train its tokenizer where it has one."""
        raise NotImplementedError


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make `cls` loadable by its `kind`."""
    _REGISTRY[cls.kind] = cls
    return cls


def registered() -> dict[str, type]:
    return dict(_REGISTRY)


def lookup(kind: str) -> type:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise NotFound(f"unknown encoder {kind!r} (known: {', '.join(sorted(_REGISTRY))})") from None
