"""Whisper's encoder as a frame encoder (50 frames/s, 1280 dims for large-v3).

`window="padded"` (the paper's, the default): the encoder only accepts exactly 30 s of input (3000 mel
frames), so every clip is padded to 30 s and its output cut to the frames that cover real audio
(ceil(n_samples / 320)); a clip longer than 30 s goes through in consecutive 30 s windows whose frames
are concatenated. Padding is per window, never shared, so a clip's frames do not depend on its
batch-mates. `window="trimmed"` runs the same modules on each window's own length
(`whisper_trimmed`): the same frame count, ~1/6 of the compute for a 5 s clip, other frames.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio import SAMPLE_RATE, window_spans
from ..errors import InvalidOption
from ..store.records import EncoderRecord
from ._hf import (
    check_layer,
    chunks,
    config_with,
    encoder_record,
    hidden,
    materialise,
    quiet_transformers,
    train_bpe,
)
from .base import EncoderBase, ModelSource, Modality, register
from .whisper_trimmed import forward_trimmed, mel_samples, pack

WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
"""The encoder's fixed input: 30 s."""
SAMPLES_PER_FRAME = 320
"""10 ms mel hop x stride-2 conv: one output frame per 20 ms."""

SPECIALS = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>", "<|nospeech|>", "<|notimestamps|>"]
"""Appended after the offline BPE vocabulary, <|notimestamps|> last, so no id falls in Whisper's timestamp range."""
WINDOWS = ("padded", "trimmed")
"""`padded`: every clip in a 30 s window (the paper's); `trimmed`: on its own length (`whisper_trimmed`)."""


def check_window(window: str) -> str:
    """`window` if it is one of `WINDOWS`, else `InvalidOption` naming `whisper_window` (the flag)."""
    if window not in WINDOWS:
        raise InvalidOption("whisper_window", f"{window!r}: choose from {', '.join(WINDOWS)}")
    return window


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


