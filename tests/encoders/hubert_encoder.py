"""A fourth encoder kind in one module: HuBERT from transformers, registered by name.

This is all it takes to add an encoder (the registry is the single source of truth): the class says
what it is (kind, modality, paper checkpoint and config, tiny seed), how to build its tiny offline
model, and how to embed. Nothing else in sertool changes. Imported by `test_fourth_encoder.py`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sertool.audio import SAMPLE_RATE
from sertool.encoders._hf import check_layer, chunks, encoder_record, hidden, quiet_transformers
from sertool.encoders.base import EncoderBase, ModelSource, Modality, register
from sertool.store.records import EncoderRecord


@register
class HubertEncoder(EncoderBase):
    """HuBERT hidden states, one frame per 20 ms (hubert-large: 1024 dims)."""

    kind: ClassVar[str] = "hubert"
    modality: ClassVar[Modality] = "audio"
    paper_checkpoint: ClassVar[str] = "facebook/hubert-large-ll60k"
    paper_config: ClassVar[dict[str, Any]] = dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
    )
    tiny_seed: ClassVar[int] = 3

    @classmethod
    def build_tiny(cls, directory: Path, texts: list[str]) -> None:
        import torch
        from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

        config = HubertConfig(**{**cls.paper_config, "hidden_size": 48, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "intermediate_size": 96, "conv_dim": (32,) * 7})
        torch.manual_seed(cls.tiny_seed)
        HubertModel(config).save_pretrained(directory)
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
                                 return_attention_mask=True).save_pretrained(directory)

    def __init__(self, source: ModelSource, *, layer: int | None = None, device: str = "cpu") -> None:
        import torch
        from transformers import HubertModel, Wav2Vec2FeatureExtractor

        quiet_transformers()
        self.device = torch.device(device)
        self.features = Wav2Vec2FeatureExtractor.from_pretrained(source.path)
        self.model = HubertModel.from_pretrained(source.path, dtype=torch.float32).to(self.device).eval()
        cfg = self.model.config
        self.layer = check_layer(self.kind, layer, cfg.num_hidden_layers)
        self._record = encoder_record(type(self), source, self.layer, dim=cfg.hidden_size,
                                      frame_rate=SAMPLE_RATE / int(np.prod(cfg.conv_stride)),
                                      preprocessing=f"sr={SAMPLE_RATE};mono;normalize=per-clip;attention-mask")

    @property
    def record(self) -> EncoderRecord:
        return self._record

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        results: list[np.ndarray] = []
        for sl in chunks(len(batch), 16):
            wavs = [np.asarray(w, dtype=np.float32) for w in batch[sl]]
            inputs = self.features(wavs, sampling_rate=SAMPLE_RATE, padding="longest", return_attention_mask=True,
                                   return_tensors="pt")
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
                out = self.model(inputs.input_values.to(self.device), attention_mask=inputs.attention_mask.to(self.device),
                                 output_hidden_states=self.layer is not None)
            frames = hidden(out, self.layer).float().cpu().numpy()  # (B, T, D)
            n = self.model._get_feat_extract_output_lengths(torch.tensor([len(w) for w in wavs])).tolist()
            results += [frames[k, : int(n[k])] for k in range(len(wavs))]
        return results
