import pytest
import torch

from sertool.model.pooling import POOLINGS, VAR_FLOOR, AttentiveStatsPooling, MeanPooling, MeanStdPooling


def make_pool(kind: str, dim: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return AttentiveStatsPooling(dim, attn_hidden=8) if kind == "asp" else POOLINGS[kind](dim)


@pytest.mark.parametrize("kind", ["asp", "mean", "meanstd"])
def test_padding_changes_nothing(kind):
    dim = 6
    pool = make_pool(kind, dim).double()
    clips = [torch.randn(n, dim, dtype=torch.float64) for n in (5, 1, 9)]
    lengths = torch.tensor([len(c) for c in clips])
    padded = torch.full((3, 12, dim), float("nan"), dtype=torch.float64)  # garbage, even NaN, in padding
    padded[:, 10:] = 1e6
    for i, c in enumerate(clips):
        padded[i, : len(c)] = c
    batched = pool(padded, lengths)
    assert batched.shape == (3, pool.width_factor * dim)
    for i, c in enumerate(clips):
        alone = pool(c[None], torch.tensor([len(c)]))
        torch.testing.assert_close(batched[i : i + 1], alone.to(batched.dtype))


def test_mean_pooling_is_the_masked_mean_only():
    """The paper's "average pooling": the mean over a clip's own frames, width D."""
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    lengths = torch.tensor([7, 3])
    out = MeanPooling(4)(x, lengths)
    assert out.shape == (2, 4)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[i], x[i, :n].float().mean(dim=0))


def test_meanstd_pooling_is_masked_mean_and_std():
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    lengths = torch.tensor([7, 3])
    out = MeanStdPooling(4)(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        frames = x[i, :n].float()
        expected_std = frames.var(dim=0, unbiased=False).clamp_min(VAR_FLOOR).sqrt()
        torch.testing.assert_close(out[i, :4], frames.mean(dim=0))
        torch.testing.assert_close(out[i, 4:], expected_std)


def test_asp_weights_follow_the_attention():
    """With a scorer that prefers one frame overwhelmingly, ASP returns that frame and ~0 spread."""
    pool = AttentiveStatsPooling(2, attn_hidden=1)
    with torch.no_grad():
        pool.attention[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        pool.attention[0].bias.zero_()
        pool.attention[2].weight.fill_(1000.0)
        pool.attention[2].bias.zero_()
    x = torch.tensor([[[-3.0, 1.0], [5.0, 2.0], [0.0, 7.0]]])
    out = pool(x, torch.tensor([3]))
    torch.testing.assert_close(out[0, :2], torch.tensor([5.0, 2.0]))
    torch.testing.assert_close(out[0, 2:], torch.full((2,), VAR_FLOOR**0.5))


@pytest.mark.parametrize("kind", ["asp", "mean", "meanstd"])
def test_gradients_finite_for_length_one_and_constant_frames(kind):
    pool = make_pool(kind, 3)
    x = torch.ones(2, 4, 3)
    x[0, 1:] = 0.0  # clip 0: a single frame
    x.requires_grad_(True)
    out = pool(x, torch.tensor([1, 4]))  # clip 1: four identical frames
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()
    for p in pool.parameters():
        assert torch.isfinite(p.grad).all()
