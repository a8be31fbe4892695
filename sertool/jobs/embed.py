"""`sertool embed`: every clip of the catalog through every frozen encoder, into the store.

The work is a list of units, one per (encoder, variant): `clean` for every audio encoder, plus each
augmentation. Text encoders see only the transcript, which augmenting the audio does not change, so they
have one variant per text choice (`--text`: `clean` for the preferred transcript, `text-corpus`,
`text-asr`; `store.transcripts`); a reader of an augmented variant takes a text encoder's text variant
(the training loader does: `train.data`, text encoders = `frame_rate IS NULL` in `encoders`). Each text
row records the text it embedded (source and SHA-256); a row whose text has changed since is deleted at
the start of the run and embedded again, like a row whose audio has changed.

Batches come from length bucketing: clips sorted by duration are packed while the batch's *padded*
audio (batch size x longest clip; for padded Whisper each clip is a 30 s window) stays within
`batch_seconds`. The bucket plan is made over all planned clips, before finished clips are dropped, so a
resumed run sees the same batches as an uninterrupted one and writes bit-identical frames.

Crash safety: each batch is one `writer.write` call — arrays first, then one catalog transaction — so a
kill leaves every batch either committed or invisible; a rerun skips committed clips and overwrites the
orphaned frames past the last committed row. The run holds the store's writer lock throughout, so a
second `sertool embed` on the same store stops at once with `StoreInUse`, but lets go of the DuckDB file
between commits whenever a reader asks (`Catalog(hold=False)`): `store query`, training, workers read.

Bad input is per clip and found before any work where the catalog and file headers tell, else while
its batch loads, before that batch writes anything; `--skip-bad` records it in `skipped` instead
(`embed_checks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import DEFAULT_MAX_SECONDS, DEFAULT_MAX_TRANSCRIPT_CHARS, MIN_SECONDS
from ..errors import InvalidOption
from ..store.catalog import Catalog
from ..store.layout import StoreLayout
from ..store.provenance import unchecked_rows
from ..store.records import ClipSource
from ..store.transcripts import PREFERRED, check_text_choice, refresh_text, text_variant, untracked_text_rows
from .augment import CLEAN, check_variants
from .embed_checks import (  # noqa: F401  (check_audio, record_skips: embed_parts and callers import them here)
    admit_clips,
    check_audio,
    check_transcripts,
    load_batch,
    record_skips,
    refresh_changed_audio,
    skip_or_stop,
    with_text,
)

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

    preset: str = "paper"
    """`paper` (the real checkpoints) or `tiny` (offline, random weights, built into the store: tests, demo)."""
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
    """Record bad clips (unreadable audio, NaN samples, too short or too long, transcripts over the limit)
    in `skipped` and go on, instead of stopping with `BadInput`."""
    max_seconds: float = DEFAULT_MAX_SECONDS
    """Longest clip to embed (`audio.DEFAULT_MAX_SECONDS`); a longer one is bad input."""
    max_transcript_chars: int = DEFAULT_MAX_TRANSCRIPT_CHARS
    """Longest transcript text encoders take; a longer one is bad input."""
    whisper_window: str = "padded"
    """`padded` (the paper's: every clip in a 30 s window) or `trimmed` (the clip's own length; its own
    fingerprint, so the two never share an array): `encoders.whisper`."""
    text: str = PREFERRED
    """Which transcript text encoders read (`store.transcripts.TEXT_CHOICES`): `preferred` (the corpus's,
    else ASR's; variant `clean`, as ever), `corpus` (clips without one are left out) or `asr`; each its own
    variant (`text_variant`)."""

    def __post_init__(self) -> None:
        from ..encoders.registry import encoder_kinds
        from ..model.device import check_device

        check_device(self.device)  # before anything is read or written

        kinds = encoder_kinds()
        unknown = [e for e in self.encoders if e not in kinds]
        if unknown or not self.encoders:
            raise InvalidOption("encoders", f"unknown encoder {', '.join(unknown) or '(none)'}: choose from {', '.join(kinds)}")
        check_variants(list(self.augment))
        from ..encoders.whisper import check_window

        check_window(self.whisper_window)
        check_text_choice(self.text)
        if self.batch_seconds is None:
            object.__setattr__(self, "batch_seconds", default_batch_seconds(self.device))
        if not self.batch_seconds > 0:
            raise InvalidOption("batch_seconds", f"must be positive, got {self.batch_seconds}")
        if not self.max_seconds >= MIN_SECONDS:
            raise InvalidOption("max_seconds", f"must be at least {MIN_SECONDS} (the shortest clip), "
                                               f"got {self.max_seconds}")
        if not self.max_transcript_chars >= 0:
            raise InvalidOption("max_transcript_chars", f"must not be negative, got {self.max_transcript_chars}")

    def encoder_options(self) -> dict[str, dict[str, str]]:
        """Each encoder kind's own options (`load_encoder(options=...)`)."""
        return {"whisper": {"window": self.whisper_window}}

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
    """(clip_id, path, reason) of bad clips recorded in `skipped` (with `skip_bad`)."""
    readmitted: list[str] = field(default_factory=list)
    """Clips an earlier embed skipped that passed every check again: taken back and embedded."""
    remade: list[tuple[str, str, str]] = field(default_factory=list)
    """(clip, encoder, variant) rows made from audio that has changed since: deleted and embedded again."""
    stale_left: list[tuple[str, str, str]] = field(default_factory=list)
    """Rows of encoders or variants this run does not embed, made from audio that has changed since."""
    unchecked: int = 0
    """Rows of this run's encoders and variants without a frame checksum (embedded before sertool kept them)."""
    text_remade: list[tuple[str, str, str]] = field(default_factory=list)
    """(clip, encoder, variant) text rows whose transcript changed since: deleted and embedded again."""
    text_stale_left: list[tuple[str, str, str]] = field(default_factory=list)
    """Rows of text variants this run does not embed whose transcript changed since."""
    untracked_text: int = 0
    """Rows of this run's text encoders that record no text (embedded before sertool kept it)."""

    @property
    def written(self) -> int:
        return sum(u.written for u in self.units)

    @property
    def nothing_to_do(self) -> bool:
        return self.written == 0


# -- running -----------------------------------------------------------------------------------------

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
            models_dir=layout.models, texts=texts, options=cfg.encoder_options().get(kind),
        )
        for kind in cfg.encoders
    ]


