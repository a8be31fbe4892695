"""How an epoch's sample becomes batches (issue 12): bucketed batches and the blocked read order only
regroup the same clips with the same variants; bucketing cuts the padding; blocked batches are a few
runs of store-neighbouring clips. Also the CUDA paths that can be checked on CPU: bf16 autocast and a
compiled model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from sertool.labels import Targets
from sertool.train.batches import RUNS_PER_BATCH, plan_epoch
from sertool.train.config import TrainConfig
from sertool.train.data import SplitData


def _split(n: int, seed: int = 0) -> tuple[SplitData, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    split = SplitData("Train", [f"c{i:04d}" for i in range(n)], Targets.from_consensus(["N"] * n, [(4, 4, 4)] * n),
                      [("noise",)] * n)
    lengths = np.exp(rng.normal(np.log(250), 0.5, n)).astype(int) + 20  # lognormal speech lengths, frames
    storage = rng.permutation(n) * 1000  # where each clip's frames start in the store
    return split, lengths, storage


def _plan(split, **kw):
    args = dict(samples_per_epoch=700, batch_size=32, seed=3, epoch=2, augment=True)
    return plan_epoch(split, **{**args, **kw})


def _padded_share(batches, lengths) -> float:
    pad = sum(len(b) * max(lengths[it.index] for it in b) - sum(lengths[it.index] for it in b) for b in batches)
    total = sum(len(b) * max(lengths[it.index] for it in b) for b in batches)
    return pad / total


def test_bucketed_batches_regroup_the_same_sample_with_less_padding():
    split, lengths, _ = _split(1000)
    random = _plan(split)
    bucketed = _plan(split, batching="bucketed", lengths=lengths)
    key = lambda batches: Counter((it.index, it.variant) for b in batches for it in b)  # noqa: E731
    assert key(bucketed) == key(random) and sum(map(len, random)) == 700  # the same clips, the same variants
    assert len(bucketed) == len(random) and min(map(len, bucketed)) > 1
    share_random, share_bucketed = _padded_share(random, lengths), _padded_share(bucketed, lengths)
    assert share_bucketed < 0.6 * share_random, (share_random, share_bucketed)  # the target: >= 40% fewer
    # a fresh grouping each epoch, the same for the same (seed, epoch)
    assert [[it.index for it in b] for b in _plan(split, batching="bucketed", lengths=lengths)] == \
           [[it.index for it in b] for b in bucketed]
    other = _plan(split, batching="bucketed", lengths=lengths, epoch=3)
    assert [it.index for it in other[0]] != [it.index for it in bucketed[0]]


def test_blocked_batches_are_a_few_runs_of_neighbouring_clips():
    split, _, storage = _split(1000)
    random = _plan(split)
    blocked = _plan(split, read_order="blocked", storage=storage)
    assert Counter((it.index, it.variant) for b in blocked for it in b) == \
           Counter((it.index, it.variant) for b in random for it in b)
    order = {it.index: r for r, it in enumerate(sorted((it for b in random for it in b), key=lambda it: storage[it.index]))}
    for b in blocked:
        positions = sorted(order[it.index] for it in b)
        runs = 1 + sum(1 for a, c in zip(positions, positions[1:]) if c != a + 1)
        # RUNS_PER_BATCH runs, plus one a batch boundary cuts and the epoch's two short runs at the ends
        assert runs <= RUNS_PER_BATCH + 2, positions
    # while random batches scatter across the store
    scattered = [1 + sum(1 for a, c in zip(p, p[1:]) if c != a + 1)
                 for p in (sorted(order[it.index] for it in b) for b in random)]
    assert np.mean(scattered) > 4 * (RUNS_PER_BATCH + 2)


def test_grouping_options_are_checked():
    from sertool.errors import InvalidOption

    with pytest.raises(InvalidOption, match="choose one"):
        TrainConfig(batching="bucketed", read_order="blocked")
    with pytest.raises(InvalidOption, match="precision"):
        TrainConfig(precision="fp8")


def test_a_bucketed_bf16_run_logs_less_padding_and_learns(frame_store, tracker, tiny, tiny_run):
    from sertool.train.runs import train

    result = train(TrainConfig(**{**tiny, "batching": "bucketed", "precision": "bf16", "run_name": "bucketed-bf16"}),
                   frame_store, tracker=tracker)
    random_share = np.mean([e.padded_share for e in tiny_run.history])
    bucketed_share = np.mean([e.padded_share for e in result.history])
    assert bucketed_share < 0.6 * random_share, (random_share, bucketed_share)
    run = tracker.get_run(result.run_id)
    assert run.params["batching"] == "bucketed" and run.params["precision"] == "bf16"
    assert run.metrics["padded_share"] == pytest.approx(result.history[-1].padded_share)
    assert result.best["f1_macro"] > 0.2 and result.best["ccc_mean"] > 0.3, result.best  # bf16 autocast on CPU learns


def test_a_compiled_model_computes_what_the_eager_one_does():
    from sertool.model.fusion import FusionConfig, FusionModel

    torch.manual_seed(0)
    model = FusionModel(FusionConfig(encoders={"a": 16, "b": 8}, proj_dim=16, lstm_hidden=16, attn_hidden=8))
    compiled = torch.compile(model, backend="aot_eager")  # graph capture + autograd, without a C++ toolchain
    x = {"a": (torch.randn(4, 10, 16), torch.tensor([10, 5, 3, 7])), "b": (torch.randn(4, 6, 8), torch.tensor([6, 6, 2, 1]))}
    eager, graph = model(x), compiled(x)
    torch.testing.assert_close(graph.logits, eager.logits)
    torch.testing.assert_close(graph.attributes, eager.attributes)
    graph.logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
