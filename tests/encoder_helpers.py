"""Shared helpers of the encoder tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import numpy as np

TEXTS = [
    "i can not believe you did that again",
    "that is wonderful news thank you so much",
    "well i guess we will see what happens tomorrow",
    "please stop talking about the weather all the time",
] * 5


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Noise with a slow loudness envelope: real dynamics for normalisation and attention to act on."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16_000)
    env = 0.05 + 0.3 * np.abs(np.sin(np.linspace(0, 3 * seconds, n)))
    return (rng.standard_normal(n) * env).astype(np.float32)


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / np.abs(b).max())
