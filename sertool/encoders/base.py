"""One small interface for every frozen encoder.

An encoder turns a batch of clips into one ``[frames, dim]`` float32 array per clip, and describes
itself with an `EncoderRecord` whose fingerprint keys its frames in the store. Audio encoders take
16 kHz mono float32 waveforms; text encoders take transcripts. A clip's output must not depend on its
batch-mates (attention masks, per-clip cutting), so batching is only a speed choice.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from ..store.records import EncoderRecord

SAMPLE_RATE = 16_000

Modality = Literal["audio", "text"]


@runtime_checkable
class Encoder(Protocol):
    """A frozen encoder. Implementations register under their `kind` (see `registry.py`)."""

    kind: ClassVar[str]
    modality: ClassVar[Modality]

    @property
    def record(self) -> EncoderRecord:
        """Provenance written to the catalog; its fingerprint guards against mixing configs."""
        ...

    def embed(self, batch: list[np.ndarray] | list[str]) -> list[np.ndarray]:
        """Frames for each clip of the batch: audio (16 kHz float32 mono) or transcripts -> [frames, dim] float32."""
        ...
