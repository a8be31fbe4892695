"""TrainConfig stage defaults and validation; recipes and flags in the right precedence; the schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from sertool.errors import BadInput, InvalidOption
from sertool.train.config import ConfigError, TrainConfig, field_names
from sertool.train.recipes import load_recipe, parse_set, resolve_config
from sertool.train.sweep import plan_sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "stage, lr, epochs, alpha, beta, select",
    [("pretrain", 2e-5, 50, 0.5, 0.5, "ccc"), ("task1", 1e-5, 50, 0.0, 1.0, "f1"), ("task2", 5e-6, 30, 1.0, 0.0, "ccc")],
)
def test_stage_defaults(stage, lr, epochs, alpha, beta, select):
    c = TrainConfig(stage=stage)
    assert (c.lr, c.epochs, c.alpha, c.beta, c.select) == (lr, epochs, alpha, beta, select)
    assert (c.batch_size, c.samples_per_epoch, c.warmup_epochs, c.min_lr) == (128, 32_000, 3.0, 1e-7)
    assert (c.proj_dim, c.lstm_hidden, c.pooling, c.encoders) == (1028, 2048, "asp", ("whisper", "wavlm", "roberta"))


def test_explicit_values_beat_stage_defaults():
    c = TrainConfig(stage="task2", lr=1e-4, epochs=3, gaussian_sigma=5.0)
    assert (c.lr, c.epochs, c.gaussian_sigma, c.alpha, c.beta) == (1e-4, 3, 5.0, 1.0, 0.0)
    assert TrainConfig(alpha=0.0, beta=1.0).select == "f1"  # only the classifier learns


@pytest.mark.parametrize(
    "kwargs, field",
    [({"stage": "finetune"}, "stage"), ({"alpha": 0.0, "beta": 0.0}, "alpha"), ({"lr": 0.0}, "lr"),
     ({"pooling": "max"}, "pooling"), ({"select": "f1", "beta": 0.0}, "select"), ({"batch_size": 0}, "batch_size"),
     ({"encoders": ("wavlm", "wavlm")}, "encoders"), ({"min_lr": 1.0}, "min_lr"), ({"device": "tpu"}, "device")],
)
def test_invalid_values_name_their_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs)
    assert e.value.field == field


def test_config_round_trip_and_docs():
    c = TrainConfig(stage="task1", encoders="whisper,roberta", seed=7)
    assert c.encoders == ("whisper", "roberta")
    assert TrainConfig.from_dict(c.to_dict()) == c
    # every option has a docstring under its field (recipes and `--set` users read them in the source)
    import ast
    import inspect

    body = ast.parse(inspect.getsource(TrainConfig)).body[0].body
    documented = {a.target.id for a, b in zip(body, body[1:])
                  if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)}
    assert documented == set(field_names())


def test_recipe_then_flags_precedence(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('stage = "task2"\nepochs = 7\nlr = 1e-4\nproj-dim = 64\nencoders = ["wavlm", "roberta"]\n')
    rec = load_recipe(recipe)
    c = resolve_config(rec, {"lr": 3e-4, "seed": None})
    assert (c.stage, c.epochs, c.lr, c.proj_dim, c.encoders) == ("task2", 7, 3e-4, 64, ("wavlm", "roberta"))
    assert c.alpha == 1.0 and c.min_lr == 1e-7  # untouched fields: stage and class defaults
    assert resolve_config(rec, {"stage": "task1"}).lr == 1e-4  # the recipe's lr beats the new stage's default


def test_recipe_errors_point_at_line_and_key(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('epochs = 3\n\nbatch_sise = 64\n')
    with pytest.raises(BadInput) as e:
        load_recipe(recipe)
    assert str(e.value).startswith(f"{recipe}:3: batch_sise: unknown option")
    recipe.write_text('epochs = "many"\n')
    with pytest.raises(BadInput, match=r":1: epochs: expected an integer"):
        load_recipe(recipe)
    recipe.write_text('alpha = 0\nbeta = 0\n')  # valid values, invalid combination: still points into the file
    with pytest.raises(BadInput, match=r":1: alpha: alpha and beta are both 0"):
        resolve_config(load_recipe(recipe))
    recipe.write_text('epochs = [3\n')
    with pytest.raises(BadInput, match="not valid TOML"):
        load_recipe(recipe)
    with pytest.raises(InvalidOption, match="epochs: must be >= 1") as e:  # a flag's value: the CLI names the flag
        resolve_config(None, {"epochs": 0})
    assert e.value.option == "epochs"


def test_set_values_are_typed():
    assert parse_set(["lr=1e-5", "pooling=mean", "augment=false", "gaussian_sigma=none", "encoders=a,b"]) == {
        "lr": 1e-5, "pooling": "mean", "augment": False, "gaussian_sigma": "none", "encoders": "a,b"}
    c = resolve_config(None, parse_set(["gaussian_sigma=none", "encoders=wavlm,roberta", "epochs=4"]))
    assert c.gaussian_sigma is None and c.encoders == ("wavlm", "roberta") and c.epochs == 4


def test_sweep_grid_runs_and_exclude(tmp_path):
    recipe = tmp_path / "g.toml"
    recipe.write_text('epochs = 2\n[sweep]\ngrid = { alpha = [0, 1], beta = [0, 1] }\nexclude = [{ alpha = 0, beta = 0 }]\n'
                      'runs = [{ pooling = "mean" }, { seed = 5 }]\n')
    rec = load_recipe(recipe)
    assert rec.swept_keys == ["alpha", "beta", "pooling", "seed"]
    configs = plan_sweep(rec, {"epochs": 1})
    assert len(configs) == 6 and all(c.epochs == 1 for c in configs)
    assert {(c.alpha, c.beta) for c in configs} == {(0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    with pytest.raises(InvalidOption, match="alpha: the recipe.s sweep varies it"):
        plan_sweep(rec, {"alpha": 0.5})


def test_paper_recipes():
    table1 = plan_sweep(load_recipe(ROOT / "experiments/paper/table1.toml"))
    steps = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert sorted((c.alpha, c.beta) for c in table1) == sorted((a, b) for a in steps for b in steps if a or b)
    assert all((c.epochs, c.samples_per_epoch, c.batch_size, c.lr, c.proj_dim, c.lstm_hidden) ==
               (50, 32000, 128, 2e-5, 1028, 2048) for c in table1)
    task1 = plan_sweep(load_recipe(ROOT / "experiments/paper/task1.toml"))
    assert sorted((c.class_weights, c.lr) for c in task1) == [(False, 1e-6), (False, 1e-5), (True, 1e-6), (True, 1e-5)]
    assert all(c.stage == "task1" and c.alpha == 0 and c.init_from == "best:f1" for c in task1)
    task2 = plan_sweep(load_recipe(ROOT / "experiments/paper/task2.toml"))
    assert sorted((c.gaussian_sigma or 0.0) for c in task2) == [0.0, 3.0, 5.0, 7.0]
    assert all((c.stage, c.lr, c.epochs, c.beta) == ("task2", 5e-6, 30, 0.0) for c in task2)
    tiny = resolve_config(load_recipe(ROOT / "experiments/tiny.toml"))
    assert tiny.proj_dim <= 64 and tiny.epochs <= 10


def test_warmup_then_cosine_to_floor():
    import torch

    from sertool.train.schedule import warmup_cosine

    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    sched = warmup_cosine(opt, steps_per_epoch=10, epochs=5, warmup_epochs=1, min_lr=1e-6)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # linear warm-up over the first epoch
    assert lrs[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then only down
    assert lrs[-1] == pytest.approx(1e-6)
    assert lrs[30] == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5, rel=1e-6)  # cosine half-way point
