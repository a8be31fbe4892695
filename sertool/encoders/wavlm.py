"""WavLM frames (50 frames/s, 1024 dims for wavlm-large), last hidden state or a chosen layer.

Each clip is normalised on its own (zero mean, unit variance over its real samples, as the feature
extractor does), padded in the batch with an attention mask, and cut to the frames the conv front end
makes from its real length, so its frames do not depend on its batch-mates. wavlm-large uses layer-norm
convs and the stable-layer-norm encoder, which honour the mask (the group-norm variant does not).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio import SAMPLE_RATE
from ..store.records import EncoderRecord
from ._hf import check_layer, chunks, encoder_record, hidden, quiet_transformers
from .base import EncoderBase, ModelSource, Modality, register


@register
class WavLMEncoder(EncoderBase):
    """WavLM hidden states, one frame per 20 ms of audio."""

    kind: ClassVar[str] = "wavlm"
    modality: ClassVar[Modality] = "audio"
    paper_checkpoint: ClassVar[str] = "microsoft/wavlm-large"
    paper_config: ClassVar[dict[str, Any]] = dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
        num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16, num_buckets=320, max_bucket_distance=800,
    )
    tiny_seed: ClassVar[int] = 1
    max_batch: int = 32

    @classmethod
    def build_tiny(cls, directory: Path, texts: list[str]) -> None:
        """wavlm-large's front end and stable-layer-norm encoder, hidden 64, 2 layers."""
        import torch
        from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

        config = WavLMConfig(**{**cls.paper_config, "hidden_size": 64, "num_hidden_layers": 2,
                                "num_attention_heads": 4, "intermediate_size": 128, "conv_dim": (32,) * 7})
        torch.manual_seed(cls.tiny_seed)
        WavLMModel(config).save_pretrained(directory)
        Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True
        ).save_pretrained(directory)

    def __init__(self, source: ModelSource, *, layer: int | None = None, device: str = "cpu") -> None:
        import torch
        from transformers import Wav2Vec2FeatureExtractor, WavLMModel

        quiet_transformers()
        self.source = source
        self.device = torch.device(device)
        self.features = Wav2Vec2FeatureExtractor.from_pretrained(source.path)
        self.model = WavLMModel.from_pretrained(source.path, dtype=torch.float32).to(self.device).eval()
        cfg = self.model.config
        self.layer = check_layer(self.kind, layer, cfg.num_hidden_layers)
        stride = int(np.prod(cfg.conv_stride))
        self._record = encoder_record(
            type(self), source, self.layer, dim=cfg.hidden_size, frame_rate=SAMPLE_RATE / stride,
            preprocessing=(
                f"sr={SAMPLE_RATE};mono;normalize={'per-clip' if self.features.do_normalize else 'none'};"
                "attention-mask;cut=conv-length"
            ),
        )

    @property
    def record(self) -> EncoderRecord:
        return self._record

    def n_frames(self, n_samples: int) -> int:
        """Frames the conv front end makes from `n_samples` (0 when shorter than its receptive field)."""
        import torch

        return int(self.model._get_feat_extract_output_lengths(torch.tensor(n_samples)).clamp(min=0))

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        results: list[np.ndarray] = []
        for sl in chunks(len(batch), self.max_batch):
            wavs = [np.asarray(w, dtype=np.float32) for w in batch[sl]]
            inputs = self.features(
                wavs, sampling_rate=SAMPLE_RATE, padding="longest", return_attention_mask=True, return_tensors="pt"
            )
            with torch.inference_mode(), warnings.catch_warnings():
                # WavLM mixes a bool padding mask with its float position bias; torch only nags about it.
                warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
                out = self.model(
                    inputs.input_values.to(self.device),
                    attention_mask=inputs.attention_mask.to(self.device),
                    output_hidden_states=self.layer is not None,
                )
            frames = hidden(out, self.layer).float().cpu().numpy()  # (B, T, D)
            results += [frames[k, : self.n_frames(len(w))] for k, w in enumerate(wavs)]
        return results
