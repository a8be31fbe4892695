"""`sertool models save`: the offline paper-size models as Hugging Face checkpoint directories.

The directories hold what the real checkpoints hold (config, safetensors weights, feature extractor or
tokenizer), so `--preset paper --model-dir DIR` loads them through exactly the code that loads
whisper-large-v3, wavlm-large and roberta-large (`encoders.paper.save_checkpoints`). Their BPE tokenizers
are trained on the store's corpus transcripts where the store has a catalog, as the `tiny` and
`paper-random` presets' are (none: a bytes-only BPE, complete but one token per byte).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidOption
from ..store.layout import StoreLayout

if TYPE_CHECKING:
    from ..encoders.paper import SavedModel


@dataclass
class SaveReport:
    models: list["SavedModel"]
    n_texts: int
    """Corpus transcripts the tokenizers were trained on."""


def save_models(layout: StoreLayout, out: Path, *, preset: str = "paper-random", kinds: Sequence[str] | None = None,
                layers: int | None = None) -> SaveReport:
    """Write `preset`'s models of `kinds` under `out/<kind>`; only `paper-random` is made here (`tiny` is
    built into a store on first use; `paper` comes from the Hugging Face Hub)."""
    if preset != "paper-random":
        raise InvalidOption("preset", f"{preset}: only paper-random is written by `models save` (paper checkpoints "
                                      "come from the Hub; tiny models are built into the store on first use)")
    from ..encoders.paper import save_checkpoints

    texts = _corpus_texts(layout)
    return SaveReport(save_checkpoints(out, texts, kinds, layers), len(texts))


def _corpus_texts(layout: StoreLayout) -> list[str]:
    if not layout.catalog.exists():
        return []
    from ..store.catalog import Catalog
    from ..store.clips import corpus_transcripts

    with Catalog(layout.catalog, read_only=True) as cat:
        return corpus_transcripts(cat)
