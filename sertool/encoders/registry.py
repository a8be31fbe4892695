"""Encoders by name: the `kind` recorded in the catalog picks the class (as lhotse's storage backends).

`load_encoder("wavlm", "tiny")` resolves the preset's weights (`presets.resolve`) and builds the
registered class on them; a new encoder family registers itself with `@register`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import NotFound
from .base import Encoder

_ENCODERS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make `cls` loadable by its `kind`."""
    _ENCODERS[cls.kind] = cls
    return cls


def encoder_class(kind: str) -> type:
    try:
        return _ENCODERS[kind]
    except KeyError:
        raise NotFound(f"unknown encoder {kind!r} (known: {', '.join(sorted(_ENCODERS))})") from None


def encoder_kinds() -> list[str]:
    return sorted(_ENCODERS)


def load_encoder(
    kind: str,
    preset: str = "tiny",
    *,
    model_dir: str | Path | None = None,
    layer: int | None = None,
    device: str = "cpu",
    store_models_dir: str | Path | None = None,
    texts: Iterable[str] | None = None,
) -> Encoder:
    """A ready-to-embed encoder of family `kind` with the preset's weights.

    `store_models_dir` is `StoreLayout.models` (where `tiny` is built; default: the current store);
    `texts` are the corpus transcripts the tiny tokenizers are trained on the first time.
    """
    from .presets import resolve

    cls = encoder_class(kind)
    source = resolve(kind, preset, model_dir=model_dir, store_models_dir=store_models_dir, texts=texts)
    return cls(source, layer=layer, device=device)


from . import roberta, wavlm, whisper  # noqa: E402,F401  (each registers itself)
