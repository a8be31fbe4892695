"""How a packed view stores frames more compactly, and how they come back (`sertool store pack --dtype`).

fp16 is the store's own dtype (exact); bf16 keeps fp32's range with 8 bits of mantissa (relative error
<= 2^-8); fp8 is e4m3 as torch has it (relative error <= 2^-4, values clamped to +-448); int8 is affine
per channel, scale and zero point fitted on the Train clips' range (error <= scale / 2 inside that
range, clamped outside it). Everything is stored as raw integers in .npy files (numpy has no bf16 or
fp8), so a view loads without code beyond these functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VIEW_DTYPES = ("fp16", "bf16", "fp8", "int8")
STORAGE = {"fp16": np.float16, "bf16": np.int16, "fp8": np.uint8, "int8": np.int8}
"""What each dtype's .npy holds (bf16 and fp8 as their raw bits)."""
FP8_MAX = 448.0
BYTES = {"fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


@dataclass
class Affine:
    """int8 per-channel parameters: x ~ (q - zero) * scale."""

    scale: np.ndarray  # (D,) float32
    zero: np.ndarray  # (D,) float32 (an integer value)

    @classmethod
    def fit(cls, lo: np.ndarray, hi: np.ndarray) -> "Affine":
        """From per-channel min/max: the range spread over the 256 codes (a constant channel gets scale 1)."""
        span = (hi.astype(np.float64) - lo).clip(min=0)
        scale = np.where(span > 0, span / 255.0, 1.0)
        zero = np.round(-128 - lo / scale)
        return cls(scale.astype(np.float32), zero.astype(np.float32))


def encode(x: np.ndarray, dtype: str, affine: Affine | None = None) -> np.ndarray:
    """float frames (n, D) -> the view's stored array."""
    if dtype == "fp16":
        return x.astype(np.float16)
    if dtype == "int8":
        assert affine is not None
        q = np.round(x.astype(np.float32) / affine.scale + affine.zero)
        return np.clip(q, -128, 127).astype(np.int8)
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if dtype == "bf16":
        return t.to(torch.bfloat16).view(torch.int16).numpy()
    if dtype == "fp8":
        return t.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    raise ValueError(f"unknown view dtype {dtype!r}")


def decode_torch(q, dtype: str, scale=None, zero=None, out_dtype=None):
    """Stored values (a torch tensor, any device) -> float frames, on that device (`out_dtype`, default fp16)."""
    import torch

    out_dtype = out_dtype or torch.float16
    if dtype == "fp16":
        return q.to(out_dtype)
    if dtype == "bf16":
        return q.view(torch.bfloat16).to(out_dtype)
    if dtype == "fp8":
        return q.view(torch.float8_e4m3fn).to(out_dtype)
    if dtype == "int8":
        return ((q.to(torch.float32) - zero) * scale).to(out_dtype)
    raise ValueError(f"unknown view dtype {dtype!r}")


def pool_pairs(x: np.ndarray) -> np.ndarray:
    """25 frames/s from 50: the mean of each pair of frames (an odd last frame stays as it is)."""
    n = len(x)
    if n < 2:
        return x.astype(np.float32)
    even = x[: n - n % 2].astype(np.float32).reshape(n // 2, 2, -1).mean(axis=1)
    return np.concatenate([even, x[n - n % 2 :].astype(np.float32)]) if n % 2 else even
