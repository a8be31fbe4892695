import pytest
import torch

from sertool.errors import SertoolError
from sertool.model.fusion import PAPER_ENCODERS, FusionConfig, FusionModel
from sertool.model.losses import MultiTaskLoss

TINY = {"whisper": 12, "wavlm": 8, "roberta": 10}


def tiny_config(**kw) -> FusionConfig:
    return FusionConfig(encoders=TINY, proj_dim=16, lstm_hidden=24, attn_hidden=4, **kw)


def random_batch(n: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for name, dim in TINY.items():
        lengths = torch.randint(1, 9, (n,), generator=g)
        frames = torch.randn(n, int(lengths.max()), dim, generator=g)
        batch[name] = (frames, lengths)
    return batch


@pytest.mark.parametrize("pooling", ["asp", "mean", "meanstd"])
def test_paper_dims_have_about_60m_parameters(pooling):
    model = FusionModel(FusionConfig(encoders=PAPER_ENCODERS, pooling=pooling))
    n = model.num_parameters()
    assert 55_000_000 <= n <= 70_000_000, n
    lstm = sum(p.numel() for p in model.lstm.parameters())
    # PyTorch's LSTM: 4 gates x (input + hidden weights + 2 biases) per layer.
    assert lstm == 4 * 2048 * (1028 + 2048 + 2) + 4 * 2048 * (2048 + 2048 + 2)


def test_outputs_shapes_and_attribute_range():
    model = FusionModel(tiny_config())
    out = model(random_batch(5))
    assert out.logits.shape == (5, 8)
    assert out.attributes.shape == (5, 3)
    assert ((out.attributes >= 1) & (out.attributes <= 7)).all()
    logits, attributes, aux = out  # unpacks like a tuple
    assert aux == {}  # no auxiliary heads unless asked for
    assert logits is out.logits


def test_a_clip_does_not_depend_on_its_batch_mates():
    torch.manual_seed(0)
    model = FusionModel(tiny_config()).eval()
    batch = random_batch(4)
    full = model(batch)
    one = {name: (frames[2:3, : int(lengths[2])], lengths[2:3]) for name, (frames, lengths) in batch.items()}
    single = model(one)
    torch.testing.assert_close(full.logits[2:3], single.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(full.attributes[2:3], single.attributes, rtol=1e-5, atol=1e-5)


def test_config_round_trips_and_rebuilds_the_same_model():
    cfg = tiny_config(pooling="mean", dropout=0.1)
    again = FusionConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert list(again.encoders) == list(TINY)  # order is the LSTM sequence order
    a, b = FusionModel(cfg), FusionModel(again)
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())


@pytest.mark.parametrize(
    "bad",
    [{"pooling": "max"}, {"proj_dim": 0}, {"encoders": {}}, {"encoders": {"x": 0}}, {"dropout": 1.0}],
)
def test_config_rejects_bad_values(bad):
    kw = {"encoders": TINY, "proj_dim": 16, "lstm_hidden": 24} | bad
    with pytest.raises(SertoolError):
        FusionConfig(**kw)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(SertoolError, match="unknown keys"):
        FusionConfig.from_dict(tiny_config().to_dict() | {"heads": 4})


def test_missing_encoder_is_named():
    batch = random_batch(2)
    del batch["wavlm"]
    with pytest.raises(KeyError, match="wavlm"):
        FusionModel(tiny_config())(batch)


def test_accepts_fp16_frames_from_the_store():
    model = FusionModel(tiny_config())
    batch = {k: (f.half(), n) for k, (f, n) in random_batch(3).items()}
    out = model(batch)
    assert out.logits.dtype == torch.float32 and torch.isfinite(out.logits).all()


@pytest.mark.parametrize("pooling", ["asp", "mean"])
def test_tiny_model_overfits_a_tiny_batch(pooling):
    torch.manual_seed(0)
    model = FusionModel(tiny_config(pooling=pooling))
    batch = random_batch(16, seed=1)
    g = torch.Generator().manual_seed(2)
    class_target = torch.randint(0, 8, (16,), generator=g)
    class_target[:3] = -100  # O clips
    attr_target = 1 + 6 * torch.rand(16, 3, generator=g)
    loss_fn = MultiTaskLoss(alpha=0.5, beta=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        out = model(batch)
        parts = loss_fn(out.logits, out.attributes, class_target, attr_target)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        losses.append(parts.total.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    pred = model(batch).logits.argmax(-1)
    keep = class_target >= 0
    assert (pred[keep] == class_target[keep]).float().mean() > 0.9


def test_pooled_norm_standardises_pooled_statistics_and_keeps_eval_batch_independent():
    """With pooled_norm the projection sees each pooled dimension standardised across the batch's clips;
    at eval it uses running statistics, so a clip's output still does not depend on its batch-mates."""
    torch.manual_seed(0)
    cfg = FusionConfig(encoders={"a": 6, "b": 4}, proj_dim=8, lstm_hidden=8, pooling="meanstd", pooled_norm=True)
    model = FusionModel(cfg)
    assert model.num_parameters() == FusionModel(FusionConfig(**{**cfg.to_dict(), "pooled_norm": False})).num_parameters()
    frames = {"a": torch.randn(5, 7, 6) * 0.5 + 3.0, "b": torch.randn(5, 9, 4) * 0.5 - 2.0}  # shared offsets
    lengths = {"a": torch.tensor([7, 5, 3, 7, 2]), "b": torch.tensor([9, 1, 4, 8, 6])}
    batch = {k: (frames[k], lengths[k]) for k in frames}
    captured = {}
    model.projs["a"].register_forward_hook(lambda m, inp, out: captured.__setitem__("a", inp[0].detach()))
    model.train()
    model(batch)
    pooled = captured["a"]  # (B, 2D) after the norm
    assert torch.allclose(pooled.mean(0), torch.zeros(12), atol=1e-4)
    assert torch.allclose(pooled.var(0, unbiased=False), torch.ones(12), atol=1e-2)
    model.eval()
    with torch.no_grad():
        whole = model(batch)
        one = model({k: (frames[k][2:3], lengths[k][2:3]) for k in frames})
    assert torch.allclose(whole.attributes[2], one.attributes[0], atol=1e-5)
    assert torch.allclose(whole.logits[2], one.logits[0], atol=1e-5)


def test_mean_only_pooling_at_paper_dims():
    """Average pooling projects each encoder's mean: Linear(dim, 1028), not Linear(2 dim, 1028)."""
    mean = FusionModel(FusionConfig(encoders=PAPER_ENCODERS, pooling="mean"))
    meanstd = FusionModel(FusionConfig(encoders=PAPER_ENCODERS, pooling="meanstd"))
    assert [m.in_features for m in mean.projs.values()] == [1280, 1024, 1024]
    assert [m.in_features for m in meanstd.projs.values()] == [2560, 2048, 2048]
    # the projections are the only difference: 1028 x (1280 + 1024 + 1024) weights fewer
    assert meanstd.num_parameters() - mean.num_parameters() == 1028 * (1280 + 1024 + 1024)
    projections = 1028 * (1280 + 1024 + 1024) + 3 * 1028
    lstm = 4 * 2048 * (1028 + 2048 + 2) + 4 * 2048 * (2048 + 2048 + 2)
    assert mean.num_parameters() == projections + 2 * 1028 + lstm + (2048 + 1) * 11  # + LayerNorm, head


@pytest.mark.parametrize("kw", [{}, {"pooling": "mean"}, {"pooling": "meanstd"}, {"encoders": {"a": 8, "b": 5}, "proj_dim": 7, "lstm_hidden": 9,
                                                          "lstm_layers": 3, "attn_hidden": 4, "pooled_norm": True}])
def test_parameter_count_is_known_before_building(kw):
    config = FusionConfig(**kw)
    assert config.n_parameters() == FusionModel(config).num_parameters()


def test_absurd_configs_are_refused_before_any_allocation():
    from sertool.errors import SertoolError

    with pytest.raises(SertoolError, match="beyond any sane model"):
        FusionConfig(proj_dim=10**6, lstm_hidden=10**6)
