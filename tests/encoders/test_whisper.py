import numpy as np

from encoder_helpers import max_rel_diff, speechlike


def test_batched_equals_one_at_a_time(whisper):
    wavs = [speechlike(s, i) for i, s in enumerate([1.3, 4.0, 2.71])]
    batched = whisper.embed(wavs)
    for w, b in zip(wavs, batched):
        assert max_rel_diff(b, whisper.embed([w])[0]) < 1e-3


def test_output_length_is_50_frames_per_second(whisper):
    for n in (16_000, 16_000 * 3 + 17, 8_000 + 320 * 7):
        (frames,) = whisper.embed([speechlike(n / 16_000, n)[:n]])
        assert frames.shape == (int(np.ceil(n / 320)), whisper.record.dim)
        assert frames.dtype == np.float32
    assert whisper.record.frame_rate == 50.0


def test_70_second_clip_embeds_in_three_windows(whisper):
    wav = speechlike(70.0, 7)
    (frames,) = whisper.embed([wav])
    assert frames.shape == (3500, whisper.record.dim)
    # the windows are consecutive and independent: the first 30 s alone give the first 1500 frames
    (head,) = whisper.embed([wav[: 30 * 16_000]])
    assert max_rel_diff(frames[:1500], head) < 1e-3
    (tail,) = whisper.embed([wav[60 * 16_000 :]])
    assert max_rel_diff(frames[3000:], tail) < 1e-3
