"""Plumbing the transformers-backed encoders share: quiet loading, layer choice, records, offline
tokenizers, and seeded random weights (`paper-random`).

Weights load as float32 whatever the checkpoint stores (large-v3 ships fp16): frames must not depend
on the file format, and on GPU the caller's autocast picks the compute precision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import SertoolError
from ..store.records import EncoderRecord

T = TypeVar("T")

RANDOM_KEY = "sertool_random_weights"
"""Config key of a model whose weights sertool made at random (`paper-random`, and the checkpoints
`sertool models save` writes from it): its value (`seed=S`) goes into the encoder's recorded revision, so
such frames never share a fingerprint with a real checkpoint's, by whatever path the model was loaded."""


def quiet_transformers() -> None:
    """Our own progress bar is the one the user watches; transformers' load bars and init notes are noise."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def check_layer(kind: str, layer: int | None, n_layers: int) -> int | None:
    """`layer` as stored: None for the last hidden state (layer == n_layers is the same thing)."""
    if layer is None or layer == n_layers:
        return None
    if not 0 <= layer < n_layers:
        raise SertoolError(f"{kind}: layer {layer} out of range (the model has layers 0..{n_layers})")
    return layer


def encoder_record(cls: type, source: Any, layer: int | None, *, dim: int, frame_rate: float | None,
                   preprocessing: str, config: Any = None) -> EncoderRecord:
    """The provenance every encoder writes: name, checkpoint, revision and storage dtype decided in one
    place, so that encoders differ only in what actually changes their frames. A model `config` marked
    random (`RANDOM_KEY`) says so in the revision: `random(seed=0):<revision>`."""
    revision = source.revision
    mark = getattr(config, RANDOM_KEY, None)
    if mark:
        revision = f"random({mark}):{revision}"
    return EncoderRecord(
        name=cls.stored_name(layer), kind=cls.kind, checkpoint=source.checkpoint, revision=revision,
        layer=layer, dim=dim, frame_rate=frame_rate, dtype="float16", preprocessing=preprocessing,
    )


def seeded(build: Callable[[], T], seed: int, device: str = "cpu") -> T:
    """`build()` with the global torch RNG seeded to `seed` (the caller's RNG state is left as it was),
    under `device` as torch's default device, in float32.

    Random weights are made on the CPU whatever device runs them: the CPU generator gives the same
    numbers on every machine, a GPU's depends on its model, and a seed must mean one set of weights.
    `device="meta"` builds the architecture without allocating (parameter counts, FLOPs).
    """
    import torch

    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        return build().float()


def materialise(source: Any, load: Callable[[Path], T], build: Callable[[Path], T]) -> T:
    """The model of `source`: `load(path)` reads a checkpoint's weights (`from_pretrained`, the path real
    checkpoints take, `--model-dir` too); for `paper-random` (`source.random_seed` set) `build(path)`
    makes it from the directory's config with the seeded random weights."""
    if source.random_seed is None:
        return load(source.path)
    return seeded(lambda: build(source.path), source.random_seed)


def config_with(config_cls: Any, values: dict[str, Any], seed: int) -> Any:
    """A transformers config of `values`, marked as holding random weights made from `seed`."""
    return config_cls(**values, **{RANDOM_KEY: f"seed={seed}"})


def hidden(outputs: Any, layer: int | None):
    """The chosen layer's hidden states (hidden_states[0] is the input embedding, [i] the output of layer i)."""
    return outputs.last_hidden_state if layer is None else outputs.hidden_states[layer]


def chunks(n: int, size: int) -> list[slice]:
    """Slices of at most `size` over range(n): bounds the memory of one forward pass."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def window_starts(n: int, capacity: int, overlap: int) -> list[int]:
    """Start offsets of overlapping windows of `capacity` positions that cover `n` (tokens or frames);
    the last window ends exactly at the end."""
    if n <= capacity:
        return [0]
    step = capacity - overlap
    starts = list(range(0, n - capacity, step))
    return starts + [n - capacity]


def owned_spans(n: int, starts: list[int], capacity: int) -> list[tuple[int, int]]:
    """For each window, the [lo, hi) positions it owns: those where it is the most central window
    (most context on both sides; a tie goes to the earlier window). Every position is owned once.

    All windows have the same capacity, so "most central" is "nearest centre", and window k's share ends
    halfway between its centre and the next one's: O(windows) work and memory, where comparing every
    position with every window (a positions x windows matrix) grew with the square of the length.
    """
    his = [(s + t + capacity - 1) // 2 + 1 for s, t in zip(starts, starts[1:])] + [n]
    los = [0] + his[:-1]
    return list(zip(los, his))


def owner_windows(n: int, starts: list[int], capacity: int) -> np.ndarray:
    """For each position, the index of the window that owns it (`owned_spans`), in O(n) memory."""
    spans = owned_spans(n, starts, capacity)
    return np.repeat(np.arange(len(spans)), [hi - lo for lo, hi in spans])


def train_bpe(texts: list[str], specials: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE (GPT-2 style, as Whisper and RoBERTa use) trained on `texts`: the tiny preset's
    tokenizers. Returns vocab and merges; an empty corpus gives the bytes only, still complete."""
    import json

    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                            show_progress=False)
    data = json.loads(bpe._tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["merges"]]
    return dict(data["vocab"]), merges
