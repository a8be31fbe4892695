"""Audio the way every part of the tool takes it: 16 kHz mono float32, cut into windows where long.

Corpora come with all sorts of files (stereo, 8 kHz telephone, 44.1 kHz podcasts); the encoders were
trained on 16 kHz mono, MSP-Podcast ships 16 kHz, and the synthetic corpus writes 16 kHz, so the rate
is defined here once. soundfile reads (torchaudio.load needs torchcodec), torchaudio.functional
resamples.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BadInput

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000


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


def load_audio(path: str | Path) -> "np.ndarray":
    """A clip as 16 kHz mono float32; an unreadable or empty file is `BadInput` naming it."""
    import numpy as np
    import soundfile as sf

    try:
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, OSError... all mean "can't read"
        raise BadInput(path, f"cannot read audio ({str(e).strip() or type(e).__name__})", field="audio") from None
    if samples.shape[0] == 0:
        raise BadInput(path, "audio file has no samples", field="audio")
    if not np.isfinite(samples).all():
        raise BadInput(path, "audio contains NaN or infinite samples", field="audio")
    return to_mono_16k(samples, int(sr))


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
