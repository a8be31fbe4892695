import numpy as np
import pytest
import soundfile as sf

from sertool.audio import SAMPLE_RATE, load_audio
from sertool.errors import BadInput


def tone(freq: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[spec.argmax()])


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path):
    left, right = tone(440, SAMPLE_RATE, 1.0), tone(1000, SAMPLE_RATE, 1.0)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    x = load_audio(tmp_path / "st.wav")
    assert x.dtype == np.float32 and x.ndim == 1
    np.testing.assert_allclose(x, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("sr", [8_000, 44_100])
def test_resampled_to_16k_keeping_duration_and_pitch(tmp_path, sr):
    sf.write(tmp_path / "a.wav", tone(440, sr, 2.0), sr, subtype="PCM_16")
    x = load_audio(tmp_path / "a.wav")
    assert abs(len(x) - 2 * SAMPLE_RATE) <= 1
    assert abs(peak_hz(x) - 440) < 1.0
    assert 0.45 < np.abs(x[1000:-1000]).max() < 0.55  # amplitude kept


def test_corrupt_wav_is_bad_input_naming_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage, not audio")
    with pytest.raises(BadInput) as e:
        load_audio(bad)
    assert str(bad) in str(e.value) and e.value.field == "audio"


def test_empty_wav_is_bad_input(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(BadInput, match="empty.wav"):
        load_audio(tmp_path / "empty.wav")
