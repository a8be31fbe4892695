"""`sertool embed`: every clip of the catalog through every frozen encoder, into the store.

The work is a list of units, one per (encoder, variant): `clean` for every encoder, plus each
augmentation for audio encoders. Text encoders see only the transcript, which augmenting the audio does
not change, so they have `clean` only; a reader of an augmented variant takes a text encoder's `clean`
frames (the training loader does: `train.data`, text encoders = `frame_rate IS NULL` in `encoders`).

Batches come from length bucketing: clips sorted by duration are packed while the batch's *padded*
audio (batch size x longest clip; for Whisper each clip is a 30 s window) stays within
`batch_seconds`. The bucket plan is made over all planned clips, before finished clips are dropped, so a
resumed run sees the same batches as an uninterrupted one and writes bit-identical frames.

Crash safety: each batch is one `writer.write` call — arrays first, then one catalog transaction — so a
kill leaves every batch either committed or invisible; a rerun skips committed clips and overwrites the
orphaned frames past the last committed row. The catalog is opened read-write for the whole run, so a
second `sertool embed` on the same store stops at once with `StoreInUse`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BadInput, InvalidOption, NotFound
from ..store.catalog import Catalog
from ..store.clips import clips_to_embed, record_skips as _record_skips
from ..store.layout import StoreLayout
from ..store.records import ClipSource
from .augment import CLEAN, augment, check_variants

if TYPE_CHECKING:
    from rich.console import Console

    from ..encoders.base import Encoder

DEFAULT_BATCH_SECONDS = {"cuda": 320.0, "cpu": 60.0}
"""Padded seconds of audio per forward call. On a GPU big batches fill the device (~10 Whisper windows,
~60 five-second clips for WavLM); on a CPU the tiny models are compute-bound and a few clips per call
already amortise the call overhead, while bigger buckets only add padding (bench/embed.py)."""


def default_batch_seconds(device: str) -> float:
    return DEFAULT_BATCH_SECONDS["cuda" if device.startswith("cuda") else "cpu"]


# -- what to embed -----------------------------------------------------------------------------------

def bucket_batches(
    clips: Sequence[ClipSource], batch_seconds: float, padded_seconds: Callable[[float], float] = float
) -> list[list[ClipSource]]:
    """Length bucketing: sort by duration and pack each batch while `len(batch) * longest padded clip`
    stays within `batch_seconds` (a clip longer than that goes alone); `padded_seconds` is what a clip
    of a given duration costs the encoder (its class's `padded_seconds`). Every clip lands in exactly
    one batch; the order only depends on the clips, so the plan is the same in every run."""
    if batch_seconds <= 0:
        raise InvalidOption("batch_seconds", f"must be positive, got {batch_seconds}")
    ordered = sorted(clips, key=lambda c: (c.duration_s, c.clip_id))
    batches: list[list[ClipSource]] = []
    cur: list[ClipSource] = []
    for clip in ordered:
        cost = padded_seconds(clip.duration_s)  # sorted ascending: the newcomer is the longest
        if cur and (len(cur) + 1) * cost > batch_seconds:
            batches.append(cur)
            cur = []
        cur.append(clip)
    if cur:
        batches.append(cur)
    return batches


# -- configuration and report ------------------------------------------------------------------------

@dataclass(frozen=True)
class EmbedConfig:
    """Everything `sertool embed` was asked to do."""

    preset: str = "tiny"
    """`tiny` (offline, built into the store) or `paper` (the real checkpoints)."""
    encoders: tuple[str, ...] = ("whisper", "wavlm", "roberta")
    layer: int | None = None
    """Hidden layer to take (None = each encoder's last)."""
    model_dir: Path | None = None
    """Local directory of the paper checkpoints (otherwise the Hugging Face cache)."""
    augment: tuple[str, ...] = ()
    """Augmented variants to store besides `clean`: any of noise, reverb, gain."""
    device: str = "cpu"
    batch_seconds: float | None = None
    """Padded audio seconds per forward call (None: `default_batch_seconds(device)`)."""
    seed: int = 0
    """Global augmentation seed; each clip's augmentation derives from (seed, clip id, variant)."""
    splits: tuple[str, ...] | None = None
    """Only clips of these corpus splits (None = all)."""
    skip_bad: bool = False
    """Record unreadable audio in `skipped` and go on, instead of stopping with `BadInput`."""

    def __post_init__(self) -> None:
        from ..encoders.registry import encoder_kinds
        from ..model.device import check_device

        check_device(self.device)  # before anything is read or written

        kinds = encoder_kinds()
        unknown = [e for e in self.encoders if e not in kinds]
        if unknown or not self.encoders:
            raise InvalidOption("encoders", f"unknown encoder {', '.join(unknown) or '(none)'}: choose from {', '.join(kinds)}")
        check_variants(list(self.augment))
        if self.batch_seconds is None:
            object.__setattr__(self, "batch_seconds", default_batch_seconds(self.device))
        if not self.batch_seconds > 0:
            raise InvalidOption("batch_seconds", f"must be positive, got {self.batch_seconds}")

    def modalities(self) -> set[str]:
        """Which inputs the requested encoders read: `audio`, `text` or both (from the registry)."""
        from ..encoders.registry import encoder_class

        return {encoder_class(k).modality for k in self.encoders}


@dataclass
class UnitReport:
    """What happened to one (encoder, variant)."""

    encoder: str
    variant: str
    already: int
    written: int
    frames: int = 0
    seconds: float = 0.0


@dataclass
class EmbedReport:
    units: list[UnitReport] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    """(clip_id, path, reason) of unreadable clips recorded in `skipped` (with `skip_bad`)."""

    @property
    def written(self) -> int:
        return sum(u.written for u in self.units)

    @property
    def nothing_to_do(self) -> bool:
        return self.written == 0


# -- checks before any work --------------------------------------------------------------------------

def check_transcripts(layout: StoreLayout, clips: Sequence[ClipSource], cfg: "EmbedConfig") -> None:
    """Text encoders need a transcript for every clip: fail before any work, naming the first clip.

    Only a missing transcript (NULL) stops the run. An empty one is an answer: the corpus file is
    empty or ASR heard no words (silence, music), and RoBERTa embeds it as its `<s></s>` frames.
    """
    from ..encoders.registry import encoder_class

    missing = [c for c in clips if c.transcript is None]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        text = [k for k in cfg.encoders if encoder_class(k).modality == "text"]
        audio = [k for k in cfg.encoders if k not in text]
        raise BadInput(
            layout.catalog,
            f"clip {missing[0].clip_id}{more} has no transcript for {', '.join(text)}; run `sertool transcribe` "
            f"first, or leave {', '.join(text)} out (--encoders {','.join(audio) or '...'})",
            field="transcript",
        )


def check_audio(clips: Sequence[ClipSource]) -> tuple[list[ClipSource], list[tuple[ClipSource, str]]]:
    """Read every clip's header (cheap: no decode) so a bad file stops the run before anything is
    written. Returns the readable clips (durations filled from the header) and the bad ones."""
    import soundfile as sf

    good, bad = [], []
    for c in clips:
        try:
            info = sf.info(str(c.path))
            if info.frames == 0:
                raise ValueError("audio file has no samples")
        except Exception as e:
            bad.append((c, str(e).strip() or type(e).__name__))
            continue
        if math.isnan(c.duration_s):
            c = ClipSource(c.clip_id, c.path, info.frames / info.samplerate, c.transcript)
        good.append(c)
    return good, bad


def record_skips(catalog: Catalog, bad: Sequence[tuple[ClipSource, str]]) -> None:
    """Bad clips go to `skipped` in one transaction (the same table `ingest --skip-bad` fills)."""
    _record_skips(catalog, [(clip.clip_id, f"embed: unreadable audio: {reason}") for clip, reason in bad])


# -- running -----------------------------------------------------------------------------------------

def _batch_inputs(encoder: "Encoder", batch: list[ClipSource], *, variant: str, seed: int) -> list:
    from ..audio import load_audio

    if encoder.modality == "text":
        return [c.transcript for c in batch]
    return [augment(load_audio(c.path), variant, clip_id=c.clip_id, seed=seed) for c in batch]


def _prefetched(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """(item, fn(item)) in order, computing the next item's input on a thread while the caller works:
    audio decoding and augmentation overlap the forward pass."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sertool-load") as pool:
        fut = pool.submit(fn, items[0])
        for i, item in enumerate(items):
            result = fut.result()
            if i + 1 < len(items):
                fut = pool.submit(fn, items[i + 1])
            yield item, result


def load_encoders(layout: StoreLayout, cfg: EmbedConfig, texts: Sequence[str]) -> list["Encoder"]:
    """The requested encoders, built with the preset's weights (tiny ones are built on first use)."""
    from ..encoders.registry import load_encoder

    return [
        load_encoder(
            kind, cfg.preset, model_dir=cfg.model_dir, layer=cfg.layer, device=cfg.device,
            models_dir=layout.models, texts=texts,
        )
        for kind in cfg.encoders
    ]


def units_for(encoder: "Encoder", augment_: Sequence[str]) -> list[str]:
    """Variants one encoder stores: text encoders have `clean` only (see module docstring)."""
    return [CLEAN] if encoder.modality == "text" else [CLEAN, *augment_]


def embed_store(
    layout: StoreLayout,
    cfg: EmbedConfig,
    *,
    console: "Console | None" = None,
    encoders: Sequence["Encoder"] | None = None,
    select_batches: Callable[[str, str, list[list[ClipSource]]], list[list[ClipSource]]] | None = None,
) -> EmbedReport:
    """Embed every planned clip with every requested encoder and variant; resumable and idempotent.

    `console` shows a rich progress bar (clips/s, ETA) when given. `encoders` overrides loading from
    the preset (benchmarks and tests reuse loaded models). `select_batches(encoder, variant, plan)` keeps
    part of each unit's bucket plan (one worker's part: `jobs.embed_parts`).
    """
    from ..model.precision import autocast
    from ..progress import progress_bar
    from ..store.embeddings import EmbeddingStore

    report = EmbedReport()
    with Catalog(layout.catalog) as catalog:  # read-write for the whole run: one embedder per store
        clips = clips_to_embed(catalog, cfg.splits)
        if not clips:
            where = f" in split(s) {', '.join(cfg.splits)}" if cfg.splits else ""
            raise NotFound(f"{layout.catalog}: no clips{where} to embed (run `sertool ingest` first)")
        if "text" in cfg.modalities():
            check_transcripts(layout, clips, cfg)
        if "audio" in cfg.modalities():
            clips, bad = check_audio(clips)
            if bad and not cfg.skip_bad:
                clip, reason = bad[0]
                more = f" ({len(bad) - 1} more unreadable; --skip-bad records and skips them)" if len(bad) > 1 else ""
                raise BadInput(clip.path, f"cannot read audio ({reason}){more}", field="audio")
            if bad:
                record_skips(catalog, bad)
                report.skipped = [(c.clip_id, str(c.path), r) for c, r in bad]
        if encoders is None:
            encoders = load_encoders(layout, cfg, [c.transcript for c in clips if c.transcript])
        store = EmbeddingStore(layout)

        with ExitStack() as stack:
            # Open every unit's writer first: a fingerprint mismatch stops the run before any work, and
            # each writer knows which clips its (encoder, variant) already holds.
            todo: list[tuple["Encoder", str, Any, list[list[ClipSource]]]] = []
            for enc in encoders:
                plan = bucket_batches(clips, cfg.batch_seconds, type(enc).padded_seconds)
                for variant in units_for(enc, cfg.augment):
                    writer = stack.enter_context(store.open_writer(catalog, enc.record, variant))
                    done = writer.done()
                    mine = plan if select_batches is None else select_batches(enc.record.name, variant, plan)
                    batches = [b for b in ([c for c in b if c.clip_id not in done] for b in mine) if b]
                    todo.append((enc, variant, writer, batches))
                    left = sum(map(len, batches))
                    report.units.append(UnitReport(enc.record.name, variant, already=sum(map(len, mine)) - left, written=0))
            total = sum(sum(map(len, b)) for *_, b in todo)

            with progress_bar(console if total else None, unit="clips") as progress:
                task = progress.add_task("embedding", total=total)
                for (enc, variant, writer, batches), unit in zip(todo, report.units):
                    if not batches:
                        continue
                    progress.update(task, description=f"{enc.record.name}/{variant}")
                    t0 = time.perf_counter()
                    loader = partial(_batch_inputs, enc, variant=variant, seed=cfg.seed)
                    for batch, inputs in _prefetched(loader, batches):
                        with autocast(cfg.device)[0]:
                            frames = enc.embed(inputs)
                        writer.write([(c.clip_id, np.asarray(f, dtype=np.float32)) for c, f in zip(batch, frames)])
                        unit.written += len(batch)
                        unit.frames += sum(int(f.shape[0]) for f in frames)
                        progress.advance(task, len(batch))
                    unit.seconds = time.perf_counter() - t0
    return report
