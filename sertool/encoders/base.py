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
    random_seed: int | None = None
    """None: the weights are the checkpoint files in `path`. Set (the `paper-random` preset): `path` holds
    config and feature extractor / tokenizer only, and the weights are made from this seed when the model
    is built (full size without a download or gigabytes of random weights on disk)."""


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
    paper_processor: ClassVar[dict[str, Any]] = {}
    """The paper checkpoint's feature-extractor or tokenizer settings (values only; `paper-random` builds
    its processor from them, with a byte-level BPE trained offline where the model reads text)."""
    depth_keys: ClassVar[tuple[str, ...]] = ("num_hidden_layers",)
    """Config keys that count transformer layers: reduced for quick paper-shaped checks (`layers=`)."""
    tiny_seed: ClassVar[int] = 0
    """Seed of the random weights of this kind's tiny and paper-random models (fixed: the same everywhere)."""
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Keyword options of the class that change its frames without changing its weights (Whisper's
    `window`), with their choices, the first the default: each choice has its own fingerprint."""

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

    @classmethod
    def paper_values(cls, layers: int | None = None) -> dict[str, Any]:
        """`paper_config`, with `layers` transformer layers instead of the paper's where given."""
        return {**cls.paper_config, **({k: layers for k in cls.depth_keys} if layers is not None else {})}

    @classmethod
    def build_paper_random(cls, directory: Path, texts: list[str], layers: int | None = None) -> None:
        """Write the paper model's config (marked random, `_hf.RANDOM_KEY`) and its feature extractor /
        tokenizer into `directory`, without weights: the `paper-random` preset makes those from the seed."""
        raise NotImplementedError(f"{cls.kind}: no paper-random model")

    @classmethod
    def bare_model(cls, config: Any) -> Any:
        """The torch module this encoder runs, built from `config` with fresh weights (under the caller's
        seed and default device: `torch.device("meta")` allocates nothing)."""
        raise NotImplementedError(f"{cls.kind}: no paper-random model")

    @classmethod
    def checkpoint_model(cls, directory: Path) -> Any:
        """The model a checkpoint directory of this kind holds, built fresh from the config files in
        `directory` (what `save_pretrained` writes; Whisper's includes the decoder, for ASR)."""
        from transformers import AutoConfig

        return cls.bare_model(AutoConfig.from_pretrained(directory))

    def configured(self, **options: str) -> "EncoderBase":
        """This encoder with other `option_choices` (sharing its loaded model)."""
        raise NotImplementedError(f"{self.kind}: no options")


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
