import pytest

from sertool.encoders.asr import load_asr

from encoder_helpers import speechlike


@pytest.fixture(scope="module")
def asr(models_dir):
    return load_asr("tiny", models_dir=models_dir)


def test_batched_generation_equals_one_at_a_time(asr):
    wavs = [speechlike(s, i) for i, s in enumerate([0.6, 1.4])]
    batched = asr.transcribe(wavs)
    assert len(batched) == 2 and all(isinstance(t, str) for t in batched)
    assert batched == [asr.transcribe([w])[0] for w in wavs]


def test_new_tokens_are_capped_by_duration(asr):
    short, long = asr.max_new_tokens(16_000), asr.max_new_tokens(30 * 16_000)
    assert short < long <= asr.model.config.max_target_positions - 5
    # the random tiny model never says end-of-text, so its output is as long as the cap allows
    (text,) = asr.transcribe([speechlike(1.0, 0)])
    n = len(asr.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n <= short + 2
