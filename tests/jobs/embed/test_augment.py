"""Augmented variants: reproducible from (seed, clip id, variant), different per variant and per clip."""

import os
import subprocess
import sys

import numpy as np
import pytest

from sertool.jobs.augment import AUGMENTATIONS, CLEAN, augment, check_variants, room_impulse_response, variant_seed
from sertool.errors import SertoolError


def _speechlike(n: int = 16_000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16_000
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.3 * env * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("variant", sorted(AUGMENTATIONS))
def test_reproducible_and_variant_specific(variant):
    wave = _speechlike()
    a = augment(wave, variant, clip_id="clip-1", seed=7)
    b = augment(wave.copy(), variant, clip_id="clip-1", seed=7)
    assert a.dtype == np.float32 and a.shape == wave.shape
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, wave)  # it did something
    assert not np.allclose(a, augment(wave, variant, clip_id="clip-2", seed=7))  # per clip
    assert not np.allclose(a, augment(wave, variant, clip_id="clip-1", seed=8))  # per seed
    others = [augment(wave, v, clip_id="clip-1", seed=7) for v in AUGMENTATIONS if v != variant]
    assert all(not np.allclose(a, o) for o in others)


def test_clean_is_untouched():
    wave = _speechlike()
    assert augment(wave, CLEAN, clip_id="x", seed=0) is wave


def test_seed_is_stable_across_processes():
    """A real hash, not Python's salted hash(): a fresh interpreter derives the same seed."""
    code = "from sertool.jobs.augment import variant_seed; print(variant_seed(3, 'MSP-PODCAST_0001_0001', 'noise'))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert int(res.stdout) == variant_seed(3, "MSP-PODCAST_0001_0001", "noise")


def test_noise_snr_within_range():
    wave = _speechlike(32_000)
    noisy = augment(wave, "noise", clip_id="c", seed=0)
    noise = noisy - wave
    snr = 10 * np.log10(np.sum(wave**2) / np.sum(noise**2))
    assert 5.0 - 1e-3 <= snr <= 20.0 + 1e-3


def test_gain_within_five_db():
    wave = _speechlike()
    for clip in ("a", "b", "c", "d"):
        out = augment(wave, "gain", clip_id=clip, seed=0)
        ratio = out / np.where(wave == 0, 1, wave)
        db = 20 * np.log10(np.median(np.abs(ratio[wave != 0])))
        assert -5.0 - 1e-3 <= db <= 5.0 + 1e-3


def test_reverb_keeps_length_and_loudness_and_decays():
    wave = _speechlike()
    out = augment(wave, "reverb", clip_id="c", seed=0)
    assert np.isclose(np.sqrt(np.mean(out**2)), np.sqrt(np.mean(wave**2)), rtol=1e-4)
    rir = room_impulse_response(np.random.default_rng(0))
    quarter = len(rir) // 4
    assert np.sum(rir[:quarter] ** 2) > 100 * np.sum(rir[-quarter:] ** 2)  # energy decays


def test_silence_survives_noise():
    silent = np.zeros(8000, np.float32)
    assert np.all(np.isfinite(augment(silent, "noise", clip_id="s", seed=0)))


def test_unknown_variant_refused():
    with pytest.raises(SertoolError, match="unknown augmentation"):
        check_variants(["noise", "echo"])
