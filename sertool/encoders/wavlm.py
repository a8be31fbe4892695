"""WavLM frames (50 frames/s, 1024 dims for wavlm-large), last hidden state or a chosen layer.

Each clip is normalised on its own (zero mean, unit variance over its real samples, as the feature
extractor does), padded in the batch with an attention mask, and cut to the frames the conv front end
makes from its real length, so its frames do not depend on its batch-mates. wavlm-large uses layer-norm
convs and the stable-layer-norm encoder, which honour the mask (the group-norm variant does not).

Long clips go through in windows. Self-attention memory grows with the square of the frames (a
10-minute clip in one pass: ~58 GB of attention weights at wavlm-large), so a clip longer than
`window_seconds` (60 s) is normalised as a whole, then cut into overlapping windows on the conv's own
frame grid: window k starts at sample `hop * f_k` and spans exactly `window_frames` frames, so each
window's conv output frames *are* frames f_k.. of the whole clip (the conv is local, and wavlm-large's
layer norm is per time step; a group-norm checkpoint would normalise its first conv layer per window,
a small further difference). Each frame is kept from the window where it is most central (the rule RoBERTa uses for
tokens), so a windowed clip has exactly the frames of a single pass (the conv output length of the
whole clip, 50/s) and each frame has at least a quarter window of context on both sides wherever the
clip allows. The transformer's attention is what windowing changes: README "Embedding" gives the
measured distance to single-pass frames.

Fingerprint: at the default window no clip of MSP-Podcast (2.75-11 s) or of the synthetic corpus
(<= 11 s) is windowed, so every frame an existing store holds is what this code makes; the default
window therefore leaves the preprocessing text (and the fingerprint) as it was. Another window changes
frames of clips that do exist, so it is written into the text (its own fingerprint).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio import SAMPLE_RATE
from ..store.records import EncoderRecord
from ._hf import (
    check_layer,
    chunks,
    config_with,
    encoder_record,
    hidden,
    materialise,
    owned_spans,
    quiet_transformers,
    window_starts,
)
from .base import EncoderBase, ModelSource, Modality, register

WINDOW_SECONDS = 60.0
"""Clips up to this long go in one pass; longer ones in windows of this length (see module docstring).
Above every clip the supported corpora hold (<= 11 s) and predict's default windows (<= 37.5 s)."""


def conv_geometry(kernels: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int]:
    """(receptive field, hop) in samples of one output frame of a stack of unpadded 1-d convs:
    frame i covers samples [hop * i, hop * i + field). wavlm-large: (400, 320)."""
    field, hop = 1, 1
    for k, s in zip(kernels, strides):
        field += (k - 1) * hop
        hop *= s
    return field, hop