def offline_tokenizer(texts: list[str], bpe_size: int):
    """A byte-level BPE of at most `bpe_size` tokens trained on `texts`, Whisper's specials after it, and
    the generation config that drives ASR with it: (tokenizer, vocab, generation config)."""
    from transformers import GenerationConfig, WhisperTokenizer

    vocab, merges = train_bpe(texts, ["<|endoftext|>"], bpe_size)
    for tok in SPECIALS:
        vocab[tok] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, model_max_length=448)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS})
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    generation = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot, max_length=448,
        is_multilingual=True, lang_to_id={"<|en|>": vocab["<|en|>"]},
        task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]},
        no_timestamps_token_id=vocab["<|notimestamps|>"], return_timestamps=False,
    )
    return tokenizer, vocab, generation


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
    paper_processor: ClassVar[dict[str, Any]] = dict(
        feature_size=128, sampling_rate=SAMPLE_RATE, hop_length=160, chunk_length=WINDOW_SECONDS, n_fft=400,
        padding_value=0.0, return_attention_mask=False,
    )
    paper_vocab: ClassVar[int] = 50257
    """Byte-level BPE tokens of large-v3's tokenizer before its specials (the model's 51866 rows hold those
    and the timestamps); paper-random trains its BPE up to this size, the corpus permitting."""
    depth_keys: ClassVar[tuple[str, ...]] = ("encoder_layers", "decoder_layers")
    tiny_seed: ClassVar[int] = 0
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {"window": WINDOWS}
    max_windows: int = 16
    """30 s windows per forward pass (bounds memory; results do not depend on it); `trimmed` packs up to
    the same number of positions (16 x 1500) from shorter windows."""

    @classmethod
    def padded_seconds(cls, duration_s: float) -> float:
        """Whisper pads every clip to whole 30 s windows: that is what a clip costs it (`padded`; an
        encoder loaded with `window="trimmed"` answers with the clip's own duration instead)."""
        return WINDOW_SECONDS * max(1, math.ceil(duration_s / WINDOW_SECONDS))

    @staticmethod
    def trimmed_seconds(duration_s: float) -> float:
        """What a clip costs the `trimmed` encoder: its own length."""
        return duration_s

    @classmethod
    def build_tiny(cls, directory: Path, texts: list[str]) -> None:
        """hidden 64, 2 layers, 128 mels, 50 frames/s; a byte-level BPE on `texts` + Whisper's specials,
        and a generation config, so the same model also does (gibberish) ASR offline."""
        import torch
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

        tokenizer, vocab, generation = offline_tokenizer(texts, 2000)
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
        model.generation_config = generation
        model.save_pretrained(directory)
        WhisperFeatureExtractor(feature_size=128).save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    @classmethod
    def build_paper_random(cls, directory: Path, texts: list[str], layers: int | None = None) -> None:
        """large-v3's config (51866 vocabulary rows) with the offline BPE's special ids, its feature
        extractor, the tokenizer and the generation config; no weights (`base.ModelSource.random_seed`)."""
        from transformers import WhisperConfig, WhisperFeatureExtractor

        tokenizer, vocab, generation = offline_tokenizer(texts, cls.paper_vocab)
        eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
        values = {**cls.paper_values(layers), "pad_token_id": eot, "bos_token_id": eot, "eos_token_id": eot,
                  "decoder_start_token_id": sot, "begin_suppress_tokens": None, "suppress_tokens": None}
        config_with(WhisperConfig, values, cls.tiny_seed).save_pretrained(directory)
        generation.save_pretrained(directory)
        WhisperFeatureExtractor(**cls.paper_processor).save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    @classmethod
    def bare_model(cls, config: Any) -> Any:
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

        return HFWhisperEncoder(config)

    @classmethod
    def checkpoint_model(cls, directory: Path) -> Any:
        """The whole Whisper (decoder too: ASR reads the same checkpoint). Under one seed its encoder's
        weights equal `bare_model`'s (the encoder is built first), which the save/load test checks."""
        from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

        model = WhisperForConditionalGeneration(WhisperConfig.from_pretrained(directory))
        model.generation_config = GenerationConfig.from_pretrained(directory)
        return model

    def __init__(self, source: ModelSource, *, layer: int | None = None, device: str = "cpu",
                 window: str = "padded") -> None:
        import torch
        from transformers import WhisperConfig, WhisperFeatureExtractor

        quiet_transformers()
        self.source = source
        self.device = torch.device(device)
        self.features = WhisperFeatureExtractor.from_pretrained(source.path)
        model = materialise(source, load_whisper_encoder,
                            lambda path: self.bare_model(WhisperConfig.from_pretrained(path)))
        self.model = model.to(self.device).eval()
        self.layer = check_layer(self.kind, layer, self.model.config.encoder_layers)
        self._set_window(window)

    def _set_window(self, window: str) -> None:
        self.window = check_window(window)
        if window == "trimmed":
            self.padded_seconds = self.trimmed_seconds  # what bucketing plans with, for this instance
        else:
            self.__dict__.pop("padded_seconds", None)
        cfg = self.model.config
        how = ("pad=30s;windows=30s-consecutive" if window == "padded" else
               "pad=none;windows=30s-consecutive-trimmed;positions=sliced;attention-mask=own-frames")
        self._record = encoder_record(
            type(self), self.source, self.layer, dim=cfg.d_model, frame_rate=SAMPLE_RATE / SAMPLES_PER_FRAME,
            preprocessing=f"sr={SAMPLE_RATE};mono;log-mel={self.features.feature_size};{how};"
                          f"cut=ceil(n/{SAMPLES_PER_FRAME})",
            config=cfg,
        )

    def configured(self, *, window: str = "padded") -> "WhisperEncoder":
        """This encoder with another window, sharing the loaded model (predict matches a run's frames)."""
        other = copy.copy(self)
        other._set_window(window)
        return other

    @property
    def record(self) -> EncoderRecord:
        return self._record

    def embed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        windows: list[np.ndarray] = []
        owner: list[int] = []
        for i, wav in enumerate(batch):
            for s, e in window_spans(len(wav), WINDOW_SAMPLES):
                windows.append(np.asarray(wav[s:e], dtype=np.float32))
                owner.append(i)
        frames = self._padded(windows) if self.window == "padded" else self._trimmed(windows)
        pieces: list[list[np.ndarray]] = [[] for _ in batch]
        for w, f in zip(owner, frames):
            pieces[w].append(f)
        dim = self._record.dim
        return [np.concatenate(p, axis=0) if p else np.zeros((0, dim), np.float32) for p in pieces]

    def _padded(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """Each window padded to 30 s, through transformers' encoder as it is: the paper's frames."""
        import torch

        out_frames: list[np.ndarray] = []
        for sl in chunks(len(windows), self.max_windows):
            feats = self.features(
                windows[sl], sampling_rate=SAMPLE_RATE, return_tensors="pt", device=str(self.device)
            ).input_features.to(self.device)  # (W, mels, 3000)
            with torch.inference_mode():
                out = hidden(self.model(feats, output_hidden_states=self.layer is not None), self.layer)
            out = out.float().cpu().numpy()  # (W, 1500, D)
            out_frames += [out[k, : frames_for(len(windows[w]))] for k, w in enumerate(range(sl.start, sl.stop))]
        return out_frames

    def _trimmed(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """Each window on its own length (`whisper_trimmed`), windows of similar length batched."""
        import torch

        n = [frames_for(len(w)) for w in windows]
        results: list[np.ndarray] = [np.zeros((0, self._record.dim), np.float32)] * len(windows)
        budget = self.max_windows * self.model.config.max_source_positions
        for group in pack(n, budget):
            feats = self.features(
                [windows[i] for i in group], sampling_rate=SAMPLE_RATE, return_tensors="pt", padding="max_length",
                max_length=mel_samples(max(n[i] for i in group)), device=str(self.device),
            ).input_features.to(self.device)  # (W, mels, 2T)
            with torch.inference_mode():
                out = forward_trimmed(self.model, feats, [n[i] for i in group], self.layer)
            out = out.float().cpu().numpy()
            for k, i in enumerate(group):
                results[i] = out[k, : n[i]]
        return results
