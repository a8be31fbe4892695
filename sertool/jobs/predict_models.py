"""The models behind a prediction: fusion checkpoints, and the frozen encoders they were trained on.

Shared by `sertool predict` (checkpoints downloaded from the tracking store, encoders resolved against
the store's catalog) and exported pyfunc models (`jobs.export`: both come from the model's own folder).
Either way every encoder is checked by fingerprint against what the checkpoints were trained on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, StoreMismatch
from ..store.layout import StoreLayout

if TYPE_CHECKING:
    from ..encoders.base import Encoder
    from ..store.records import StoredEncoder
    from ..tracking.tracker import Tracker
    from .predict import PredictConfig

EncoderSource = tuple[str, "int | None", str, "Path | None"]
"""How to rebuild one encoder: (kind, layer, preset, model_dir)."""
Wanted = dict[str, tuple[str, str, dict]]
"""Encoder name -> (fingerprint, the run that needs it, its checkpoint's description of it)."""


@dataclass
class Loaded:
    models: dict[str, Any]
    """Training run id -> FusionModel (eval mode)."""
    encoders: dict[str, "Encoder"]
    asr: Any | None


def _stored(layout: StoreLayout) -> dict[str, "StoredEncoder"]:
    """The encoder configurations of the store's catalog, if it has one."""
    if not layout.catalog.exists():
        return {}
    from ..store.catalog import Catalog
    from ..store.embeddings import stored_encoders

    with Catalog(layout.catalog, read_only=True) as cat:
        return stored_encoders(cat)


def _source(layout: StoreLayout, cfg: "PredictConfig", name: str, stored: dict[str, "StoredEncoder"],
            meta: dict[str, Any]) -> EncoderSource:
    """(kind, layer, preset, model_dir) to rebuild encoder `name` as the store embedded with it: kind and
    layer from the catalog's `encoders` row, else from what the checkpoint recorded; never from the name."""
    from ..encoders.presets import BUILT

    checkpoint = None
    if name in stored:
        kind, layer, checkpoint = stored[name].kind, stored[name].layer, stored[name].checkpoint
    elif "kind" in meta:
        kind, layer = meta["kind"], meta.get("layer")
    else:
        raise NotFound(f"encoder {name!r} is not in the catalog of {layout.root}, and the run's checkpoint does "
                       "not record its kind: pass the --store the run was trained on")
    if cfg.preset:
        return kind, layer, cfg.preset, cfg.model_dir
    if checkpoint is not None:
        for preset in BUILT:  # `sertool-tiny/wavlm`, `sertool-paper-random/wavlm`
            if str(checkpoint).startswith(f"sertool-{preset}/"):
                return kind, layer, preset, None
        local = Path(str(checkpoint))
        if cfg.model_dir is None and local.is_absolute() and local.is_dir():
            return kind, layer, "paper", local.parent
        return kind, layer, "paper", cfg.model_dir
    tiny_built = (layout.models / "tiny" / "tiny.json").exists()
    return kind, layer, "tiny" if tiny_built else "paper", cfg.model_dir


def encoder_sources(layout: StoreLayout, cfg: "PredictConfig", wanted: Wanted) -> dict[str, EncoderSource]:
    """How to rebuild each wanted encoder as the store embedded with it (`_source`)."""
    stored = _stored(layout)
    return {name: _source(layout, cfg, name, stored, meta) for name, (_, _, meta) in wanted.items()}


def _corpus_texts(layout: StoreLayout) -> list[str] | None:
    """What the tiny tokenizers were trained on, should the tiny models need building here."""
    if not layout.catalog.exists():
        return None
    from ..store.catalog import Catalog
    from ..store.clips import corpus_transcripts

    with Catalog(layout.catalog, read_only=True) as cat:
        return corpus_transcripts(cat)


def read_checkpoints(checkpoints: Mapping[str, tuple[Path, dict, str]], device: str) -> tuple[dict[str, Any], Wanted]:
    """Run id -> (weights, config, label) as models, and the encoders they need (one fingerprint each)."""
    from ..train.checkpoint import CheckpointInfo, load_model

    models: dict[str, Any] = {}
    wanted: Wanted = {}
    for rid, (weights, config, label) in checkpoints.items():
        info = CheckpointInfo.from_dict(config, f"run {label}")
        for name, meta in info.encoders.items():
            fp = str(meta.get("fingerprint"))
            if name in wanted and wanted[name][0] != fp:
                raise StoreMismatch(f"runs {wanted[name][1]} and {label} were trained on different {name} "
                                    f"encoders (fingerprints {wanted[name][0]} and {fp}); cannot share frames")
            wanted.setdefault(name, (fp, label, meta))
        models[rid] = load_model(weights, info).to(device).eval()
    return models, wanted


def build_encoders(wanted: Wanted, sources: Mapping[str, EncoderSource], device: str, models_dir: Path,
                   need_asr: bool, texts: Any = None, whisper_window: str | None = None,
                   ) -> tuple[dict[str, "Encoder"], Any]:
    """The encoders (and Whisper ASR where a text encoder needs transcripts), each checked by fingerprint.
    `texts()`: the transcripts to build the built presets' tokenizers from, asked only if they must be
    built. `whisper_window` None: the window the run's frames were made with (found by fingerprint)."""
    from ..encoders.presets import BUILT
    from ..encoders.registry import load_encoder, matching

    encoders: dict[str, "Encoder"] = {}
    text_preset: tuple[str, Path | None] | None = None
    corpus = None
    for name, (fp, label, _meta) in wanted.items():
        kind, layer, preset, model_dir = sources[name]
        if preset in BUILT and not (models_dir / preset / f"{preset}.json").exists() and corpus is None:
            corpus = (texts() if texts else None) or []  # built here on first use: tokenizers from the corpus
        options = {"window": whisper_window} if kind == "whisper" and whisper_window else None
        enc = load_encoder(kind, preset, model_dir=model_dir, layer=layer, device=device, models_dir=models_dir,
                           texts=corpus, options=options)
        enc = enc if options else matching(enc, fp)  # the window the run's frames were made with
        got = enc.record.fingerprint
        if got != fp:
            raise StoreMismatch(
                f"run {label} was trained on {name} frames with fingerprint {fp}, but the {name} encoder loaded "
                f"here ({preset} preset, {enc.record.checkpoint}) has fingerprint {got}: pass the --preset / "
                f"--model-dir (and --store) the run's embeddings were made with"
            )
        encoders[name] = enc
        if enc.modality == "text":
            text_preset = (preset, model_dir)
    asr = None
    if need_asr and text_preset is not None:
        from ..encoders.asr import load_asr

        asr = load_asr(text_preset[0], model_dir=text_preset[1], device=device, models_dir=models_dir)
    return encoders, asr


def download_checkpoints(tracker: "Tracker", run_ids: Sequence[str], tmp: Path) -> dict[str, tuple[Path, dict, str]]:
    """Run id -> (weights, config, `name (id)`) of each run's checkpoint, downloaded under `tmp`."""
    out = {}
    for rid in run_ids:
        run = tracker.get_run(rid)
        weights, config = tracker.load_checkpoint(rid, tmp / rid)
        out[rid] = (weights, config, f"{run.name} ({rid[:8]})")
    return out


def load_models(
    tracker: "Tracker", layout: StoreLayout, run_ids: Sequence[str], cfg: "PredictConfig", need_asr: bool
) -> Loaded:
    """Each run's checkpoint, and the encoders they were trained on, refusing any fingerprint mismatch."""
    with tempfile.TemporaryDirectory(prefix="sertool-predict-") as tmp:
        models, wanted = read_checkpoints(download_checkpoints(tracker, run_ids, Path(tmp)), cfg.device)
    encoders, asr = build_encoders(wanted, encoder_sources(layout, cfg, wanted), cfg.device, layout.models, need_asr,
                                   texts=lambda: _corpus_texts(layout), whisper_window=cfg.whisper_window)
    return Loaded(models, encoders, asr)
