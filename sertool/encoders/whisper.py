"""Whisper's encoder as a frame encoder (50 frames/s, 1280 dims for large-v3).

The encoder only accepts exactly 30 s of input (3000 mel frames), so every clip is padded to 30 s
and its output cut to the frames that cover real audio (ceil(n_samples / 320)); a clip longer than
30 s goes through in consecutive 30 s windows whose frames are concatenated. Padding is per window,
never shared, so a clip's frames do not depend on its batch-mates.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..store.records import EncoderRecord
from ._hf import check_layer, chunks, encoder_record, hidden, quiet_transformers
from .base import SAMPLE_RATE, Modality
from .presets import ModelSource
from .registry import register

WINDOW_SAMPLES = 30 * SAMPLE_RATE
"""The encoder's fixed input: 30 s."""
SAMPLES_PER_FRAME = 320
"""10 ms mel hop x stride-2 conv: one output frame per 20 ms."""


def window_spans(n_samples: int) -> list[tuple[int, int]]:
    """Consecutive 30 s (start, end) sample spans covering a clip."""
    return [(s, min(s + WINDOW_SAMPLES, n_samples)) for s in range(0, n_samples, WINDOW_SAMPLES)]


def frames_for(n_samples: int) -> int:
    """Output frames that cover `n_samples` of real audio."""
    return math.ceil(n_samples / SAMPLES_PER_FRAME)


def load_whisper_encoder(path):
    """Only the encoder of a full Whisper checkpoint (the decoder's weights are never materialised)."""
    import torch
    from transformers import WhisperForAudioClassification

    # WhisperForAudioClassification holds the encoder under the name the checkpoint uses; its tiny
    # classification head is the only thing initialised fresh, and it is dropped here.
    return WhisperForAudioClassification.from_pretrained(path, dtype=torch.float32).encoder


@register
class WhisperEncoder:
    """Whisper encoder frames: last hidden state (after the final layer norm) or hidden layer `layer`."""

    kind: ClassVar[str] = "whisper"
    modality: ClassVar[Modality] = "audio"
    max_windows: int = 16
    """30 s windows per forward pass (bounds memory; results do not depend on it)."""

    def __init__(self, source: ModelSource, *, layer: int | None = None, device: str = "cpu") -> None:
        import torch
        from transformers import WhisperFeatureExtractor

        quiet_transformers()
        self.source = source
        self.device = torch.device(device)
        self.features = WhisperFeatureExtractor.from_pretrained(source.path)
        self.model = load_whisper_encoder(source.path).to(self.device).eval()
        cfg = self.model.config
        self.layer = check_layer(self.kind, layer, cfg.encoder_layers)
        self._record = encoder_record(
            self.kind, source, self.layer, dim=cfg.d_model, frame_rate=SAMPLE_RATE / SAMPLES_PER_FRAME,
            preprocessing=(
                f"sr={SAMPLE_RATE};mono;log-mel={self.features.feature_size};pad=30s;windows=30s-consecutive;"
                f"cut=ceil(n/{SAMPLES_PER_FRAME})"
            ),
        )

    @property
    def record(self) -> EncoderRecord:
        return self._record

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        windows: list[np.ndarray] = []
        owner: list[int] = []
        for i, wav in enumerate(batch):
            for s, e in window_spans(len(wav)):
                windows.append(np.asarray(wav[s:e], dtype=np.float32))
                owner.append(i)
        pieces: list[list[np.ndarray]] = [[] for _ in batch]
        for sl in chunks(len(windows), self.max_windows):
            feats = self.features(
                windows[sl], sampling_rate=SAMPLE_RATE, return_tensors="pt", device=str(self.device)
            ).input_features.to(self.device)  # (W, mels, 3000)
            with torch.inference_mode():
                out = hidden(self.model(feats, output_hidden_states=self.layer is not None), self.layer)
            out = out.float().cpu().numpy()  # (W, 1500, D)
            for k, w in enumerate(range(sl.start, sl.stop)):
                pieces[owner[w]].append(out[k, : frames_for(len(windows[w]))])
        dim = self._record.dim
        return [np.concatenate(p, axis=0) if p else np.zeros((0, dim), np.float32) for p in pieces]
