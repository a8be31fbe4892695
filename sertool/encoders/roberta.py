"""RoBERTa frames over a clip's transcript: one frame per token, `<s>` and `</s>` included.

Transcripts longer than the model's window go through in overlapping windows; each token's frame
is taken from the window where it sits most centrally (most context on both sides), so every token
appears exactly once. Windows are padded with an attention mask, so batch-mates do not interact.
Stitching is linear in the transcript's length (each window contributes one slice); how long a
transcript may be at all is the caller's bound (`sertool embed --max-transcript-chars`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..store.records import EncoderRecord
from ._hf import (  # noqa: F401  (window_starts, owner_windows: the window plan, importable from here)
    check_layer,
    chunks,
    config_with,
    encoder_record,
    hidden,
    materialise,
    owned_spans,
    owner_windows,
    quiet_transformers,
    train_bpe,
    window_starts,
)
from .base import EncoderBase, ModelSource, Modality, register

TINY_MAX_TOKENS = 128
"""Tiny RoBERTa's window (positions minus the two specials' padding offset) - small so tests window cheaply."""
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
"""roberta-large's order: <s>=0, <pad>=1, </s>=2."""


@register
class RobertaEncoder(EncoderBase):
    """RoBERTa hidden states per transcript token."""

    kind: ClassVar[str] = "roberta"
    modality: ClassVar[Modality] = "text"
    paper_checkpoint: ClassVar[str] = "FacebookAI/roberta-large"
    paper_config: ClassVar[dict[str, Any]] = dict(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        layer_norm_eps=1e-5,
    )
    paper_processor: ClassVar[dict[str, Any]] = dict(model_max_length=512, add_prefix_space=False)
    """roberta-large's tokenizer settings; its vocabulary (50265 tokens) is `paper_config["vocab_size"]`."""
    tiny_seed: ClassVar[int] = 2
    max_batch: int = 32

    @classmethod
    def build_tiny(cls, directory: Path, texts: list[str]) -> None:
        """hidden 64, 2 layers, a 128-token window; a byte-level BPE trained on `texts`."""
        import torch
        from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

        vocab, merges = train_bpe(texts, SPECIALS, 2000)
        tokenizer = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=TINY_MAX_TOKENS + 2)
        # layer_norm_eps as the tiny model was first built (the store fingerprints of its frames stay valid)
        config = RobertaConfig(**{**cls.paper_config, "vocab_size": len(vocab), "hidden_size": 64,
                                  "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
                                  "max_position_embeddings": TINY_MAX_TOKENS + 2, "layer_norm_eps": 1e-12})
        torch.manual_seed(cls.tiny_seed)
        RobertaModel(config, add_pooling_layer=False).save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    @classmethod
    def build_paper_random(cls, directory: Path, texts: list[str], layers: int | None = None) -> None:
        """roberta-large's config (50265 vocabulary rows, 512 positions) and a byte-level BPE of up to
        50265 tokens trained on `texts` (fewer where the corpus is small: ids stay inside the rows); no
        weights (`base.ModelSource.random_seed`)."""
        from transformers import RobertaConfig, RobertaTokenizer

        vocab, merges = train_bpe(texts, SPECIALS, cls.paper_config["vocab_size"])
        RobertaTokenizer(vocab=vocab, merges=merges, **cls.paper_processor).save_pretrained(directory)
        config_with(RobertaConfig, cls.paper_values(layers), cls.tiny_seed).save_pretrained(directory)

    @classmethod
    def bare_model(cls, config: Any) -> Any:
        from transformers import RobertaModel

        return RobertaModel(config, add_pooling_layer=False)

    def __init__(self, source: ModelSource, *, layer: int | None = None, device: str = "cpu") -> None:
        import torch
        from transformers import AutoTokenizer, RobertaConfig, RobertaModel

        quiet_transformers()
        self.source = source
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(source.path)
        model = materialise(
            source, lambda path: RobertaModel.from_pretrained(path, add_pooling_layer=False, dtype=torch.float32),
            lambda path: self.bare_model(RobertaConfig.from_pretrained(path)))
        self.model = model.to(self.device).eval()
        cfg = self.model.config
        self.layer = check_layer(self.kind, layer, cfg.num_hidden_layers)
        # Positions start after padding_idx, so the model takes max_position_embeddings - 2 tokens.
        max_len = min(self.tokenizer.model_max_length, cfg.max_position_embeddings - 2)
        self.capacity = max_len - 2  # content tokens per window, besides <s> and </s>
        self.overlap = self.capacity // 4
        self._record = encoder_record(
            type(self), source, self.layer, dim=cfg.hidden_size, frame_rate=None,
            preprocessing=(
                f"tokenizer={type(self.tokenizer).__name__};frames=tokens+specials;"
                f"window={self.capacity};overlap={self.overlap};stitch=most-central"
            ),
            config=cfg,
        )

    @property
    def record(self) -> EncoderRecord:
        return self._record

    def n_frames(self, text: str | None) -> int:
        return len(self._ids(text)) + 2

    def _ids(self, text: str | None) -> list[int]:
        return self.tokenizer(text or "", add_special_tokens=False)["input_ids"]

    def embed(self, batch: list[str]) -> list[np.ndarray]:
        import torch

        tok = self.tokenizer
        cap = self.capacity
        ids = [self._ids(t) for t in batch]
        windows: list[list[int]] = []  # token ids incl. specials
        plan: list[list[int]] = []  # per clip: its window indices
        starts_of: list[list[int]] = []
        for seq in ids:
            starts = window_starts(len(seq), cap, self.overlap)
            plan.append(list(range(len(windows), len(windows) + len(starts))))
            starts_of.append(starts)
            windows += [[tok.bos_token_id, *seq[s : s + cap], tok.eos_token_id] for s in starts]

        outs: list[np.ndarray] = []
        for sl in chunks(len(windows), self.max_batch):
            part = windows[sl]
            width = max(map(len, part))
            input_ids = torch.full((len(part), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for k, w in enumerate(part):
                input_ids[k, : len(w)] = torch.tensor(w)
                mask[k, : len(w)] = 1
            with torch.inference_mode():
                out = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    output_hidden_states=self.layer is not None,
                )
            h = hidden(out, self.layer).float().cpu().numpy()
            outs += [h[k, : len(w)] for k, w in enumerate(part)]

        results = []
        for seq, wins, starts in zip(ids, plan, starts_of):
            first, last = outs[wins[0]], outs[wins[-1]]
            if len(wins) == 1:
                results.append(first)
                continue
            # each window's owned tokens, shifted by 1 for its <s>
            spans = owned_spans(len(seq), starts, cap)
            body = [outs[w][1 + lo - s : 1 + hi - s] for w, s, (lo, hi) in zip(wins, starts, spans)]
            results.append(np.concatenate([first[:1], *body, last[-1:]], axis=0))
        return results
