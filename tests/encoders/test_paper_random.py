"""`paper-random`: the paper's architectures at full size with random weights, offline
(sertool/encoders/paper.py), and the checkpoint directories `sertool models save` writes from them."""

import json

import numpy as np
import pytest
import torch

from sertool.encoders.asr import WhisperASR
from sertool.encoders.paper import paper_random_encoders, random_model, save_checkpoints
from sertool.encoders.presets import build_paper_random, random_source, resolve
from sertool.encoders.registry import load_encoder
from sertool.errors import InvalidOption

from encoder_helpers import TEXTS, speechlike

LAYERS = 1
"""Depth of the paper-shaped models the round trip runs: paper widths, vocabularies and front ends."""


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_full_size_parameter_counts_on_the_meta_device(tmp_path):
    root = build_paper_random(tmp_path / "paper-random", TEXTS)  # configs and tokenizers only: no weights
    whisper, wavlm, roberta = (random_model(k, root, device="meta") for k in ("whisper", "wavlm", "roberta"))
    # nothing allocated (WavLM makes its 1024-float mask embedding on the CPU whatever the device)
    assert sum(p.numel() for m in (whisper, wavlm, roberta) for p in m.parameters() if not p.is_meta) <= 1024
    assert (len(whisper.layers), whisper.config.d_model, whisper.config.num_mel_bins) == (32, 1280, 128)
    assert (whisper.config.vocab_size, whisper.config.decoder_layers) == (51866, 32)
    assert (len(wavlm.encoder.layers), wavlm.config.hidden_size, wavlm.config.conv_bias) == (24, 1024, False)
    assert (len(roberta.encoder.layer), roberta.config.hidden_size, roberta.config.vocab_size) == (24, 1024, 50265)
    # whisper-large-v3's encoder 637 M, wavlm-large 315 M, roberta-large 355 M (354.3 M without its pooler,
    # which frames never use)
    for model, expected in ((whisper, 637e6), (wavlm, 315.4e6), (roberta, 354.3e6)):
        assert abs(count(model) / expected - 1) < 0.002, (type(model).__name__, count(model))


def test_processors_are_the_paper_checkpoints(tmp_path):
    root = build_paper_random(tmp_path / "paper-random", TEXTS)
    fe = json.loads((root / "whisper" / "preprocessor_config.json").read_text())
    assert (fe["feature_size"], fe["n_fft"], fe["hop_length"], fe["chunk_length"]) == (128, 400, 160, 30)
    wavlm = json.loads((root / "wavlm" / "preprocessor_config.json").read_text())
    assert wavlm["do_normalize"] and wavlm["return_attention_mask"]
    tok = json.loads((root / "roberta" / "tokenizer_config.json").read_text())
    assert tok["model_max_length"] == 512
    cfg = json.loads((root / "whisper" / "config.json").read_text())
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
        assert 0 <= cfg[key] < cfg["vocab_size"]


def test_the_preset_is_marked_random_and_reproducible(tmp_path):
    a = paper_random_encoders(tmp_path / "a", ("wavlm",), texts=TEXTS, layers=LAYERS)["wavlm"]
    b = paper_random_encoders(tmp_path / "b", ("wavlm",), texts=TEXTS, layers=LAYERS)["wavlm"]
    assert a.record.checkpoint == "sertool-paper-random/wavlm"
    assert a.record.revision.startswith("random(seed=1):torch-")
    assert a.record == b.record  # same seed, same weights, same fingerprint
    wav = speechlike(1.5, 0)
    assert np.array_equal(a.embed([wav])[0], b.embed([wav])[0])


def test_resolve_builds_the_preset_into_the_models_folder(tmp_path):
    source = resolve("roberta", "paper-random", models_dir=tmp_path, texts=TEXTS)
    assert source.path == tmp_path / "paper-random" / "roberta" and source.random_seed == 2
    assert not list(source.path.glob("*.safetensors"))


@pytest.mark.slow  # paper-width Whisper over 30 s windows and 0.9 GB of safetensors: ~35 s on two busy cores
def test_saved_checkpoints_load_as_paper_checkpoints_with_identical_embeddings(tmp_path):
    """In memory, then through `save_pretrained` and `--preset paper --model-dir`: the path real
    checkpoints take. Paper widths at depth 1, so it runs in seconds."""
    wavs = [speechlike(1.2, 1), speechlike(2.5, 2)]
    inputs = {"whisper": wavs, "wavlm": wavs, "roberta": TEXTS[:3]}
    live = paper_random_encoders(tmp_path / "live", texts=TEXTS, layers=LAYERS)
    saved = save_checkpoints(tmp_path / "out", TEXTS, layers=LAYERS)
    assert [s.kind for s in saved] == ["roberta", "wavlm", "whisper"]
    for s in saved:
        assert (s.path / "model.safetensors").exists() and s.bytes > 4 * s.parameters
        assert "sertool_random_weights" in json.loads((s.path / "config.json").read_text())
    for kind, enc in live.items():
        loaded = load_encoder(kind, "paper", model_dir=tmp_path / "out")
        assert loaded.record.checkpoint == str((tmp_path / "out" / kind).resolve())
        assert loaded.record.revision.startswith(f"random(seed={enc.source.random_seed}):sha256:")
        assert loaded.record.fingerprint != enc.record.fingerprint  # another checkpoint, as any directory
        for a, b in zip(enc.embed(inputs[kind]), loaded.embed(inputs[kind])):
            assert np.array_equal(a, b), kind
    trimmed = live["whisper"].configured(window="trimmed")
    loaded = load_encoder("whisper", "paper", model_dir=tmp_path / "out", options={"window": "trimmed"})
    for a, b in zip(trimmed.embed(wavs), loaded.embed(wavs)):
        assert np.array_equal(a, b)
    # ASR reads the whole saved Whisper, decoder included, as it reads large-v3: the same weights as
    # paper-random's ASR model, whose encoder is the encoder above
    asr_saved = WhisperASR(resolve("asr", "paper", model_dir=tmp_path / "out")).model.state_dict()
    asr_live = WhisperASR(random_source("whisper", tmp_path / "live")).model.state_dict()
    assert asr_saved.keys() == asr_live.keys()
    assert all(torch.equal(asr_saved[k], asr_live[k]) for k in asr_saved)
    encoder = live["whisper"].model.state_dict()
    assert all(torch.equal(encoder[k], asr_live[f"model.encoder.{k}"]) for k in encoder)


def test_save_refuses_an_existing_directory_and_unknown_kinds(tmp_path):
    (tmp_path / "out" / "wavlm").mkdir(parents=True)
    with pytest.raises(InvalidOption, match="exists already"):
        save_checkpoints(tmp_path / "out", TEXTS, ["wavlm"], layers=1)
    with pytest.raises(InvalidOption, match="no paper-random model for hubert"):
        save_checkpoints(tmp_path / "other", TEXTS, ["hubert"], layers=1)
    with pytest.raises(InvalidOption, match="at least 1"):
        save_checkpoints(tmp_path / "other", TEXTS, ["wavlm"], layers=0)
