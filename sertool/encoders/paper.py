"""The paper's three models without a download: full-size architectures with random weights.

`paper-random` (see `presets`) builds whisper-large-v3's encoder, wavlm-large and roberta-large from the
configs and feature-extractor / tokenizer settings each encoder class ships (`paper_config`,
`paper_processor`), with weights made from the class's fixed seed. What it is for: proving, on any machine
and before the checkpoints are at hand, that the paper-size path runs (memory, throughput, the CUDA path)
and that a checkpoint directory loads the way a real one does. Its frames mean nothing; its revision says
`random(seed=S)`, so they never share a fingerprint with a real checkpoint's.

* `paper_random_encoders` - the three encoders, ready to embed (what `bench/device_check.py` measures);
* `random_model` - the bare architecture, on the meta device for parameter counts and FLOPs;
* `save_checkpoints` - Hugging Face checkpoint directories (`save_pretrained`, safetensors) that
  `--preset paper --model-dir DIR` loads through exactly the code that loads the real checkpoints.

`layers` reduces every model's depth (paper widths, vocabularies and front ends kept): the same code at a
size tests can run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidOption
from ._hf import quiet_transformers, seeded
from .base import Encoder
from .presets import WEIGHT_SUFFIXES, build_paper_random, random_kinds, random_source
from .registry import encoder_class


def random_model(kind: str, root: Path, *, device: str = "meta") -> Any:
    """The module the `paper-random` encoder of `kind` runs, built from its configuration under `root`
    (`presets.build_paper_random`) on `device`: `meta` allocates nothing (parameter counts, FLOPs)."""
    from transformers import AutoConfig

    source = random_source(kind, root)
    cls = encoder_class(kind)
    return seeded(lambda: cls.bare_model(AutoConfig.from_pretrained(source.path)), source.random_seed, device)


def paper_random_encoders(
    root: Path,
    kinds: Sequence[str] = ("whisper", "wavlm", "roberta"),
    *,
    device: str = "cpu",
    texts: Iterable[str] = (),
    layers: int | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Encoder]:
    """The paper-random encoders of `kinds`, their configs and tokenizers built once under `root` (the BPEs
    trained on `texts`), the weights made from each class's seed on the CPU and moved to `device`.

    `options[kind]`: the class's own options (`{"whisper": {"window": "trimmed"}}`). Full size (`layers`
    None) takes ~1.3 B parameters of memory in all (5.2 GB in float32) and, on the CPU, ~20 s per encoder
    to draw its weights.
    """
    from ..model.device import check_device

    check_device(device)
    build_paper_random(root, texts, kinds, layers)
    return {k: encoder_class(k)(random_source(k, root), device=device, **dict((options or {}).get(k, {})))
            for k in kinds}


@dataclass(frozen=True)
class SavedModel:
    """One checkpoint directory `save_checkpoints` wrote."""

    kind: str
    path: Path
    parameters: int
    bytes: int


def save_checkpoints(out: Path, texts: Iterable[str], kinds: Sequence[str] | None = None,
                     layers: int | None = None) -> list[SavedModel]:
    """Write the paper-random models of `kinds` (default: all three) as checkpoint directories `out/<kind>`.

    Each holds what the real checkpoint holds: config (still marked random), weights as safetensors, the
    feature extractor or tokenizer; Whisper's is the whole model (decoder and generation config too), so
    ASR loads it as well. The weights equal the ones `paper_random_encoders` draws for the same `layers`
    and texts, so embeddings from the directory equal the in-memory ones. A directory is written under a
    temporary name and renamed when complete; one that exists already is refused, before any work.
    """
    kinds = list(random_kinds() if kinds is None else kinds)
    unknown = [k for k in kinds if k not in random_kinds()]
    if unknown or not kinds:
        raise InvalidOption("encoders", f"no paper-random model for {', '.join(unknown) or '(none)'}: "
                                        f"choose from {', '.join(random_kinds())}")
    if layers is not None and layers < 1:
        raise InvalidOption("layers", f"must be at least 1, got {layers}")
    out = Path(out)
    there = [str(out / k) for k in kinds if (out / k).exists()]
    if there:
        raise InvalidOption("out", f"{', '.join(there)} exists already: remove it or choose another --out")
    quiet_transformers()
    texts = [t for t in texts if t and t.strip()]
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for kind in kinds:
        cls = encoder_class(kind)
        tmp = out / f".{kind}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            cls.build_paper_random(tmp, texts, layers)
            model = seeded(lambda: cls.checkpoint_model(tmp), cls.tiny_seed)
            model.save_pretrained(tmp)
            n = sum(p.numel() for p in model.parameters())
            del model
            tmp.rename(out / kind)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        size = sum(f.stat().st_size for f in (out / kind).rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
        saved.append(SavedModel(kind, out / kind, n, size))
    return saved
