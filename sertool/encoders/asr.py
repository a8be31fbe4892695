"""Whisper ASR for clips the corpus has no transcript for (large-v3 in `paper`, the tiny Whisper in `tiny`).

Greedy batched `generate`, English transcription, no timestamps. Clips over 30 s are transcribed in
consecutive 30 s windows joined by a space (MSP-Podcast clips are 3-11 s, so this is rare). New
tokens are capped by the window's duration, so a model that never says end-of-text cannot run away.
"""

from __future__ import annotations

import math

import numpy as np

from ..audio import SAMPLE_RATE, window_spans
from ..store.records import TranscriberRecord
from ._hf import chunks, materialise, quiet_transformers
from .base import ModelSource
from .whisper import WINDOW_SAMPLES, WhisperEncoder

TOKENS_PER_SECOND = 6
"""Generous for speech (fast talkers say ~3.5 words/s, ~4.5 tokens/s)."""


class WhisperASR:
    """Batched Whisper transcription."""

    max_windows: int = 16

    def __init__(self, source: ModelSource, *, device: str = "cpu", language: str = "en") -> None:
        import torch
        from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

        quiet_transformers()
        self.source = source
        self.device = torch.device(device)
        self.language = language
        self.features = WhisperFeatureExtractor.from_pretrained(source.path)
        self.tokenizer = AutoTokenizer.from_pretrained(source.path)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        model = materialise(source, lambda path: WhisperForConditionalGeneration.from_pretrained(path, dtype=dtype),
                            WhisperEncoder.checkpoint_model)  # paper-random: the whole model, seeded
        self.model = model.to(self.device, dtype).eval()

    @property
    def record(self) -> TranscriberRecord:
        """Provenance written with every transcript: the checkpoint, and the decoding settings that
        change the text (its fingerprint keeps two configurations' transcripts from mixing silently)."""
        return transcriber_record(self.source, self.language)

    def max_new_tokens(self, n_samples: int) -> int:
        """Cap for one window: proportional to its duration, within the decoder's 448 positions."""
        room = self.model.config.max_target_positions - 4  # <|startoftranscript|><|en|><|transcribe|><|notimestamps|>
        return max(1, min(room - 1, math.ceil(n_samples / SAMPLE_RATE * TOKENS_PER_SECOND) + 8))

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        """One transcript per 16 kHz mono waveform."""
        import torch

        windows, owner = [], []
        for i, wav in enumerate(waveforms):
            for s, e in window_spans(len(wav), WINDOW_SAMPLES):
                windows.append(np.asarray(wav[s:e], dtype=np.float32))
                owner.append(i)
        texts: list[list[str]] = [[] for _ in waveforms]
        for sl in chunks(len(windows), self.max_windows):
            part = windows[sl]
            feats = self.features(
                part, sampling_rate=SAMPLE_RATE, return_tensors="pt", device=str(self.device)
            ).input_features.to(self.device, self.model.dtype)
            with torch.inference_mode():
                ids = self.model.generate(
                    feats,
                    language=self.language,
                    task="transcribe",
                    return_timestamps=False,
                    do_sample=False,
                    num_beams=1,
                    max_new_tokens=max(self.max_new_tokens(len(w)) for w in part),
                )
            special = set(self.tokenizer.all_special_ids)
            for k, row in enumerate(ids.tolist()):
                # Each window keeps only its own budget, so its text does not depend on its batch-mates.
                # (generate returns only the new tokens for Whisper, without the forced prompt.)
                tokens = [t for t in row[: self.max_new_tokens(len(part[k]))] if t not in special]
                texts[owner[sl.start + k]].append(self.tokenizer.decode(tokens).strip())
        return [" ".join(t for t in parts if t) for parts in texts]


def asr_source(preset: str, *, models_dir=None, model_dir=None, texts=None) -> ModelSource:
    """Where the preset's Whisper ASR comes from (same checkpoint as the `whisper` encoder: large-v3 is one
    model), without loading it: its provenance decides whether a run may write beside earlier transcripts."""
    from .presets import resolve

    return resolve("asr", preset, model_dir=model_dir, models_dir=models_dir, texts=texts)


def transcriber_record(source: ModelSource, language: str = "en") -> TranscriberRecord:
    """The provenance `WhisperASR(source, language=language).record` has, without loading the model."""
    return TranscriberRecord(source.checkpoint, source.revision, decoding_settings(language))


def decoding_settings(language: str = "en") -> dict:
    """The decoding settings that change the text `WhisperASR.transcribe` writes (module docstring)."""
    return {"language": language, "task": "transcribe", "timestamps": False, "do_sample": False, "num_beams": 1,
            "window_s": WINDOW_SAMPLES // SAMPLE_RATE, "tokens_per_second": TOKENS_PER_SECOND}


def load_asr(preset: "str | ModelSource", *, models_dir=None, model_dir=None, device: str = "cpu",
             texts=None) -> WhisperASR:
    """The preset's Whisper ASR (or the one at `ModelSource` `preset`)."""
    from ..model.device import check_device

    check_device(device)
    source = preset if isinstance(preset, ModelSource) else asr_source(preset, models_dir=models_dir,
                                                                        model_dir=model_dir, texts=texts)
    return WhisperASR(source, device=device)