@register
class WavLMEncoder(EncoderBase):
    """WavLM hidden states, one frame per 20 ms of audio."""

    kind: ClassVar[str] = "wavlm"
    modality: ClassVar[Modality] = "audio"
    paper_checkpoint: ClassVar[str] = "microsoft/wavlm-large"
    paper_config: ClassVar[dict[str, Any]] = dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=False, feat_extract_norm="layer", do_stable_layer_norm=True,
        num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16, num_buckets=320, max_bucket_distance=800,
    )
    paper_processor: ClassVar[dict[str, Any]] = dict(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True,
    )
    tiny_seed: ClassVar[int] = 1
    max_batch: int = 32
    max_windows: int = 1
    """Windows of a long clip per forward pass. One 60 s window is already a CPU batch's worth of audio
    (`jobs.embed.DEFAULT_BATCH_SECONDS`), and its attention tensors (heads x frames^2) are what bounds
    memory: ~0.7 GB transient for the tiny model, a few GB at wavlm-large."""

    @classmethod
    def build_tiny(cls, directory: Path, texts: list[str]) -> None:
        """wavlm-large's front end and stable-layer-norm encoder, hidden 64, 2 layers."""
        import torch
        from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

        # conv_bias as the tiny model was first built (the store fingerprints of its frames stay valid)
        config = WavLMConfig(**{**cls.paper_config, "hidden_size": 64, "num_hidden_layers": 2, "conv_bias": True,
                                "num_attention_heads": 4, "intermediate_size": 128, "conv_dim": (32,) * 7})
        torch.manual_seed(cls.tiny_seed)
        WavLMModel(config).save_pretrained(directory)
        Wav2Vec2FeatureExtractor(**cls.paper_processor).save_pretrained(directory)

    @classmethod
    def build_paper_random(cls, directory: Path, texts: list[str], layers: int | None = None) -> None:
        """wavlm-large's config and feature extractor; no weights (`base.ModelSource.random_seed`)."""
        from transformers import Wav2Vec2FeatureExtractor, WavLMConfig

        config_with(WavLMConfig, cls.paper_values(layers), cls.tiny_seed).save_pretrained(directory)
        Wav2Vec2FeatureExtractor(**cls.paper_processor).save_pretrained(directory)

    @classmethod
    def bare_model(cls, config: Any) -> Any:
        from transformers import WavLMModel

        return WavLMModel(config)

    def __init__(self, source: ModelSource, *, layer: int | None = None, device: str = "cpu",
                 window_seconds: float = WINDOW_SECONDS) -> None:
        import torch
        from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

        quiet_transformers()
        self.source = source
        self.device = torch.device(device)
        self.features = Wav2Vec2FeatureExtractor.from_pretrained(source.path)
        model = materialise(source, lambda path: WavLMModel.from_pretrained(path, dtype=torch.float32),
                            lambda path: self.bare_model(WavLMConfig.from_pretrained(path)))
        self.model = model.to(self.device).eval()
        cfg = self.model.config
        self.layer = check_layer(self.kind, layer, cfg.num_hidden_layers)
        self.field, self.hop = conv_geometry(tuple(cfg.conv_kernel), tuple(cfg.conv_stride))
        self.window_samples = int(round(window_seconds * SAMPLE_RATE))
        self.window_frames = self.n_frames(self.window_samples)
        if self.window_frames < 8:
            raise ValueError(f"wavlm: window_seconds={window_seconds} holds {self.window_frames} frames; "
                             "need 8 or more")
        self.overlap_frames = self.window_frames // 4
        windowing = "" if window_seconds == WINDOW_SECONDS else (
            f";windows={window_seconds:g}s-overlap={self.overlap_frames}frames-most-central")
        self._record = encoder_record(
            type(self), source, self.layer, dim=cfg.hidden_size, frame_rate=SAMPLE_RATE / self.hop,
            preprocessing=(
                f"sr={SAMPLE_RATE};mono;normalize={'per-clip' if self.features.do_normalize else 'none'};"
                f"attention-mask;cut=conv-length{windowing}"
            ),
            config=cfg,
        )

    @property
    def record(self) -> EncoderRecord:
        return self._record

    def n_frames(self, n_samples: int) -> int:
        """Frames the conv front end makes from `n_samples` (0 when shorter than its receptive field)."""
        import torch

        return int(self.model._get_feat_extract_output_lengths(torch.tensor(n_samples)).clamp(min=0))

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Frames per clip; clips up to the window in padded batches, longer ones windowed one by one."""
        wavs = [np.asarray(w, dtype=np.float32) for w in batch]
        for k, w in enumerate(wavs):
            if len(w) < self.field:  # the caller's job to refuse (audio.MIN_SAMPLES); never 0 frames silently
                raise ValueError(f"wavlm: clip {k} of the batch has {len(w)} samples; one frame needs {self.field}")
        results: list[np.ndarray | None] = [None] * len(wavs)
        short = [k for k, w in enumerate(wavs) if len(w) <= self.window_samples]
        for sl in chunks(len(short), self.max_batch):
            idx = short[sl]
            for k, frames in zip(idx, self._embed_padded([wavs[k] for k in idx])):
                results[k] = frames
        for k, w in enumerate(wavs):
            if results[k] is None:
                results[k] = self._embed_windowed(w)
        return results  # type: ignore[return-value]

    def _forward(self, input_values, attention_mask) -> np.ndarray:
        import torch

        with torch.inference_mode(), warnings.catch_warnings():
            # WavLM mixes a bool padding mask with its float position bias; torch only nags about it.
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            out = self.model(
                input_values.to(self.device),
                attention_mask=attention_mask.to(self.device),
                output_hidden_states=self.layer is not None,
            )
        return hidden(out, self.layer).float().cpu().numpy()  # (B, T, D)

    def _embed_padded(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """One forward pass over clips padded to the longest, each cut to its own conv length."""
        inputs = self.features(
            wavs, sampling_rate=SAMPLE_RATE, padding="longest", return_attention_mask=True, return_tensors="pt"
        )
        frames = self._forward(inputs.input_values, inputs.attention_mask)
        return [frames[k, : self.n_frames(len(w))] for k, w in enumerate(wavs)]

    def _embed_windowed(self, wav: np.ndarray) -> np.ndarray:
        """A long clip in overlapping windows on the conv frame grid, stitched to its single-pass frames."""
        import torch

        # the whole clip's normalisation, as a single pass would apply it (not each window's own)
        x = self.features([wav], sampling_rate=SAMPLE_RATE, return_tensors="np").input_values[0].astype(np.float32)
        n = self.n_frames(len(x))
        starts = window_starts(n, self.window_frames, self.overlap_frames)
        spans = owned_spans(n, starts, self.window_frames)
        width = self.hop * (self.window_frames - 1) + self.field  # samples behind exactly window_frames frames
        pieces: list[np.ndarray] = []
        for sl in chunks(len(starts), self.max_windows):
            windows = torch.from_numpy(np.stack([x[self.hop * f : self.hop * f + width] for f in starts[sl]]))
            h = self._forward(windows, torch.ones(windows.shape, dtype=torch.long))
            pieces += [h[j, lo - f : hi - f] for j, (f, (lo, hi)) in enumerate(zip(starts[sl], spans[sl]))]
        return np.concatenate(pieces, axis=0)
