"""Audio the way every part of the tool takes it: 16 kHz mono float32, cut into windows where long.

Corpora come with all sorts of files (stereo, 8 kHz telephone, 44.1 kHz podcasts); the encoders were
trained on 16 kHz mono, MSP-Podcast ships 16 kHz, and the synthetic corpus writes 16 kHz, so the rate
is defined here once. soundfile reads (torchaudio.load needs torchcodec), torchaudio.functional
resamples.

The bounds on a clip live here too, so that ingest, embed and predict refuse the same clips: audio of
at least `MIN_SAMPLES` (one frame of the wav2vec2-style conv front end) and at most a `max_seconds` the
caller states (`DEFAULT_MAX_SECONDS` unless told otherwise), a transcript of at most
`DEFAULT_MAX_TRANSCRIPT_CHARS` unless told otherwise.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BadInput

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000

MIN_SAMPLES = 400
"""The shortest clip the tool takes: 25 ms at 16 kHz, the receptive field of one frame of WavLM's (and
HuBERT's) conv front end. Shorter audio has no WavLM frame at all (the conv fails, or a padded batch
yields 0 frames), and 25 ms is a fraction of one syllable: nothing to recognise an emotion in."""
MIN_SECONDS = MIN_SAMPLES / SAMPLE_RATE

DEFAULT_MAX_SECONDS = 3600.0
"""The longest clip embed and predict take unless `--max-seconds` says otherwise. The encoders run long
audio in windows, so their working memory stays bounded, but a clip's audio and all its frames are held
at once (an hour: 0.2 GB of samples, ~0.9 GB of Whisper-large frames as float32), so the bound is
stated rather than found by running out of memory. MSP-Podcast clips are 3-11 s."""

DEFAULT_MAX_TRANSCRIPT_CHARS = 100_000
"""The longest transcript text encoders take unless `--max-transcript-chars` says otherwise: an hour of
fast speech is ~60,000 characters. Frames are one per token (~4 characters), so a runaway transcript
(a 20 MB file: 20 GB of roberta-large frames) would otherwise fill memory before anything is written."""


def to_mono_16k(samples: "np.ndarray", sample_rate: int) -> "np.ndarray":
    """Downmix (mean of channels) and resample to 16 kHz. `samples` is [n] or [n, channels]."""
    import numpy as np

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE and x.size:
        import torch
        import torchaudio.functional as AF

        x = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), sample_rate, SAMPLE_RATE).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class FileStamp:
    """What an audio file was when it was read: the SHA-256 of its bytes, and its size and mtime (which
    say cheaply, without reading it again, whether it may have changed since)."""

    sha256: str
    size_bytes: int
    mtime_ns: int


def file_stamp(path: str | Path) -> FileStamp:
    """The file's stamp, reading it once (for files whose bytes are not read anyway)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        while block := f.read(1 << 20):
            h.update(block)
    return FileStamp(h.hexdigest(), st.st_size, st.st_mtime_ns)


def load_audio(path: str | Path) -> "np.ndarray":
    """A clip as 16 kHz mono float32; an unreadable or empty file is `BadInput` naming it."""
    import soundfile as sf

    try:
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, OSError... all mean "can't read"
        raise BadInput(path, f"cannot read audio ({str(e).strip() or type(e).__name__})", field="audio") from None
    return _checked_samples(path, samples, int(sr))


def load_audio_stamped(path: str | Path) -> tuple["np.ndarray", FileStamp]:
    """`load_audio`, plus the stamp of the bytes it decoded: they are read once, hashed and decoded from
    memory, so the hash is of exactly what was embedded and costs no second pass over the file."""
    import soundfile as sf

    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # as in load_audio: every exception here means "can't read"
        # name the file (soundfile names the buffer it was handed: "Error opening <_io.BytesIO ...>: ...")
        why = re.sub(r"^Error opening <_io\.BytesIO object at 0x[0-9a-f]+>", f"Error opening {str(path)!r}",
                     str(e).strip() or type(e).__name__)
        raise BadInput(path, f"cannot read audio ({why})", field="audio") from None
    stamp = FileStamp(hashlib.sha256(data).hexdigest(), st.st_size, st.st_mtime_ns)
    return _checked_samples(path, samples, int(sr)), stamp


def _checked_samples(path: str | Path, samples: "np.ndarray", sr: int) -> "np.ndarray":
    import numpy as np

    if samples.shape[0] == 0:
        raise BadInput(path, "audio file has no samples", field="audio")
    if not np.isfinite(samples).all():
        raise BadInput(path, "audio contains NaN or infinite samples", field="audio")
    return to_mono_16k(samples, sr)


def resampled_length(frames: int, sample_rate: int) -> int:
    """Samples a file of `frames` at `sample_rate` has once resampled to 16 kHz (resample rounds up)."""
    return -(-int(frames) * SAMPLE_RATE // int(sample_rate))


def read_header(path: str | Path) -> tuple[int, int]:
    """(frames, sample rate) of a file from its header alone (no decode: cheap for a whole corpus).
    An unreadable or empty file is `BadInput` naming it (field `audio`)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:  # as in load_audio: every exception here means "can't read"
        raise BadInput(path, f"cannot read audio ({str(e).strip() or type(e).__name__})", field="audio") from None
    if info.frames <= 0:
        raise BadInput(path, "audio file has no samples", field="audio")
    return int(info.frames), int(info.samplerate)


def check_length(path: str | Path, n_samples: int, max_seconds: float = DEFAULT_MAX_SECONDS) -> None:
    """`BadInput` (field `audio`) naming `path` when a clip of `n_samples` at 16 kHz is shorter than
    `MIN_SAMPLES` or longer than `max_seconds`."""
    if n_samples < MIN_SAMPLES:
        raise BadInput(path, f"audio is {1000 * n_samples / SAMPLE_RATE:.1f} ms long, shorter than the "
                             f"{1000 * MIN_SECONDS:g} ms minimum (one frame of WavLM's conv front end)", field="audio")
    if n_samples > max_seconds * SAMPLE_RATE:
        raise BadInput(path, f"audio is {n_samples / SAMPLE_RATE:.1f} s long, over the {max_seconds:g} s limit "
                             "(--max-seconds)", field="audio")


def window_spans(n_samples: int, window: int, *, tail_merge: float = 0.0) -> list[tuple[int, int]]:
    """Consecutive (start, end) spans of at most `window` samples covering `n_samples`.

    With `tail_merge` > 0 a last span shorter than that share of a window joins the one before it
    (prediction reads no 0.2 s windows); encoders that take a fixed window pass 0.
    """
    spans = [(s, min(s + window, n_samples)) for s in range(0, n_samples, window)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < tail_merge * window:
        spans.pop()
        spans[-1] = (spans[-1][0], n_samples)
    return spans
