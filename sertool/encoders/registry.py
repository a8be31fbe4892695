"""Encoders by kind: the `kind` recorded in the catalog picks the class (as lhotse's storage backends).

`load_encoder("wavlm", "tiny", models_dir=...)` resolves the preset's weights (`presets.resolve`) and
builds the registered class on them. The built-in kinds are imported here; another kind registers
itself with `@register` in its own module (see `base`), and every other place asks this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import roberta, wavlm, whisper  # noqa: F401  (each registers its class)
from .base import Encoder, lookup, register, registered

__all__ = ["encoder_class", "encoder_kinds", "load_encoder", "matching", "register"]


def encoder_class(kind: str) -> type:
    """The class registered under `kind` (`NotFound` names the known kinds otherwise)."""
    return lookup(kind)


def encoder_kinds() -> list[str]:
    return sorted(registered())


def load_encoder(
    kind: str,
    preset: str,
    *,
    models_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    layer: int | None = None,
    device: str = "cpu",
    texts: Iterable[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Encoder:
    """A ready-to-embed encoder of family `kind` with the preset's weights.

    `models_dir` is the store's `models` folder (where `tiny` and `paper-random` are built; required for
    them); `texts` are the corpus transcripts their tokenizers are trained on the first time. `model_dir`
    holds the paper checkpoints when they are not loaded by name. `options`: the class's own keyword
    options (its `option_choices`, e.g. Whisper's `window`).
    """
    from ..model.device import check_device
    from .presets import resolve

    check_device(device)  # one line naming --device, not a traceback from the model's .to(device)
    cls = encoder_class(kind)
    source = resolve(kind, preset, model_dir=model_dir, models_dir=models_dir, texts=texts)
    return cls(source, layer=layer, device=device, **dict(options or {}))


def matching(encoder: Encoder, fingerprint: str) -> Encoder:
    """`encoder` configured with the `option_choices` whose frames have `fingerprint` (a run trained on
    trimmed Whisper frames is predicted with trimmed Whisper), or `encoder` as it is when none match."""
    import itertools

    choices = getattr(type(encoder), "option_choices", {})
    if encoder.record.fingerprint == fingerprint or not choices:
        return encoder
    for values in itertools.product(*choices.values()):
        other = encoder.configured(**dict(zip(choices, values)))  # type: ignore[attr-defined]
        if other.record.fingerprint == fingerprint:
            return other
    return encoder
