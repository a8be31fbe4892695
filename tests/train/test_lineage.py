"""Dataset lineage: each training run logs what it trained and was evaluated on as MLflow datasets
(visible through `MlflowClient().get_run(...).inputs`), a re-ingest that changes a label makes
`sertool runs --stale` list the run, and an ensemble refuses members trained on different data
unless `--allow-mixed-data`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.corpus.ingest import ingest_records
from sertool.store.catalog import Catalog
from sertool.store.records import ClipRecord, CorpusRecords, LabelRecord, VoteRecord


@pytest.fixture(scope="module")
def lineage(tmp_path_factory):
    """A small frame store of its own (labels are changed here) and two finished runs on it: one on the
    consensus, one on soft vote targets (other data: the votes are part of what it trained on)."""
    from sertool.tracking.tracker import Tracker
    from sertool.train.config import TrainConfig
    from sertool.train.runs import train
    from sertool.train.synthetic import FrameSpec, write_frame_store

    from .conftest import TINY

    root = tmp_path_factory.mktemp("lineage")
    layout = write_frame_store(root / "store", FrameSpec(seed=5, votes=True, variants=(),
                                                        splits={"Train": 96, "Development": 32, "Test3": 8}))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="lineage")
    base = {**TINY, "epochs": 2, "experiment": "lineage"}
    hard = train(TrainConfig(**base, run_name="hard"), layout, tracker)
    soft = train(TrainConfig(**base, run_name="soft", targets="soft"), layout, tracker)
    return layout, uri, tracker, hard.run_id, soft.run_id


def cli(layout, uri, *args):
    return CliRunner().invoke(app, ["--store", str(layout.root), "--tracking-uri", uri, *args])


def reingest(layout, change) -> bool:
    """Re-ingest the store's corpus as it is, after `change(labels)` revised some labels in place."""
    with Catalog(layout.catalog, read_only=True) as cat:
        clips = cat.execute("SELECT clip_id, path, split, duration_s, sample_rate, n_channels, speaker_id, gender "
                            "FROM clips ORDER BY 1")
        labels = [list(r) for r in cat.execute(
            "SELECT clip_id, emotion, arousal, valence, dominance, n_annotators, agreement, source FROM labels ORDER BY 1")]
        votes = cat.execute("SELECT clip_id, annotator_id, emotion, secondary, arousal, valence, dominance FROM votes")
        root, fmt = cat.execute("SELECT root, format FROM corpora")[0]
    change({r[0]: r for r in labels})
    records = CorpusRecords("synthetic-frames", root, fmt, [ClipRecord(*r) for r in clips],
                            [VoteRecord(*v) for v in votes], [LabelRecord(*r) for r in labels])
    return ingest_records(layout.catalog, lambda: records).changed


def test_a_run_logs_its_datasets(lineage):
    from mlflow import MlflowClient

    layout, uri, tracker, hard, soft = lineage
    inputs = MlflowClient(uri).get_run(hard).inputs.dataset_inputs
    got = {next(t.value for t in di.tags if t.key == "mlflow.data.context"): di.dataset for di in inputs}
    assert {c: d.name for c, d in got.items()} == {"training": "store/corpus/Train",
                                                    "evaluation": "store/corpus/Development"}
    assert all(str(layout.root.resolve()) in d.source and d.source_type == "local" for d in got.values())
    run = tracker.get_run(hard)
    assert run.tags["sertool.data_digest"] == got["training"].digest and len(got["training"].digest) == 32
    assert run.datasets[0].profile["clips"] > 0
    # votes are part of what a soft-target run trained on: other data, same evaluation data
    other = {d.context: d.digest for d in tracker.get_run(soft).datasets}
    assert other["training"] != got["training"].digest and other["evaluation"] == got["evaluation"].digest


def test_a_relabelled_clip_makes_the_runs_stale(lineage):
    layout, uri, tracker, hard, soft = lineage
    res = cli(layout, uri, "runs", "--stale", "-e", "lineage")
    assert res.exit_code == 0 and "no stale runs" in res.stdout
    with Catalog(layout.catalog, read_only=True) as cat:
        original = cat.scalar("SELECT arousal FROM labels WHERE clip_id = 'Train_00003'")

    def relabel(labels):  # its arousal, revised by a new release of the corpus
        labels["Train_00003"][2] = 6.5 if original != 6.5 else 1.5

    assert reingest(layout, relabel)
    res = cli(layout, uri, "runs", "--stale", "-e", "lineage")
    assert res.exit_code == 0, res.output
    assert "hard" in res.stdout and "soft" in res.stdout and "store/corpus/Train training" in res.stdout
    assert "no stale runs" not in res.stdout

    def back(labels):  # the release is withdrawn: the runs describe the store again
        labels["Train_00003"][2] = original

    assert reingest(layout, back)
    assert "no stale runs" in cli(layout, uri, "runs", "--stale", "-e", "lineage").stdout


def test_an_ensemble_refuses_runs_on_different_data(lineage, tmp_path):
    layout, uri, tracker, hard, soft = lineage
    args = ["ensemble", "-e", "lineage", "--task", "2", "--top", "2", "--out", str(tmp_path / "sub.csv")]
    res = cli(layout, uri, *args)
    assert res.exit_code == 2 and "trained on different data" in res.output and "--allow-mixed-data" in res.output
    assert "sertool.data_digest" in res.output  # the --filter that picks one version
    res = cli(layout, uri, *args, "--allow-mixed-data", "--name", "mixed")
    assert res.exit_code == 0, res.output
    (run,) = tracker.find_runs("lineage", "attributes.run_name = 'mixed'")
    assert {(d.name, d.context) for d in run.datasets} == {("store/corpus/Train", "training"),
                                                          ("store/corpus/Development", "evaluation")}
    assert len({d.digest for d in run.datasets if d.context == "training"}) == 2  # both versions, logged
    assert "sertool.data_digest" not in run.tags
    digest = tracker.get_run(hard).tags["sertool.data_digest"]
    res = cli(layout, uri, *args, "--filter", f"tags.\"sertool.data_digest\" = '{digest}'", "--name", "one")
    assert res.exit_code == 0, res.output
    (one,) = tracker.find_runs("lineage", "attributes.run_name = 'one'")
    assert one.tags["sertool.data_digest"] == digest
