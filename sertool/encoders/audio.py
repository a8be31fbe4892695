"""Reading audio the way every encoder expects it: 16 kHz mono float32.

Corpora come with all sorts of files (stereo, 8 kHz telephone, 44.1 kHz podcasts); the encoders were
trained on 16 kHz mono, so every clip goes through here. soundfile reads (torchaudio.load needs
torchcodec), torchaudio.functional resamples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadInput
from .base import SAMPLE_RATE

__all__ = ["SAMPLE_RATE", "load_audio", "to_mono_16k"]


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Downmix (mean of channels) and resample to 16 kHz. `samples` is [n] or [n, channels]."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE and x.size:
        import torch
        import torchaudio.functional as AF

        x = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), sample_rate, SAMPLE_RATE).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def load_audio(path: str | Path) -> np.ndarray:
    """A clip as 16 kHz mono float32; an unreadable or empty file is `BadInput` naming it."""
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
