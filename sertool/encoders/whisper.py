"""Whisper's encoder as a frame encoder (50 frames/s, 1280 dims for large-v3).

The encoder only accepts exactly 30 s of input (3000 mel frames), so every clip is padded to 30 s
and its output cut to the frames that cover real audio (ceil(n_samples / 320)); a clip longer than
30 s goes through in consecutive 30 s windows whose frames are concatenated. Padding is per window,
never shared, so a clip's frames do not depend on its batch-mates.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio import SAMPLE_RATE, window_spans
from ..store.records import EncoderRecord
from ._hf import check_layer, chunks, encoder_record, hidden, quiet_transformers, train_bpe
from .base import EncoderBase, ModelSource, Modality, register

WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
"""The encoder's fixed input: 30 s."""
SAMPLES_PER_FRAME = 320
"""10 ms mel hop x stride-2 conv: one output frame per 20 ms."""

SPECIALS = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>", "<|nospeech|>", "<|notimestamps|>"]
"""Appended after the tiny BPE vocabulary, <|notimestamps|> last, so no id falls in Whisper's timestamp range."""


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
class WhisperEncoder(EncoderBase):
    """Whisper encoder frames: last hidden state (after the final layer norm) or hidden layer `layer`."""

    kind: ClassVar[str] = "whisper"
    modality: ClassVar[Modality] = "audio"
    paper_checkpoint: ClassVar[str] = "openai/whisper-large-v3"
    paper_config: ClassVar[dict[str, Any]] = dict(
        vocab_size=51866, num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20,
        decoder_layers=32, decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=50256, bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258,
    )
    tiny_seed: ClassVar[int] = 0
    max_windows: int = 16
    """30 s windows per forward pass (bounds memory; results do not depend on it)."""

    @classmethod
    def padded_seconds(cls, duration_s: float) -> float:
        """Whisper pads every clip to whole 30 s windows: that is what a clip costs it."""
        return WINDOW_SECONDS * max(1, math.ceil(duration_s / WINDOW_SECONDS))

    @classmethod
    def build_tiny(cls, directory: Path, texts: list[str]) -> None:
        """hidden 64, 2 layers, 128 mels, 50 frames/s; a byte-level BPE on `texts` + Whisper's specials,
        and a generation config, so the same model also does (gibberish) ASR offline."""
        import torch
        from transformers import (
            GenerationConfig,
            WhisperConfig,
            WhisperFeatureExtractor,
            WhisperForConditionalGeneration,
            WhisperTokenizer,
        )

        vocab, merges = train_bpe(texts, ["<|endoftext|>"], 2000)
        for tok in SPECIALS:
            vocab[tok] = len(vocab)
        tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, model_max_length=448)
        tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS})
        eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
        config = WhisperConfig(
            # One encoder head: attention over 1500 frames dominates CPU time and small heads run slowest.
            vocab_size=len(vocab), num_mel_bins=128, d_model=64, encoder_layers=2, encoder_attention_heads=1,
            decoder_layers=2, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
            max_source_positions=1500, max_target_positions=448,
            pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
            begin_suppress_tokens=None, suppress_tokens=None,
        )
        torch.manual_seed(cls.tiny_seed)
        model = WhisperForConditionalGeneration(config).eval()
        model.generation_config = GenerationConfig(
            decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot, max_length=448,
            is_multilingual=True, lang_to_id={"<|en|>": vocab["<|en|>"]},
            task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]},
            no_timestamps_token_id=vocab["<|notimestamps|>"], return_timestamps=False,
        )
        model.save_pretrained(directory)
        WhisperFeatureExtractor(feature_size=128).save_pretrained(directory)
        tokenizer.save_pretrained(directory)

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
            type(self), source, self.layer, dim=cfg.d_model, frame_rate=SAMPLE_RATE / SAMPLES_PER_FRAME,
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
            for s, e in window_spans(len(wav), WINDOW_SAMPLES):
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