def units_for(encoder: "Encoder", augment_: Sequence[str], text: str = PREFERRED) -> list[str]:
    """Variants one encoder stores: text encoders one, the text choice's (`clean` for the preferred
    transcript: see module docstring)."""
    return [text_variant(text)] if encoder.modality == "text" else [CLEAN, *augment_]


def embed_store(
    layout: StoreLayout,
    cfg: EmbedConfig,
    *,
    console: "Console | None" = None,
    encoders: Sequence["Encoder"] | None = None,
    select_batches: Callable[[str, str, list[list[ClipSource]]], list[list[ClipSource]]] | None = None,
    recheck_skipped: bool = True,
) -> EmbedReport:
    """Embed every planned clip with every requested encoder and variant; resumable and idempotent.

    `console` shows a rich progress bar (clips/s, ETA) when given. `encoders` overrides loading from
    the preset (benchmarks and tests reuse loaded models). `select_batches(encoder, variant, plan)` keeps
    part of each unit's bucket plan (one worker's part: `jobs.embed_parts`). `recheck_skipped`: take
    back clips an earlier embed skipped that pass every check now (`embed_checks`; parts do not, as a
    merge does not carry a segment's dropped skips).
    """
    from ..model.precision import autocast
    from ..progress import progress_bar
    from ..store.embeddings import EmbeddingStore

    report = EmbedReport()
    # The writer lock for the whole run (a second writer gets StoreInUse); the DuckDB file only while no reader asks.
    with Catalog(layout.catalog, hold=False) as catalog:
        clips = admit_clips(catalog, layout, cfg, report, recheck=recheck_skipped)
        found: set[str] = set()  # clips found bad while loading (with skip_bad): later units leave them out
        if encoders is None:
            encoders = load_encoders(layout, cfg, [c.transcript for c in clips if c.transcript])
        store = EmbeddingStore(layout)
        if recheck_skipped and "audio" in cfg.modalities():
            units = [(e.record.name, v) for e in encoders if e.modality == "audio" for v in units_for(e, cfg.augment, cfg.text)]
            refreshed = refresh_changed_audio(catalog, clips, units)
            report.remade, report.stale_left = refreshed.remade, refreshed.left
        text_units = [(e.record.name, v) for e in encoders if e.modality == "text" for v in units_for(e, (), cfg.text)]
        if recheck_skipped and text_units:
            report.text_remade, report.text_stale_left = refresh_text(catalog, text_units)
            report.untracked_text = untracked_text_rows(catalog, [e for e, _ in text_units])
        text_clips, text_prov = with_text(catalog, clips, cfg.text) if text_units else (clips, {})
        text_clips = [c for c in text_clips if c.transcript is not None]  # `corpus`: Test3 has none
        if recheck_skipped:
            report.unchecked = unchecked_rows(
                catalog, [(e.record.name, v) for e in encoders for v in units_for(e, cfg.augment, cfg.text)])

        with ExitStack() as stack:
            # Open every unit's writer first: a fingerprint mismatch stops the run before any work, and
            # each writer knows which clips its (encoder, variant) already holds.
            todo: list[tuple["Encoder", str, Any, list[list[ClipSource]]]] = []
            for enc in encoders:
                # the instance's cost (trimmed Whisper: a clip's own length)
                plan = bucket_batches(text_clips if enc.modality == "text" else clips, cfg.batch_seconds,
                                      enc.padded_seconds)
                for variant in units_for(enc, cfg.augment, cfg.text):
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
                    loader = partial(load_batch, enc, variant=variant, seed=cfg.seed, max_seconds=cfg.max_seconds,
                                     exclude=found)
                    for planned, (batch, inputs, bad, stamps) in _prefetched(loader, batches):
                        skip_or_stop(catalog, cfg, report, bad, found)  # before this batch writes anything
                        if not batch:
                            progress.advance(task, len(planned))
                            continue
                        with autocast(cfg.device)[0]:
                            frames = enc.embed(inputs)
                        writer.write([(c.clip_id, np.asarray(f, dtype=np.float32)) for c, f in zip(batch, frames)],
                                     audio=stamps, text=text_prov if enc.modality == "text" else None)
                        unit.written += len(batch)
                        unit.frames += sum(int(f.shape[0]) for f in frames)
                        progress.advance(task, len(planned))
                    unit.seconds = time.perf_counter() - t0
    return report
