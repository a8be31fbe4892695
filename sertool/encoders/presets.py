"""Where each encoder's weights come from: the `paper` checkpoints or the offline `tiny` models.

`paper` loads the paper's three checkpoints by Hugging Face id (from the local cache when offline)
or from `--model-dir D` (one sub-directory per model: `D/whisper` or `D/whisper-large-v3`, ...).
`tiny` is the same three architectures (and a tiny Whisper that also does ASR) with small dims and
fixed random weights, built once offline into the store's models directory with byte-level BPE
tokenizers trained on the corpus transcripts, then loaded with `from_pretrained` like any checkpoint.
Either way an encoder sees only a `ModelSource`: a local directory plus the provenance to record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NotFound, SertoolError

PRESETS = ("paper", "tiny")
KINDS = ("whisper", "wavlm", "roberta")

PAPER_CHECKPOINTS = {
    "whisper": "openai/whisper-large-v3",
    "wavlm": "microsoft/wavlm-large",
    "roberta": "FacebookAI/roberta-large",
}
"""Hugging Face ids of the paper's encoders. ASR uses the Whisper checkpoint too (large-v3 is one model)."""

# The paper architectures' configs, written out so tests can build them on the meta device without a
# download (values from the checkpoints' config.json files).
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "whisper": dict(
        vocab_size=51866, num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20,
        decoder_layers=32, decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=50256, bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258,
    ),
    "wavlm": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
        num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16, num_buckets=320, max_bucket_distance=800,
    ),
    "roberta": dict(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    ),
}

TINY_SEED = 0
TINY_VERSION = 1
"""Bump when the tiny recipe changes, so an old tiny directory is rebuilt rather than silently reused."""

TINY_ROBERTA_MAX_TOKENS = 128
"""Tiny RoBERTa's window (positions minus the two specials' padding offset) - small so tests window cheaply."""

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
"""Files whose bytes determine a local model's output: weights, configs, tokenizer vocabularies."""


@dataclass(frozen=True)
class ModelSource:
    """A model's local directory and the provenance an encoder records for it."""

    path: Path
    """Directory holding config, weights and the feature extractor / tokenizer."""
    checkpoint: str
    """Hugging Face id, local directory, or `sertool-tiny/<kind>` for the tiny preset."""
    revision: str | None
    """Hub commit hash, or a hash of the local files (weights + config + tokenizer)."""
    preset: str


def hash_files(directory: Path) -> str:
    """Content hash of the files that determine a local model's output (names and bytes)."""
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES):
        h.update(f.relative_to(directory).as_posix().encode())
        with f.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return "sha256:" + h.hexdigest()[:16]


