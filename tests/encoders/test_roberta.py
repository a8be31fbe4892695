import numpy as np
import pytest

from sertool.encoders.registry import load_encoder
from sertool.encoders.roberta import owner_windows, window_starts

from encoder_helpers import max_rel_diff

LONG = " ".join(["that is wonderful news, i can not believe the weather today"] * 40)


def test_one_frame_per_token_including_specials(roberta):
    texts = ["that is wonderful news", "", "please stop"]
    for text, frames in zip(texts, roberta.embed(texts)):
        assert frames.shape == (len(roberta.tokenizer(text)["input_ids"]), roberta.record.dim)
    assert roberta.record.frame_rate is None and roberta.modality == "text"


def test_long_transcript_windows_give_each_token_once(roberta):
    n_tokens = len(roberta.tokenizer(LONG)["input_ids"])
    assert n_tokens > 3 * roberta.capacity  # really needs several windows
    (frames,) = roberta.embed([LONG])
    assert frames.shape == (n_tokens, roberta.record.dim)
    # the head of a long transcript comes from the first window: same as encoding the head alone
    ids = roberta.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    head = roberta.tokenizer.decode(ids[: roberta.capacity])
    (alone,) = roberta.embed([head])
    k = roberta.capacity - roberta.overlap // 2  # tokens owned by window 0
    assert max_rel_diff(frames[1:k], alone[1:k]) < 1e-3


def test_batched_equals_one_at_a_time(roberta):
    texts = ["hello there", LONG, "well i guess we will see what happens tomorrow", ""]
    batched = roberta.embed(texts)
    for t, b in zip(texts, batched):
        assert max_rel_diff(b, roberta.embed([t])[0]) < 1e-3


@pytest.mark.parametrize("n", [1, 10, 11, 37, 100])
def test_window_plan_covers_every_token_once(n):
    cap, overlap = 10, 3
    starts = window_starts(n, cap, overlap)
    own = owner_windows(n, starts, cap)
    assert starts[0] == 0 and starts[-1] + cap >= n
    for j, w in enumerate(own):
        assert starts[w] <= j < starts[w] + cap


def test_layer_selection(models_dir, roberta):
    mid = load_encoder("roberta", "tiny", layer=1, models_dir=models_dir)
    assert mid.record.name == "roberta-l1" and mid.record.fingerprint != roberta.record.fingerprint
    a, b = roberta.embed(["hello there"])[0], mid.embed(["hello there"])[0]
    assert a.shape == b.shape and max_rel_diff(b, a) > 1e-2


def most_central_by_matrix(n: int, starts: list[int], capacity: int) -> np.ndarray:
    """The rule as first written (a tokens x windows matrix): the reference for the linear version."""
    pos = np.arange(n)[:, None]
    s = np.asarray(starts)[None, :]
    inside = (pos >= s) & (pos < s + capacity)
    return np.where(inside, np.minimum(pos - s, s + capacity - 1 - pos), -1).argmax(axis=1)


@pytest.mark.parametrize("cap,overlap", [(10, 3), (128, 32), (7, 6), (5, 0), (2, 1)])
def test_owner_windows_is_the_most_central_rule(cap, overlap):
    for n in range(1, 400, 3):
        starts = window_starts(n, cap, overlap)
        np.testing.assert_array_equal(owner_windows(n, starts, cap), most_central_by_matrix(n, starts, cap))


def test_stitching_memory_is_linear_in_the_transcript_length():
    """A 2 MB transcript made owner_windows allocate 10.5 GiB (tokens x windows); now one int per token."""
    import tracemalloc

    n, cap = 30_000, 128  # 313 windows: the matrix would be ~9.4 M cells per array
    starts = window_starts(n, cap, cap // 4)
    tracemalloc.start()
    try:
        own = owner_windows(n, starts, cap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert own.shape == (n,) and peak < 4 * own.nbytes, peak
