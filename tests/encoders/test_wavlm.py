import numpy as np

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