def resolve(
    kind: str,
    preset: str = "tiny",
    *,
    model_dir: str | Path | None = None,
    store_models_dir: str | Path | None = None,
    texts: Iterable[str] | None = None,
) -> ModelSource:
    """The local directory and provenance for encoder `kind` ("whisper", "wavlm", "roberta", or "asr").

    `texts` train the tiny tokenizers the first time the tiny models are built (the corpus transcripts).
    """
    kind = "whisper" if kind == "asr" else kind
    if kind not in KINDS:
        raise NotFound(f"unknown encoder {kind!r} (known: {', '.join(KINDS)})")
    if preset == "tiny":
        root = tiny_models_dir(store_models_dir)
        build_tiny(root, texts or [])
        path = root / kind
        return ModelSource(path, f"sertool-tiny/{kind}", hash_files(path), preset)
    if preset != "paper":
        raise NotFound(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    repo = PAPER_CHECKPOINTS[kind]
    if model_dir is not None:
        base = Path(model_dir)
        for cand in (base / kind, base / repo.split("/")[-1], base / repo):
            if (cand / "config.json").exists():
                return ModelSource(cand, str(cand.resolve()), hash_files(cand), preset)
        raise NotFound(
            f"{base}: no {kind} model here (expected {base / kind}/config.json or {base / repo.split('/')[-1]}/config.json)"
        )
    return _from_hub(repo, preset)


def _from_hub(repo: str, preset: str) -> ModelSource:
    """The cached snapshot of `repo` (downloading it when online); the snapshot folder is the commit hash."""
    # Configs, tokenizers and the default weights only (large-v3 also ships fp32 shards, flax, tf...).
    patterns = ["*.json", "*.txt", "model.safetensors", "model-*-of-*.safetensors"]
    p = _snapshot(repo, patterns)
    if not any(p.glob("*.safetensors")):  # older repos (wavlm-large) have only the torch pickle
        p = _snapshot(repo, [*patterns, "pytorch_model.bin"])
    return ModelSource(p, repo, p.name, preset)


def _snapshot(repo: str, patterns: list[str]) -> Path:
    """Cache first; the network only when the cache lacks the files and HF_HUB_OFFLINE is not set."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=patterns, local_files_only=True))
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise NotFound(
                f"{repo}: not in the Hugging Face cache and HF_HUB_OFFLINE=1; download it or pass --model-dir"
            ) from None
    try:
        return Path(snapshot_download(repo, allow_patterns=patterns))
    except Exception as e:
        raise NotFound(f"{repo}: cannot load ({type(e).__name__}: {e}); pass --model-dir") from None


# -- the tiny preset ---------------------------------------------------------------------------------

def tiny_models_dir(store_models_dir: str | Path | None = None) -> Path:
    """`<store>/models/tiny` (the tiny models live with the store that uses them)."""
    if store_models_dir is None:
        from ..store.layout import StoreLayout

        store_models_dir = StoreLayout.at().models
    return Path(store_models_dir) / "tiny"


def tiny_configs(whisper_vocab: int, roberta_vocab: int, whisper_ids: dict[str, int]) -> dict[str, Any]:
    """The paper architectures shrunk: hidden 64, 2 layers; same front ends (128 mels, 50 frames/s, BPE)."""
    from transformers import RobertaConfig, WavLMConfig, WhisperConfig

    eot, sot = whisper_ids["<|endoftext|>"], whisper_ids["<|startoftranscript|>"]
    whisper = WhisperConfig(
        # One encoder head: attention over 1500 frames dominates CPU time and small heads run slowest.
        vocab_size=whisper_vocab, num_mel_bins=128, d_model=64, encoder_layers=2, encoder_attention_heads=1,
        decoder_layers=2, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        begin_suppress_tokens=None, suppress_tokens=None,
    )
    wavlm = WavLMConfig(
        **{**PAPER_CONFIGS["wavlm"], "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "conv_dim": (32,) * 7},
    )
    roberta = RobertaConfig(
        **{**PAPER_CONFIGS["roberta"], "vocab_size": roberta_vocab, "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 128,
           "max_position_embeddings": TINY_ROBERTA_MAX_TOKENS + 2},
    )
    return {"whisper": whisper, "wavlm": wavlm, "roberta": roberta}


WHISPER_SPECIALS = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>", "<|nospeech|>",
                    "<|notimestamps|>"]
"""Appended after the BPE vocabulary, <|notimestamps|> last, so no id falls in Whisper's timestamp range."""
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
"""roberta-large's order: <s>=0, <pad>=1, </s>=2."""


def _train_bpe(texts: list[str], specials: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE (GPT-2 style, as both checkpoints use) trained on `texts`; returns vocab and merges."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                            show_progress=False)
    data = json.loads(bpe._tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["merges"]]
    return dict(data["vocab"]), merges


def build_tiny(root: Path, texts: Iterable[str]) -> Path:
    """Build the tiny models into `root` once (atomic rename); later calls find them and return."""
    root = Path(root)
    stamp = root / "tiny.json"
    if stamp.exists():
        if json.loads(stamp.read_text()).get("version") == TINY_VERSION:
            return root
        raise SertoolError(f"{root}: tiny models from another sertool version; delete the folder to rebuild")
    import torch
    from transformers import (
        GenerationConfig,
        RobertaModel,
        RobertaTokenizer,
        Wav2Vec2FeatureExtractor,
        WavLMModel,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    from ._hf import quiet_transformers

    quiet_transformers()
    texts = [t for t in texts if t and t.strip()]
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # Tokenizers: byte-level BPE on the corpus transcripts (empty corpus -> bytes only, still complete).
        r_vocab, r_merges = _train_bpe(texts, ROBERTA_SPECIALS, 2000)
        w_vocab, w_merges = _train_bpe(texts, ["<|endoftext|>"], 2000)
        for tok in WHISPER_SPECIALS:
            w_vocab[tok] = len(w_vocab)
        r_tok = RobertaTokenizer(vocab=r_vocab, merges=r_merges, model_max_length=TINY_ROBERTA_MAX_TOKENS + 2)
        w_tok = WhisperTokenizer(vocab=w_vocab, merges=w_merges, model_max_length=448)
        w_tok.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS})
        cfg = tiny_configs(len(w_vocab), len(r_vocab), w_vocab)

        torch.manual_seed(TINY_SEED)
        whisper = WhisperForConditionalGeneration(cfg["whisper"]).eval()
        gen = GenerationConfig(
            decoder_start_token_id=w_vocab["<|startoftranscript|>"], eos_token_id=w_vocab["<|endoftext|>"],
            pad_token_id=w_vocab["<|endoftext|>"], bos_token_id=w_vocab["<|endoftext|>"], max_length=448,
            is_multilingual=True, lang_to_id={"<|en|>": w_vocab["<|en|>"]},
            task_to_id={"transcribe": w_vocab["<|transcribe|>"], "translate": w_vocab["<|translate|>"]},
            no_timestamps_token_id=w_vocab["<|notimestamps|>"], return_timestamps=False,
        )
        whisper.generation_config = gen
        whisper.save_pretrained(tmp / "whisper")
        WhisperFeatureExtractor(feature_size=128).save_pretrained(tmp / "whisper")
        w_tok.save_pretrained(tmp / "whisper")

        torch.manual_seed(TINY_SEED + 1)
        WavLMModel(cfg["wavlm"]).save_pretrained(tmp / "wavlm")
        Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
        ).save_pretrained(tmp / "wavlm")

        torch.manual_seed(TINY_SEED + 2)
        RobertaModel(cfg["roberta"], add_pooling_layer=False).save_pretrained(tmp / "roberta")
        r_tok.save_pretrained(tmp / "roberta")

        (tmp / "tiny.json").write_text(json.dumps(
            {"version": TINY_VERSION, "seed": TINY_SEED, "n_texts": len(texts)}, indent=1))
        try:
            tmp.rename(root)
        except OSError:
            if not stamp.exists():  # someone else built it meanwhile: theirs wins
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
