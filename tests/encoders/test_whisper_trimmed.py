"""`window="trimmed"`: Whisper's encoder on each clip's own length (sertool/encoders/whisper_trimmed.py)."""

import numpy as np
import pytest

from sertool.encoders.registry import load_encoder
from sertool.errors import InvalidOption
from sertool.encoders.whisper_trimmed import mel_samples, pack

from encoder_helpers import max_rel_diff, speechlike


@pytest.fixture(scope="module")
def trimmed(whisper):
    return whisper.configured(window="trimmed")


def test_frames_are_50_per_second_of_audio(trimmed):
    for n in (400, 16_000, 16_000 * 3 + 17, 8_000 + 320 * 7, 16_000 * 30):
        (frames,) = trimmed.embed([speechlike(n / 16_000 + 0.01, n)[:n]])
        assert frames.shape == (int(np.ceil(n / 320)), trimmed.record.dim)
        assert frames.dtype == np.float32
    (long,) = trimmed.embed([speechlike(70.0, 7)])  # 30 + 30 + 10 s windows, the last one trimmed
    assert long.shape == (3500, trimmed.record.dim)
    assert trimmed.record.frame_rate == 50.0


def test_a_clip_does_not_depend_on_its_batch_mates(trimmed):
    clip = speechlike(3.3, 1)
    (alone,) = trimmed.embed([clip])
    with_long = trimmed.embed([clip, speechlike(25.0, 2)])[0]  # the batch padded to 25 s
    with_short = trimmed.embed([speechlike(0.4, 3), clip, speechlike(1.1, 4)])[1]
    assert max_rel_diff(with_long, alone) < 1e-5
    assert max_rel_diff(with_short, alone) < 1e-5


def test_a_full_window_is_the_padded_encoder_exactly(models_dir, whisper, trimmed):
    """30 s of audio fill the window: nothing to trim, so trimmed must reproduce transformers' own
    forward pass, at every layer (this pins the slicing, masking and layer counting to the model's)."""
    wav = speechlike(30.0, 5)
    assert max_rel_diff(trimmed.embed([wav])[0], whisper.embed([wav])[0]) < 1e-5
    for layer in (0, 1):
        padded = load_encoder("whisper", "tiny", models_dir=models_dir, layer=layer)
        cut = padded.configured(window="trimmed")
        assert max_rel_diff(cut.embed([wav])[0], padded.embed([wav])[0]) < 1e-5


def test_eager_attention_masks_as_sdpa_does(models_dir):
    wavs = [speechlike(2.2, 8), speechlike(6.0, 9)]
    sdpa = load_encoder("whisper", "tiny", models_dir=models_dir, options={"window": "trimmed"})
    eager = load_encoder("whisper", "tiny", models_dir=models_dir, options={"window": "trimmed"})
    eager.model.set_attn_implementation("eager")
    assert eager.model.config._attn_implementation == "eager"
    for a, b in zip(sdpa.embed(wavs), eager.embed(wavs)):
        assert max_rel_diff(b, a) < 1e-5


def test_trimmed_frames_have_their_own_fingerprint(whisper, trimmed):
    assert trimmed.record.fingerprint != whisper.record.fingerprint
    assert trimmed.record.name == whisper.record.name == "whisper"
    assert "pad=30s" in whisper.record.preprocessing and "pad=none" in trimmed.record.preprocessing
    assert trimmed.configured(window="padded").record == whisper.record
    with pytest.raises(InvalidOption, match="'cropped': choose from padded, trimmed"):
        whisper.configured(window="cropped")


def test_bucketing_costs_a_trimmed_clip_its_own_length(whisper, trimmed):
    assert whisper.padded_seconds(5.0) == 30.0
    assert trimmed.padded_seconds(5.0) == 5.0
    assert type(trimmed).padded_seconds(5.0) == 30.0  # the class (and the paper) pad


def test_a_5_second_clip_runs_a_sixth_of_the_positions():
    frames = 250  # 5 s
    assert mel_samples(frames) // 320 == 251  # positions through the encoder, of the window's 1500
    assert mel_samples(1500) == 30 * 16_000 and mel_samples(1499) == 30 * 16_000


def test_pack_groups_similar_lengths_within_the_budget():
    lengths = [1500, 10, 700, 12, 690, 1499]
    groups = pack(lengths, 3000)
    assert sorted(i for g in groups for i in g) == list(range(6))
    for g in groups:
        assert len(g) * (max(lengths[i] for i in g) + 1) <= 3000 or len(g) == 1
    assert groups == [[1, 3, 4, 2], [5], [0]]  # shortest first; two full windows do not fit one pass
