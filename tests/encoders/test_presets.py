"""Presets: tiny models are fixed and loadable like checkpoints; paper architectures match the paper."""

import dataclasses
import json
import shutil

import pytest
import torch

from sertool.encoders.presets import build_tiny, resolve
from sertool.encoders.registry import encoder_class, encoder_kinds, load_encoder
from sertool.errors import NotFound, SertoolError

from encoder_helpers import TEXTS


def test_tiny_is_built_once_and_reproducible(models_dir, tmp_path):
    stamp = (models_dir / "tiny" / "tiny.json").stat().st_mtime_ns
    build_tiny(models_dir / "tiny", ["other texts"])  # already there: untouched
    assert (models_dir / "tiny" / "tiny.json").stat().st_mtime_ns == stamp
    again = build_tiny(tmp_path / "tiny", TEXTS)  # same texts + seed -> same bytes -> same revision
    for kind in ("whisper", "wavlm", "roberta"):
        a = resolve(kind, "tiny", models_dir=models_dir)
        b = resolve(kind, "tiny", models_dir=again.parent)
        assert a.revision == b.revision and a.checkpoint == f"sertool-tiny/{kind}"


def test_tiny_whisper_special_ids_inside_vocab(models_dir):
    cfg = json.loads((models_dir / "tiny" / "whisper" / "config.json").read_text())
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
        assert 0 <= cfg[key] < cfg["vocab_size"]


def test_registry_and_unknown_names(models_dir):
    assert encoder_kinds() == ["roberta", "wavlm", "whisper"]
    with pytest.raises(NotFound, match="hubert"):
        load_encoder("hubert", "tiny", models_dir=models_dir)
    with pytest.raises(NotFound, match="huge"):
        resolve("wavlm", "huge", models_dir=models_dir)
    with pytest.raises(SertoolError, match="out of range"):
        load_encoder("wavlm", "tiny", layer=99, models_dir=models_dir)


def test_fingerprint_follows_checkpoint_revision_and_preprocessing(models_dir, tmp_path, wavlm):
    # the same weights under --model-dir (paper preset): another checkpoint, so another fingerprint
    shutil.copytree(models_dir / "tiny" / "wavlm", tmp_path / "mine" / "wavlm")
    mine = load_encoder("wavlm", "paper", model_dir=tmp_path / "mine")
    assert mine.record.checkpoint == str((tmp_path / "mine" / "wavlm").resolve())
    assert mine.record.revision == wavlm.record.revision
    assert mine.record.fingerprint != wavlm.record.fingerprint
    # new weights in that directory: new revision, new fingerprint
    with torch.no_grad():
        mine.model.encoder.layers[0].feed_forward.output_dense.weight.add_(0.1)
    mine.model.save_pretrained(tmp_path / "mine" / "wavlm")
    changed = load_encoder("wavlm", "paper", model_dir=tmp_path / "mine")
    assert changed.record.revision != mine.record.revision
    assert changed.record.fingerprint != mine.record.fingerprint
    # preprocessing is part of it too
    other = dataclasses.replace(wavlm.record, preprocessing=wavlm.record.preprocessing + ";x")
    assert other.fingerprint != wavlm.record.fingerprint


def test_model_dir_without_the_model_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no roberta model"):
        resolve("roberta", "paper", model_dir=tmp_path)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_architectures_on_meta_device():
    """The paper's three encoders at full size, built from config without a download."""
    from transformers import RobertaConfig, RobertaModel, WavLMConfig, WavLMModel, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    with torch.device("meta"):
        whisper = WhisperEncoder(WhisperConfig(**encoder_class("whisper").paper_config))
        wavlm = WavLMModel(WavLMConfig(**encoder_class("wavlm").paper_config))
        roberta = RobertaModel(RobertaConfig(**encoder_class("roberta").paper_config))
    assert (len(whisper.layers), whisper.config.d_model, whisper.config.num_mel_bins) == (32, 1280, 128)
    assert (len(wavlm.encoder.layers), wavlm.config.hidden_size) == (24, 1024)
    assert (len(roberta.encoder.layer), roberta.config.hidden_size) == (24, 1024)
    for model, expected in ((whisper, 635e6), (wavlm, 315e6), (roberta, 355e6)):
        assert abs(count(model) / expected - 1) < 0.03, (type(model).__name__, count(model))


def test_paper_preset_offline_without_cache_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(NotFound, match="microsoft/wavlm-large.*--model-dir"):
        resolve("wavlm", "paper")
