"""The checks `sertool embed` makes on its clips, and what it does with a bad one.

Bad input is per clip: a file that cannot be read, audio shorter than `audio.MIN_SAMPLES` (25 ms) or
longer than `--max-seconds`, NaN or infinite samples, a transcript over `--max-transcript-chars`.
Without `--skip-bad` the first one stops the run with one line naming the file and field (exit 2);
with it, the clip goes to `skipped` (reason `embed: <field>: <message>`) and the run goes on.

Two moments find them:

- before any work (`admit_clips`): what the catalog and each file's header tell, cheaply, for every
  clip. A bad clip stops the run with the store exactly as it was.
- while each batch loads (`load_batch`, on the loader thread): what only decoding shows (NaN samples,
  a file cut short after its header). The run stops before that batch writes anything; the batches
  committed before it stay, and a rerun after fixing the file resumes from them. Decoding every file
  up front instead would read the whole corpus twice.

A clip that embed itself put in `skipped` (reason `embed:`) is re-checked at the start of every run,
decoded (they are few); when it passes every check now, it leaves `skipped` and is embedded with the
others. Skips that ingest recorded are ingest's to revisit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..audio import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_TRANSCRIPT_CHARS,
    check_length,
    file_stamp,
    load_audio,
    load_audio_stamped,
    read_header,
    resampled_length,
)
from ..errors import BadInput, NotFound
from ..store.catalog import Catalog
from ..store.clips import clips_to_embed, record_skips as _record_skips, skipped_by
from ..store.layout import StoreLayout
from ..store.provenance import AudioRefresh, audio_stamps, hashed_clips, refresh_audio
from ..store.records import ClipSource
from ..store.transcripts import ASR, CORPUS, PREFERRED, clip_texts, text_sha256
from .augment import augment

if TYPE_CHECKING:
    from ..audio import FileStamp
    from ..encoders.base import Encoder
    from .embed import EmbedConfig, EmbedReport

EMBED_SKIP = "embed:"
"""How the `skipped` reasons embed writes begin (ingest writes its own): embed re-checks these."""

Bad = tuple[ClipSource, BadInput]
"""A clip and what is wrong with it (file, field, message)."""


def reason(e: BadInput) -> str:
    return f"{e.field}: {e.message}" if e.field else e.message


def first_of(bad: Sequence[Bad]) -> BadInput:
    """The error to stop with: the first bad clip, and how many more there are."""
    e = bad[0][1]
    if len(bad) == 1:
        return e
    return BadInput(e.file, f"{e.message} ({len(bad) - 1} more bad clip(s); --skip-bad records and skips them)",
                    row=e.row, field=e.field)


def check_transcripts(layout: StoreLayout, clips: Sequence[ClipSource], cfg: "EmbedConfig",
                      readmit: frozenset[str] = frozenset()) -> None:
    """Text encoders need a transcript for every clip: fail before any work, naming the first clip.

    Only a missing transcript (NULL) stops the run. An empty one is an answer: the corpus file is
    empty or ASR heard no words (silence, music), and RoBERTa embeds it as its `<s></s>` frames.
    `readmit`: clips leaving `skipped` in this run (transcribe does not see them before they have).
    """
    from ..encoders.registry import encoder_class

    if cfg.text == CORPUS:
        return  # a clip the corpus gave no transcript (Test3) has no text of this choice: left out, not bad
    missing = [c for c in clips if c.transcript is None]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        text = [k for k in cfg.encoders if encoder_class(k).modality == "text"]
        audio = [k for k in cfg.encoders if k not in text]
        todo = "run `sertool transcribe` first"
        if cfg.text == ASR:
            todo = "run `sertool transcribe --all` first (ASR for clips with a corpus transcript too)"
        if missing[0].clip_id in readmit:  # transcribe skips clips in `skipped`: an audio-only embed takes it back
            todo = ("it is in `skipped` from an earlier embed: run `sertool embed --encoders "
                    f"{','.join(audio) or '...'}` (which takes it back), then `sertool transcribe`")
        which = "" if cfg.text == PREFERRED else f"{cfg.text} "
        raise BadInput(
            layout.catalog,
            f"clip {missing[0].clip_id}{more} has no {which}transcript for {', '.join(text)}; {todo}, or leave "
            f"{', '.join(text)} out (--encoders {','.join(audio) or '...'})",
            field="transcript",
        )


def with_text(catalog: Catalog, clips: Sequence[ClipSource],
              choice: str) -> tuple[list[ClipSource], dict[str, tuple[str | None, str]]]:
    """The clips carrying text choice `choice` as their transcript (None where they have none), and
    clip -> (source, SHA-256) of that text: what a text encoder's rows record (`store.transcripts`)."""
    if choice == PREFERRED:  # the clips' own transcript; the catalog says where it came from
        sources = clip_texts(catalog, PREFERRED)
        return list(clips), {c.clip_id: (sources.get(c.clip_id, (None, None))[1], text_sha256(c.transcript))
                             for c in clips if c.transcript is not None}
    texts = clip_texts(catalog, choice)
    chosen = [ClipSource(c.clip_id, c.path, c.duration_s, texts[c.clip_id][0] if c.clip_id in texts else None)
              for c in clips]
    prov = {c.clip_id: (choice, text_sha256(c.transcript)) for c in chosen if c.transcript is not None}
    return chosen, prov


