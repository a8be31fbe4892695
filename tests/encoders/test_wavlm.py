import numpy as np
import pytest

from sertool.encoders.registry import load_encoder

from encoder_helpers import max_rel_diff, speechlike


def conv_frames(n: int, cfg) -> int:
    for k, s in zip(cfg.conv_kernel, cfg.conv_stride):
        n = (n - k) // s + 1
    return n


def test_batched_equals_one_at_a_time(wavlm):
    wavs = [speechlike(s, i) for i, s in enumerate([0.9, 3.3, 2.0, 5.1])]
    batched = wavlm.embed(wavs)
    for w, b in zip(wavs, batched):
        assert max_rel_diff(b, wavlm.embed([w])[0]) < 1e-3


def test_frames_follow_the_conv_formula(wavlm):
    cfg = wavlm.model.config
    for n in (16_000, 16_000 * 2 + 399, 12_345):
        (frames,) = wavlm.embed([speechlike(n / 16_000, n)[:n]])
        assert frames.shape == (conv_frames(n, cfg), wavlm.record.dim)
    assert abs(conv_frames(16_000 * 10, cfg) / 10 - wavlm.record.frame_rate) < 0.2


def test_per_clip_normalisation_ignores_gain(wavlm):
    """Zero-mean/unit-variance per clip: a louder copy of a clip gives the same frames."""
    w = speechlike(2.0, 3)
    a, b = wavlm.embed([w, 4.0 * w])
    assert max_rel_diff(b, a) < 1e-3


def test_layer_selection_changes_name_fingerprint_and_frames(models_dir, wavlm):
    mid = load_encoder("wavlm", "tiny", layer=1, models_dir=models_dir)
    assert mid.record.name == "wavlm-l1" and mid.record.layer == 1
    assert mid.record.fingerprint != wavlm.record.fingerprint
    w = speechlike(1.5, 1)
    a, b = wavlm.embed([w])[0], mid.embed([w])[0]
    assert a.shape == b.shape and max_rel_diff(b, a) > 1e-2
    # the last layer asked by number is the default, under the default name
    last = load_encoder("wavlm", "tiny", layer=mid.model.config.num_hidden_layers, models_dir=models_dir)
    assert last.record == wavlm.record
    np.testing.assert_allclose(last.embed([w])[0], a, rtol=1e-5, atol=1e-6)


# -- long and very short clips (hardening issue, defects 6 and 10) ------------------------------------

def attention_lengths(enc, wavs) -> tuple[list[np.ndarray], list[int]]:
    """The frames, and the sequence length of every batch the transformer saw (observed by a hook)."""
    seen: list[int] = []
    handle = enc.model.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    try:
        return enc.embed(wavs), seen
    finally:
        handle.remove()


def windowed(models_dir, seconds: float):
    from sertool.encoders.presets import resolve
    from sertool.encoders.wavlm import WavLMEncoder

    return WavLMEncoder(resolve("wavlm", "tiny", models_dir=models_dir), window_seconds=seconds)


def test_a_long_clip_never_reaches_attention_in_one_piece(wavlm):
    """Attention memory is quadratic in frames (a 10-minute clip took 7.2 GB in the tiny model): a clip
    over the 60 s window goes through in windows, and still gets its single-pass number of frames."""
    n = 65 * 16_000 + 123
    (frames,), seen = attention_lengths(wavlm, [speechlike(n / 16_000, 65)[:n]])
    assert seen == [conv_frames(60 * 16_000, wavlm.model.config)] * 2  # two overlapping 60 s windows
    assert frames.shape == (conv_frames(n, wavlm.model.config), wavlm.record.dim)
    assert np.isfinite(frames).all()


def test_windowed_frames_are_the_single_pass_frames_count_and_close(models_dir, wavlm):
    """Small windows (10 s) so the test is fast: the single-pass frame count at any length, no window over
    `window_frames`, frames close to the single pass (README "Embedding": measured at the default)."""
    enc = windowed(models_dir, 10.0)
    cfg = enc.model.config
    n = 21 * 16_000 + 77  # three windows
    wav = speechlike(n / 16_000, n)[:n]
    (w,), seen = attention_lengths(enc, [wav])
    (s,) = wavlm.embed([wav])  # the default window: one pass at this length
    assert w.shape == s.shape == (conv_frames(n, cfg), enc.record.dim)
    assert seen == [enc.window_frames] * 3
    cos = (w * s).sum(1) / np.linalg.norm(w, axis=1) / np.linalg.norm(s, axis=1)
    rel = np.linalg.norm(w - s, axis=1) / np.linalg.norm(s, axis=1)
    assert cos.min() > 0.99 and rel.mean() < 1e-2, (cos.min(), rel.mean())
    # just over the window: one window, the whole clip's normalisation, so the single pass's frames
    (w,) = enc.embed([wav[: 10 * 16_000 + 1]])
    assert max_rel_diff(w, wavlm.embed([wav[: 10 * 16_000 + 1]])[0]) < 1e-5
    # a windowed clip's frames do not depend on its batch-mates (short clips, padded, or other long ones)
    for k, batch in ((1, [speechlike(1.0, 1), wav, speechlike(0.5, 2)]), (0, [wav, wav[: 12 * 16_000]])):
        assert max_rel_diff(enc.embed(batch)[k], enc.embed([wav])[0]) < 1e-5


def test_the_default_window_keeps_preprocessing_fingerprint_and_frames(models_dir, wavlm):
    """Existing stores keep their fingerprint: clips up to the default 60 s window (every clip of the
    supported corpora, <= 11 s) go in one pass as before, under the same preprocessing text; another
    window is recorded in the text, so its frames get a fingerprint of their own."""
    assert wavlm.record.preprocessing == "sr=16000;mono;normalize=per-clip;attention-mask;cut=conv-length"
    assert wavlm.window_samples == 60 * 16_000
    n = 11 * 16_000
    (_,), seen = attention_lengths(wavlm, [speechlike(11.0, 11)[:n]])
    assert seen == [conv_frames(n, wavlm.model.config)]
    other = windowed(models_dir, 10.0)
    assert "windows=10s" in other.record.preprocessing and other.record.fingerprint != wavlm.record.fingerprint


def test_a_clip_shorter_than_one_frame_is_refused_not_given_zero_frames(wavlm):
    """A 10 ms clip among normal ones used to come back with 0 frames (and alone, a conv traceback)."""
    with pytest.raises(ValueError, match="160 samples; one frame needs 400"):
        wavlm.embed([speechlike(1.0, 1), speechlike(0.01, 2)])
    assert wavlm.embed([speechlike(0.025, 3)])[0].shape == (1, wavlm.record.dim)  # 400 samples: one frame
