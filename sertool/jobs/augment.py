"""Augmented variants of a clip: additive noise, reverberation, gain (the paper's three augmentations).

Each variant is stored as its own set of embeddings (variant name = augmentation name; the original is
`clean`), so training can sample them like any other clip. Every augmentation draws its randomness
from a seed derived from (global seed, clip id, variant) with a real hash (BLAKE2b, not Python's salted
`hash()`), so a clip's augmented audio is the same in every run, whatever batch it lands in and
whether the run was interrupted and resumed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from ..audio import SAMPLE_RATE

CLEAN = "clean"
"""Variant name of the unaugmented audio."""

SNR_DB = (5.0, 20.0)
"""Additive noise: SNR drawn uniformly from this range (dB)."""
RT60_S = (0.2, 0.9)
"""Reverberation: RT60 of the generated room impulse response, drawn uniformly (seconds)."""
GAIN_DB = (-5.0, 5.0)
"""Gain drawn uniformly from this range (dB), as in the paper."""


def variant_seed(seed: int, clip_id: str, variant: str) -> int:
    """A 63-bit seed that depends only on (seed, clip_id, variant): stable across processes and runs."""
    digest = hashlib.blake2b(f"{seed}\x1f{clip_id}\x1f{variant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian noise with a random spectral slope between white (0) and brown (-2): closer to real
    background noise than white noise alone."""
    beta = rng.uniform(0.0, 2.0)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    noise = np.fft.irfft(spec * freqs ** (-beta / 2), n=n)
    return noise.astype(np.float32)


def add_noise(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Additive colored noise at a random SNR in `SNR_DB` (torchaudio.functional.add_noise)."""
    import torch
    import torchaudio.functional as AF

    if not np.any(wave):  # silence has no signal power to set an SNR against: leave it as it is
        return wave.copy()
    snr = rng.uniform(*SNR_DB)
    noise = _colored_noise(rng, wave.shape[-1])
    out = AF.add_noise(torch.from_numpy(wave)[None], torch.from_numpy(noise)[None], torch.tensor([snr]))
    return out[0].numpy()


def room_impulse_response(rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic RIR: a direct-path impulse followed by exponentially decaying noise whose energy
    falls by 60 dB after a random RT60. (No room corpus ships with the tool; this is the classic
    statistical model of late reverberation.)"""
    rt60 = rng.uniform(*RT60_S)
    n = max(int(rt60 * sample_rate), 2)
    t = np.arange(n) / sample_rate
    rir = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)  # amplitude e^(-6.9 t/RT60): -60 dB at RT60
    rir[0] = np.abs(rir).max() * 2.0  # direct path dominates the first tap
    return (rir / np.linalg.norm(rir)).astype(np.float32)


def add_reverb(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a generated RIR (torchaudio.functional.fftconvolve), keep the clip's length and RMS."""
    import torch
    import torchaudio.functional as AF

    rir = room_impulse_response(rng)
    out = AF.fftconvolve(torch.from_numpy(wave), torch.from_numpy(rir))[: wave.shape[-1]].numpy()
    rms_in, rms_out = float(np.sqrt(np.mean(wave**2))), float(np.sqrt(np.mean(out**2)))
    if rms_out > 0:
        out = out * (rms_in / rms_out)  # reverb changes the colour, not the loudness
    return out.astype(np.float32)


def apply_gain(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random gain in `GAIN_DB` (torchaudio.functional.gain); not clipped, the encoders take floats."""
    import torch
    import torchaudio.functional as AF

    return AF.gain(torch.from_numpy(wave), float(rng.uniform(*GAIN_DB))).numpy().astype(np.float32)


AUGMENTATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noise": add_noise,
    "reverb": add_reverb,
    "gain": apply_gain,
}
"""Augmentations by variant name; the name is what the store records."""


def check_variants(names: list[str]) -> list[str]:
    """Validate `--augment` names; returns them without duplicates, in the order given."""
    from ..errors import SertoolError

    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise SertoolError(
            f"unknown augmentation {', '.join(unknown)!s}: choose from {', '.join(AUGMENTATIONS)}"
        )
    return list(dict.fromkeys(names))


def augment(wave: np.ndarray, variant: str, *, clip_id: str, seed: int) -> np.ndarray:
    """The `variant` of one clip's 16 kHz mono audio; `clean` returns it unchanged. Reproducible."""
    if variant == CLEAN:
        return wave
    rng = np.random.default_rng(variant_seed(seed, clip_id, variant))
    return AUGMENTATIONS[variant](np.ascontiguousarray(wave, dtype=np.float32), rng)
