"""Whisper's encoder on a clip's own length (`--whisper-window trimmed`), not on a 30 s window.

Whisper was trained on 30 s windows only, and transformers' encoder refuses anything else, so the paper
pads every clip to 30 s (1,500 positions): a 5 s clip pays for six times its length. Here the encoder's
own modules run on the clip's length instead:

* mel features of the clip followed by zeros, up to one frame past its last: `mel_samples`. The STFT
  frames of the real audio see the same samples as in a 30 s window (audio, then silence), and the
  per-clip log-mel floor (max - 8) is the same, so these mel frames equal the padded window's;
* the two convs as the model has them, and the positional embeddings sliced to the positions present;
* every layer with an attention mask over keys: a clip attends to its own frames only, never to the
  silence it was padded with nor to a longer batch-mate's. Its frames therefore depend on nothing but
  its own audio (the batch is padded to its longest clip only so that it is one tensor).

What changes against `padded` is what attention sees: in a 30 s window every frame also attends to the
silence after the clip, and Whisper has learned to expect it. Trimmed frames are *different* frames (own
fingerprint); README "Embedding" gives the measured distance. The paper's figures come from `padded`.
"""

from __future__ import annotations

from typing import Any

from ..audio import SAMPLE_RATE

WINDOW_SAMPLES = 30 * SAMPLE_RATE
SAMPLES_PER_FRAME = 320


def mel_samples(n_frames: int) -> int:
    """Samples to compute mel features over for a clip (or batch) of `n_frames` output frames: one frame
    of zeros past the last, so the conv stack's receptive field over the kept frames lies inside the
    features, and the STFT's reflect padding at the end reflects only zeros (as in a 30 s window)."""
    return min(SAMPLES_PER_FRAME * (n_frames + 1), WINDOW_SAMPLES)


def attention_mask(keep: Any, implementation: str, dtype: Any) -> Any:
    """The key mask for `keep` ((B, T) bool, True = a clip's own frame) in the form the model's attention
    takes: eager adds a float mask to the scores; sdpa takes a boolean one (True = attend)."""
    import torch

    mask = keep[:, None, None, :]  # (B, 1, 1, T): every query row of clip b sees clip b's frames only
    if implementation == "eager":
        return torch.zeros(mask.shape, dtype=dtype, device=keep.device).masked_fill(~mask, torch.finfo(dtype).min)
    if implementation != "sdpa":
        raise ValueError(f"whisper trimmed: attention {implementation!r} is not supported (eager or sdpa)")
    return mask


def forward_trimmed(encoder: Any, features: Any, n_frames: list[int], layer: int | None) -> Any:
    """Hidden states (B, T, D) of `encoder` (transformers' `WhisperEncoder`) for mel `features`
    (B, mels, 2T) whose clips have `n_frames` real frames each; `layer` as `_hf.hidden` counts them
    (None: after the final layer norm; i: the input of layer i, 0 being the embeddings)."""
    import torch
    from torch.nn.functional import gelu

    x = gelu(encoder.conv1(features))
    x = gelu(encoder.conv2(x)).permute(0, 2, 1)  # (B, T, D)
    t = x.shape[1]
    if t > encoder.embed_positions.num_embeddings:
        raise ValueError(f"whisper trimmed: {t} positions, the model has {encoder.embed_positions.num_embeddings}")
    x = x + encoder.embed_positions.weight[:t]
    keep = torch.arange(t, device=x.device)[None, :] < torch.tensor(n_frames, device=x.device)[:, None]
    mask = attention_mask(keep, encoder.config._attn_implementation, x.dtype)
    for i, block in enumerate(encoder.layers):
        if i == layer:
            return x
        x = block(x, mask)
    return encoder.layer_norm(x)


def pack(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices of `lengths` (output frames per window), sorted, in groups whose padded size
    (count x (longest + 1)) stays within `budget` positions: similar lengths share a forward pass."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) + 1) * (lengths[i] + 1) > budget:
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    return groups
