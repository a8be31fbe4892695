"""Length bucketing: batches respect --batch-seconds of padded audio and cover every clip once."""

import math
from pathlib import Path

import numpy as np
import pytest

from sertool.encoders.registry import encoder_class
from sertool.jobs.embed import bucket_batches
from sertool.store.records import ClipSource


def padded_seconds(kind: str, duration_s: float) -> float:
    return encoder_class(kind).padded_seconds(duration_s)
from sertool.errors import SertoolError


def _clips(n: int, seed: int = 0) -> list[ClipSource]:
    rng = np.random.default_rng(seed)
    durs = rng.uniform(0.5, 70.0, size=n)
    return [ClipSource(f"c{i:03d}", Path(f"/x/c{i:03d}.wav"), float(d), None) for i, d in enumerate(durs)]


@pytest.mark.parametrize("kind", ["wavlm", "whisper", "roberta"])
@pytest.mark.parametrize("batch_seconds", [10.0, 95.0, 400.0])
def test_batches_cover_every_clip_once_within_budget(kind, batch_seconds):
    clips = _clips(200)
    batches = bucket_batches(clips, batch_seconds, encoder_class(kind).padded_seconds)
    ids = [c.clip_id for b in batches for c in b]
    assert sorted(ids) == sorted(c.clip_id for c in clips) and len(ids) == len(set(ids))
    for b in batches:
        padded = len(b) * max(padded_seconds(kind, c.duration_s) for c in b)
        # a clip longer than the budget goes alone; otherwise the padded batch fits
        assert padded <= batch_seconds or len(b) == 1


def test_similar_lengths_share_a_batch_and_batches_are_full():
    clips = _clips(300)
    batches = bucket_batches(clips, 60.0, encoder_class("wavlm").padded_seconds)
    spans = [(min(c.duration_s for c in b), max(c.duration_s for c in b)) for b in batches]
    # sorted by duration: batches do not overlap in length
    for (_, hi), (lo, _) in zip(spans, spans[1:]):
        assert hi <= lo
    # greedy: the next clip would not have fitted
    for b, nxt in zip(batches, batches[1:]):
        assert (len(b) + 1) * nxt[0].duration_s > 60.0


def test_whisper_pads_each_clip_to_whole_windows():
    assert padded_seconds("whisper", 1.0) == 30.0
    assert padded_seconds("whisper", 30.0) == 30.0
    assert padded_seconds("whisper", 70.0) == 90.0
    assert padded_seconds("wavlm", 7.5) == 7.5
    clips = [ClipSource(f"c{i}", Path("x"), 2.0, None) for i in range(10)]
    assert [len(b) for b in bucket_batches(clips, 120.0, encoder_class("whisper").padded_seconds)] == [4, 4, 2]
    assert [len(b) for b in bucket_batches(clips, 120.0, encoder_class("wavlm").padded_seconds)] == [10]


def test_plan_is_deterministic_and_order_independent():
    clips = _clips(50)
    a = bucket_batches(clips, 50.0, encoder_class("wavlm").padded_seconds)
    b = bucket_batches(list(reversed(clips)), 50.0, encoder_class("wavlm").padded_seconds)
    assert [[c.clip_id for c in x] for x in a] == [[c.clip_id for c in x] for x in b]
    assert math.isclose(sum(len(x) for x in a), 50)


def test_bad_budget_is_refused():
    with pytest.raises(SertoolError):
        bucket_batches(_clips(3), 0.0)
