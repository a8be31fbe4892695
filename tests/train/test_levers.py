"""The levers that learn from every annotator (issue 11): soft targets from the catalog's votes,
annotator dropout, vote-mean attributes, class-weight power, the balanced sampler, auxiliary heads,
early stopping and the refit on Train + Development.

Vote shares are checked against counts written by hand from a hand-written votes table in a real
catalog; the sampler's and the weights' figures against their definitions; the runs are real (tiny)
runs on a store of frames whose votes scatter around each clip's true class.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sertool.labels import CLASSES, IGNORE_INDEX, Targets
from sertool.model.losses import aux_loss, class_weights, cross_entropy, soft_cross_entropy
from sertool.store.catalog import Catalog
from sertool.store.clips import clip_votes
from sertool.store.corpora import write_corpus
from sertool.store.records import ClipRecord, CorpusRecords, LabelRecord, VoteRecord
from sertool.train.batches import epoch_indices, plan_epoch
from sertool.train.config import TrainConfig
from sertool.train.data import SplitData
from sertool.train.targets import Levers, TargetMaker, VoteArrays

# clip -> (consensus, primary votes); hand-counted shares below
VOTES = {
    "c1": ("A", ["A", "A", "S", "O"]),  # drop O: A 2/3, S 1/3;  uniform: A (2 + 1/8)/4, S (1 + 1/8)/4, others 1/32
    "c2": ("H", ["H"]),  # a clip with one vote: H 1
    "c3": ("N", []),  # no votes in the catalog: the consensus, counted as a fallback
    "c4": ("O", ["O", "O", "O"]),  # only Other votes: no class target with `drop`
    "c5": ("X", ["A", "S", "N", "N", "S", "O"]),  # no plurality: S 2/5, N 2/5, A 1/5
}
HAND_DROP = {
    "c1": {"A": 2 / 3, "S": 1 / 3}, "c2": {"H": 1.0}, "c3": {"N": 1.0}, "c4": {}, "c5": {"S": 0.4, "N": 0.4, "A": 0.2},
}


def _dist(d: dict[str, float]) -> np.ndarray:
    return np.array([d.get(c, 0.0) for c in CLASSES], dtype=np.float32)


@pytest.fixture(scope="module")
def vote_catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("votes") / "catalog.duckdb"
    clips = [ClipRecord(c, f"Audios/{c}.wav", "Train", 3.0, 16000, 1, "spk1", "Female") for c in VOTES]
    votes = [VoteRecord(c, f"W{k}", code, None, 4.0 + k, 3.0, None) for c, (_, vs) in VOTES.items()
             for k, code in enumerate(vs)]
    labels = [LabelRecord(c, e, 4.0, 3.0, 5.0, len(vs), None, "corpus") for c, (e, vs) in VOTES.items()]
    with Catalog(path) as cat:
        write_corpus(cat, CorpusRecords("hand", "/corpus", "msp-podcast", clips, votes, labels))
    return path


def _split(ids: list[str]) -> SplitData:
    return SplitData("Train", ids, Targets.from_consensus([VOTES[c][0] for c in ids], [(4.0, 3.0, 5.0)] * len(ids)))


def _maker(vote_catalog, ids: list[str], **levers) -> TargetMaker:
    with Catalog(vote_catalog, read_only=True) as cat:
        votes = VoteArrays.build(ids, clip_votes(cat, ids))
    return TargetMaker(_split(ids), Levers(**levers), votes)


def test_soft_targets_are_the_hand_counted_vote_shares(vote_catalog):
    ids = list(VOTES)
    m = _maker(vote_catalog, ids, targets="soft")
    for i, c in enumerate(ids):
        np.testing.assert_allclose(m.soft[i], _dist(HAND_DROP[c]), atol=1e-6, err_msg=c)
    assert m.fallback == 1 and m.summary()["data.soft_fallback"] == 1  # c3 has no votes
    # Other votes spread evenly instead: c1 and c4 change, c4 gets a uniform target
    u = _maker(vote_catalog, ids, targets="soft", o_votes="uniform")
    np.testing.assert_allclose(u.soft[0], _dist({c: 1 / 32 for c in CLASSES}) + _dist({"A": 2 / 4, "S": 1 / 4}),
                               atol=1e-6)
    np.testing.assert_allclose(u.soft[3], np.full(8, 1 / 8), atol=1e-6)
    # the class weights' mass is the soft targets summed (MEDUSA's f_c)
    np.testing.assert_allclose(m.class_mass(), sum(_dist(HAND_DROP[c]) for c in ids), atol=1e-6)


def test_label_smoothing_and_vote_mean_attributes(vote_catalog):
    ids = ["c1", "c2", "c3"]
    m = _maker(vote_catalog, ids, label_smoothing=0.2, attribute_targets="votes")
    t = m.batch(np.arange(3), epoch=1)
    np.testing.assert_allclose(t.class_dist[0], 0.8 * _dist({"A": 1}) + 0.2 / 8, atol=1e-6)  # hard, smoothed
    # c1's arousal votes 4, 5, 6, 7 -> 5.5; valence 3; dominance unrated by the votes -> NaN; c3: no votes
    np.testing.assert_allclose(t.attrs[0, :2], [5.5, 3.0])
    assert np.isnan(t.attrs[0, 2]) and np.isnan(t.attrs[2]).all()


def test_annotator_dropout_is_seeded_and_never_empties_a_clip(vote_catalog):
    ids = list(VOTES)
    m = _maker(vote_catalog, ids, targets="soft", annotator_dropout=0.9, seed=4)
    idx = np.arange(len(ids))
    epochs = [m.batch(idx, epoch=e).class_dist for e in range(1, 9)]
    again = _maker(vote_catalog, ids, targets="soft", annotator_dropout=0.9, seed=4).batch(idx, epoch=3).class_dist
    np.testing.assert_array_equal(epochs[2], again)  # (seed, epoch, clip) alone decide
    assert any(not np.array_equal(epochs[0], d) for d in epochs[1:])  # and it does vary by epoch
    for d in epochs:
        # clips with class votes keep a distribution (at least one vote is kept); c1's kept share is
        # a count over at most 3 class votes (1/3 steps) and c2's single vote is never dropped
        assert np.allclose(d[[0, 1, 4]].sum(axis=1), 1.0)
        np.testing.assert_allclose(d[1], _dist({"H": 1.0}))
        assert np.allclose(d[0] * 6, np.round(d[0] * 6))
        np.testing.assert_allclose(d[2], _dist({"N": 1.0}))  # no votes: the consensus


def test_class_weights_with_a_power():
    counts = [40, 10, 5, 5, 20, 0, 10, 10]
    n = sum(counts)
    by_hand = [(n / (8 * c)) ** 0.5 if c else 0.0 for c in counts]
    np.testing.assert_allclose(class_weights(counts, 0.5), by_hand, rtol=1e-6)
    np.testing.assert_allclose(class_weights(counts, 1.0), [(n / (8 * c)) if c else 0 for c in counts], rtol=1e-6)
    # soft CE on one-hot targets is torch's weighted CE exactly
    logits, target = torch.randn(6, 8), torch.tensor([0, 3, IGNORE_INDEX, 7, 2, 2])
    onehot = torch.zeros(6, 8)
    onehot[torch.arange(6)[target >= 0], target[target >= 0]] = 1
    w = class_weights(counts, 0.5)
    assert torch.isclose(soft_cross_entropy(logits, onehot, w), cross_entropy(logits, target, w))
    assert torch.isclose(soft_cross_entropy(logits, onehot, w, kl=True), cross_entropy(logits, target, w))


def test_auxiliary_losses_leave_unknown_values_out():
    logits = torch.randn(4, 2, requires_grad=True)
    gender = torch.tensor([0, IGNORE_INDEX, 1, IGNORE_INDEX])
    loss = aux_loss("gender", logits, gender)
    by_hand = torch.nn.functional.cross_entropy(logits[[0, 2]], gender[[0, 2]])
    assert torch.isclose(loss, by_hand)
    loss.backward()
    assert (logits.grad[[1, 3]] == 0).all() and (logits.grad[[0, 2]] != 0).any()
    out = torch.randn(3, 17, requires_grad=True)
    target = torch.full((3, 17), float("nan"))
    target[1] = torch.linspace(0, 1, 17)
    sec = aux_loss("secondary", out, target)
    assert torch.isclose(sec, torch.nn.functional.binary_cross_entropy_with_logits(out[1], target[1]))
    sec.backward()
    assert (out.grad[[0, 2]] == 0).all()
    assert aux_loss("gender", logits, torch.full((4,), IGNORE_INDEX)) == 0  # nothing known: 0, not NaN


def test_balanced_sampler_class_counts_per_epoch():
    rng = np.random.default_rng(0)
    emotions = [c for c, n in zip(CLASSES, (300, 40, 120, 25, 60, 30, 35, 500)) for _ in range(n)] + ["O"] * 90
    rng.shuffle(emotions)
    split = SplitData("Train", [f"c{i}" for i in range(len(emotions))],
                      Targets.from_consensus(emotions, [(4.0, 4.0, 4.0)] * len(emotions)))
    spec = TrainConfig(sampler="balanced:3:0.2").sampler_spec
    target = split.class_target
    natural = epoch_indices(split, samples_per_epoch=10_000, seed=1, epoch=2, sampler=spec)
    assert len(natural) == len(split)  # before epoch 3: the natural sample
    seen = []
    for epoch in (3, 4):
        idx = epoch_indices(split, samples_per_epoch=10_000, seed=1, epoch=epoch, sampler=spec)
        counts = np.bincount(target[idx][target[idx] >= 0], minlength=8)
        assert (counts == 25).all(), counts  # every class cut to the rarest (U: 25)
        n_xo = int((target[idx] < 0).sum())
        assert n_xo == round(0.2 / 0.8 * 200) and n_xo / len(idx) == pytest.approx(0.2)
        assert len(set(idx.tolist())) == len(idx)
        seen.append(set(idx.tolist()))
    assert seen[0] != seen[1]  # a fresh undersample each epoch
    again = epoch_indices(split, samples_per_epoch=10_000, seed=1, epoch=4, sampler=spec)
    assert set(again.tolist()) == seen[1]
    # DDP: the ranks' shares of a balanced epoch together are that epoch's sample
    shares = [plan_epoch(split, samples_per_epoch=10_000, batch_size=32, seed=1, epoch=4, augment=False,
                         rank=r, world=2, sampler=spec) for r in range(2)]
    assert {it.index for s in shares for b in s for it in b} == seen[1]
    assert all(it.epoch == 4 for s in shares for b in s for it in b)


def test_each_lever_round_trips_through_a_recipe(tmp_path):
    from sertool.train.recipes import load_recipe, resolve_config

    recipe = tmp_path / "levers.toml"
    recipe.write_text('targets = "soft"\nsoft_loss = "kl"\no_votes = "uniform"\nlabel_smoothing = 0.1\n'
                      'annotator_dropout = 0.2\nattribute_targets = "votes"\nclass_weight_power = 0.5\n'
                      'sampler = "balanced:4:0.11"\naux = ["gender:0.1", "secondary"]\nearly_stop = 5\n'
                      'refit_epochs = 3\n')
    config = resolve_config(load_recipe(recipe), {})
    assert (config.targets, config.soft_loss, config.o_votes, config.label_smoothing) == ("soft", "kl", "uniform", 0.1)
    assert (config.annotator_dropout, config.attribute_targets, config.class_weight_power) == (0.2, "votes", 0.5)
    assert config.sampler_spec == ("balanced", 4, 0.11)
    assert config.aux_weights == {"gender": 0.1, "secondary": 0.1}
    assert (config.early_stop, config.refit_epochs) == (5, 3)
    assert TrainConfig.from_dict(config.to_dict()) == config
    bad = tmp_path / "bad.toml"
    bad.write_text('targets = "soft"\nsampler = "balanced:x"\n')
    from sertool.errors import BadInput

    with pytest.raises(BadInput, match="sampler"):
        resolve_config(load_recipe(bad), {})


@pytest.fixture(scope="module")
def vote_store(tmp_path_factory):
    from sertool.train.synthetic import FrameSpec, write_frame_store

    spec = FrameSpec(seed=5, splits={"Train": 240, "Development": 64, "Test3": 16}, votes=True)
    return write_frame_store(tmp_path_factory.mktemp("vote-frames") / "store", spec)


def test_a_run_with_every_lever_logs_them(vote_store, tracker, tiny):
    from sertool.train.runs import train

    config = TrainConfig(**{**tiny, "epochs": 8, "targets": "soft", "annotator_dropout": 0.2,
                            "attribute_targets": "votes", "class_weight_power": 0.5, "sampler": "balanced:4:0.1",
                            "aux": ("gender", "secondary:0.05"), "label_smoothing": 0.05, "run_name": "levers-all"})
    result = train(config, vote_store, tracker=tracker)
    run = tracker.get_run(result.run_id)
    expected = {"targets": "soft", "annotator_dropout": "0.2", "attribute_targets": "votes",
                "class_weight_power": "0.5", "sampler": "balanced:4:0.1", "label_smoothing": "0.05",
                "soft_loss": "ce", "o_votes": "drop"}
    assert {k: run.params[k] for k in expected} == expected
    assert "gender" in run.params["aux"] and "secondary:0.05" in run.params["aux"]
    assert run.params["data.soft_fallback"] == "0" and int(run.params["data.aux_gender_known"]) == result.n_train
    # X clips joined the sample for their votes: more training clips than the consensus alone allows
    with Catalog(vote_store.catalog, read_only=True) as cat:
        n_x, n_all = cat.execute("SELECT count(*) FILTER (WHERE emotion = 'X'), count(*) FROM labels "
                                 "JOIN clips USING (clip_id) WHERE split = 'Train'")[0]
    assert n_x > 0 and int(run.params["data.n_train"]) == result.n_train == n_all
    assert result.best["f1_macro"] > 0.3 and result.best["ccc_mean"] > 0.5, result.best  # it learns (chance: 0.12, 0)


def test_early_stop_and_refit_on_train_and_dev(vote_store, tracker, tracking_uri, tiny, monkeypatch):
    from sertool.tracking.names import PARENT_TAG, REFIT_TAG
    from sertool.train.runs import train

    config = TrainConfig(**{**tiny, "epochs": 12, "lr": 3e-2, "early_stop": 1, "refit_epochs": 2,
                            "run_name": "stops-early"})
    result = train(config, vote_store, tracker=tracker)
    assert result.stopped_epoch is not None and result.stopped_epoch == result.best_epoch + 1 < 12
    parent = tracker.get_run(result.run_id)
    assert parent.metrics["stopped_epoch"] == result.stopped_epoch
    refit = tracker.get_run(result.refit.run_id)
    assert refit.tags[PARENT_TAG] == parent.run_id and refit.tags[REFIT_TAG] == "train+dev"
    assert not any(k.startswith(("best_dev_", "dev_")) for k in refit.metrics)  # Development trained it
    with Catalog(vote_store.catalog, read_only=True) as cat:
        n_dev = cat.execute("SELECT count(*) FROM labels JOIN clips USING (clip_id) "
                            "WHERE split = 'Development' AND emotion <> 'X'")[0][0]
    assert int(refit.params["data.n_train"]) == int(parent.params["data.n_train"]) + n_dev
    assert int(refit.params["data.n_dev"]) == 0 and refit.params["epochs"] == "2"
    assert len(tracker.load_predictions(refit.run_id, "Test3")) == 16  # it still answers the test split
    from sertool.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("COLUMNS", "200")
    res = CliRunner().invoke(app, ["--store", str(vote_store.root), "runs", "-e", "train-tests"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if "stops-early-refit" in ln)
    assert "(refit)" in line and "no dev" in line
    assert "refit run(s) trained on Train and Development" in res.stderr


def test_bad_lever_options_are_one_line(vote_store, tracking_uri, monkeypatch):
    from sertool.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    for args, message in ((["--annotator-dropout", "0.3"], "--annotator-dropout: acts on vote-derived targets"),
                          (["--sampler", "balanced:0"], "--sampler: 'balanced:0': FROM_EPOCH must be >= 1"),
                          (["--aux", "age"], "--aux: 'age' is not one of gender, secondary"),
                          (["--refit", "train", "3"], "--refit: 'train': the only refit is train+dev")):
        res = CliRunner().invoke(app, ["--store", str(vote_store.root), "train", *args])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], (args, res.stderr)