def long_transcripts(layout: StoreLayout, clips: Sequence[ClipSource],
                     max_chars: int = DEFAULT_MAX_TRANSCRIPT_CHARS) -> list[Bad]:
    """Clips whose transcript is longer than `max_chars` (bad input: `audio.DEFAULT_MAX_TRANSCRIPT_CHARS`)."""
    return [
        (c, BadInput(layout.catalog, f"clip {c.clip_id}: transcript is {len(c.transcript):,} characters, over the "
                                     f"{max_chars:,} limit (--max-transcript-chars)", field="transcript"))
        for c in clips if c.transcript is not None and len(c.transcript) > max_chars
    ]


def check_audio(clips: Sequence[ClipSource],
                max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[list[ClipSource], list[Bad]]:
    """Read every clip's header (cheap: no decode) so a bad file stops the run before anything is
    written: unreadable, empty, shorter than 25 ms or longer than `max_seconds`. Returns the good clips
    (durations filled from the header) and the bad."""
    good, bad = [], []
    for c in clips:
        try:
            frames, rate = read_header(c.path)
            check_length(c.path, resampled_length(frames, rate), max_seconds)
        except BadInput as e:
            bad.append((c, e))
            continue
        if math.isnan(c.duration_s):
            c = ClipSource(c.clip_id, c.path, frames / rate, c.transcript)
        good.append(c)
    return good, bad


def record_skips(catalog: Catalog, bad: Sequence[Bad], readmit: Sequence[str] = ()) -> None:
    """Bad clips go to `skipped` (the same table `ingest --skip-bad` fills) and `readmit` clips leave it,
    in one transaction."""
    _record_skips(catalog, [(clip.clip_id, f"{EMBED_SKIP} {reason(e)}") for clip, e in bad], readmit)


def readmittable(catalog: Catalog, cfg: "EmbedConfig") -> list[ClipSource]:
    """Clips embed skipped earlier that pass every check now: the audio decodes, within bounds, with
    finite samples (whatever the encoders: the skip may have been about audio), and, where a text
    encoder runs, the transcript is within the limit."""
    ok = []
    for c in skipped_by(catalog, EMBED_SKIP, cfg.splits):
        try:
            frames, rate = read_header(c.path)  # before decoding, so a huge file is not read just to refuse it
            check_length(c.path, resampled_length(frames, rate), cfg.max_seconds)
            check_length(c.path, len(load_audio(c.path)), cfg.max_seconds)
        except BadInput:
            continue
        if "text" in cfg.modalities() and len(c.transcript or "") > cfg.max_transcript_chars:
            continue
        ok.append(c if not math.isnan(c.duration_s) else ClipSource(c.clip_id, c.path, frames / rate, c.transcript))
    return ok


def admit_clips(catalog: Catalog, layout: StoreLayout, cfg: "EmbedConfig", report: "EmbedReport", *,
                recheck: bool = True) -> list[ClipSource]:
    """The clips to embed, after every check that needs no model. A bad clip stops the run here with
    nothing changed, or (`skip_bad`) goes to `skipped`; clips embed skipped before that pass now
    (`recheck`) leave `skipped` in the same transaction."""
    clips = clips_to_embed(catalog, cfg.splits)
    again = readmittable(catalog, cfg) if recheck else []
    if not clips and not again:
        where = f" in split(s) {', '.join(cfg.splits)}" if cfg.splits else ""
        raise NotFound(f"{layout.catalog}: no clips{where} to embed (run `sertool ingest` first)")
    clips = sorted([*clips, *again], key=lambda c: c.clip_id)
    bad: list[Bad] = []
    if "text" in cfg.modalities():
        chosen, _ = with_text(catalog, clips, cfg.text)
        check_transcripts(layout, chosen, cfg, frozenset(c.clip_id for c in again))
        bad += long_transcripts(layout, chosen, cfg.max_transcript_chars)
    if "audio" in cfg.modalities():
        clips, unreadable = check_audio(clips, cfg.max_seconds)
        bad += unreadable
    once: dict[str, Bad] = {}
    for b in sorted(bad, key=lambda b: b[0].clip_id):
        once.setdefault(b[0].clip_id, b)  # a clip bad twice (transcript and audio) is named once
    bad = list(once.values())
    if bad and not cfg.skip_bad:
        raise first_of(bad)
    if bad or again:
        record_skips(catalog, bad, [c.clip_id for c in again])
    report.skipped += [(c.clip_id, str(c.path), reason(e)) for c, e in bad]
    report.readmitted += [c.clip_id for c in again]
    return [c for c in clips if c.clip_id not in once]


def load_batch(encoder: "Encoder", batch: list[ClipSource], *, variant: str, seed: int, max_seconds: float,
               exclude: set[str]) -> tuple[list[ClipSource], list, list[Bad], dict[str, FileStamp]]:
    """(clips, their inputs, bad clips, the stamps of the audio decoded) of one batch, decoded and checked
    on the loader thread. Problems only decoding shows come back per clip, so the caller stops before
    writing or skips just that clip; clips in `exclude` (found bad earlier in this run) are left out.
    Each file's bytes are hashed as they are read (`audio.load_audio_stamped`): the rows record the audio
    their frames came from at no second read."""
    clips = [c for c in batch if c.clip_id not in exclude]
    if encoder.modality == "text":
        return clips, [c.transcript for c in clips], [], {}
    kept, inputs, bad, stamps = [], [], [], {}
    for c in clips:
        try:
            wav, stamps[c.clip_id] = load_audio_stamped(c.path)  # BadInput: a decode error, NaN / inf samples
            check_length(c.path, len(wav), max_seconds)  # the header may not tell the decoded length
        except BadInput as e:
            bad.append((c, e))
            stamps.pop(c.clip_id, None)
            continue
        kept.append(c)
        inputs.append(augment(wav, variant, clip_id=c.clip_id, seed=seed))
    return kept, inputs, bad, stamps


def refresh_changed_audio(catalog: Catalog, clips: Sequence[ClipSource],
                          units: Sequence[tuple[str, str]]) -> AudioRefresh:
    """Find the audio that changed since embed last read it, and drop the rows of `units` made from it.

    A stat per clip: only files whose size or mtime differ from the stamp `audio_hashes` keeps (or that
    have hashed rows but no stamp) are read and hashed again; a file touched but not changed keeps its
    rows and gets a fresh stamp. Rows made from other bytes are deleted (`store.provenance.refresh_audio`)
    so this run embeds those clips again; stale rows of units this run does not embed are returned."""
    seen = audio_stamps(catalog)
    hashed = hashed_clips(catalog)
    fresh = {}
    for c in clips:
        old = seen.get(c.clip_id)
        if old is None and c.clip_id not in hashed:
            continue  # never embedded from hashed audio: nothing to compare
        try:
            st = os.stat(c.path)
            if old is not None and (st.st_size, st.st_mtime_ns) == (old[1], old[2]):
                continue
            fresh[c.clip_id] = file_stamp(c.path)
        except OSError:
            continue  # an unreadable file is check_audio's to report
    return refresh_audio(catalog, fresh, units)


def skip_or_stop(catalog: Catalog, cfg: "EmbedConfig", report: "EmbedReport", bad: Sequence[Bad],
                 found: set[str]) -> None:
    """Bad clips a batch's loading found: stop before that batch writes anything, naming the first, or
    (`skip_bad`) record them in `skipped`, add them to `found` (later units leave them out) and go on."""
    new = [(c, e) for c, e in bad if c.clip_id not in found]
    if not new:
        return
    if not cfg.skip_bad:
        raise first_of(new)
    record_skips(catalog, new)
    found.update(c.clip_id for c, _ in new)
    report.skipped += [(c.clip_id, str(c.path), reason(e)) for c, e in new]
