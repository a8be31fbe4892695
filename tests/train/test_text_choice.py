"""`train --text`: which transcript's frames the text encoder feeds the model, per split, read from the
matching `embed --text` variant and logged with the run; a choice the store cannot serve exits 2 naming
what to run, and leaves no run behind."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore
from sertool.store.layout import StoreLayout
from sertool.store.records import TranscriberRecord
from sertool.store.transcripts import text_sha256, write_asr
from sertool.train.config import TextPlan, TrainConfig
from sertool.train.distributed import DistInfo
from sertool.train.parts import build_feeds
from sertool.train.synthetic import _record

SHIFT = 3.0
"""The ASR variant's frames are the clean ones plus this: which variant a batch came from shows."""


def copy_store(frame_store, tmp_path) -> StoreLayout:
    root = tmp_path / "store"
    shutil.copytree(frame_store.root, root)
    return StoreLayout.at(root)


@pytest.fixture
def asr_store(frame_store, tmp_path) -> StoreLayout:
    """The frame store with ASR transcripts for every clip and RoBERTa frames of them (variant text-asr)."""
    layout = copy_store(frame_store, tmp_path)
    with Catalog(layout.catalog) as cat:
        ids = [r[0] for r in cat.execute("SELECT clip_id FROM clips ORDER BY 1")]
        write_asr(cat, [(c, f"asr text of {c}") for c in ids], TranscriberRecord("test/asr", "0", {}))
        have = [r[0] for r in cat.execute("SELECT clip_id FROM embeddings WHERE encoder = 'roberta' "
                                          "AND variant = 'clean' ORDER BY 1")]
        store = EmbeddingStore(layout)
        clean = store.reader([("roberta", "clean")], catalog=cat).read("roberta", "clean", have)
        with store.open_writer(cat, _record("roberta", clean[0].shape[1]), "text-asr") as w:
            w.write([(c, f.astype(np.float32) + SHIFT) for c, f in zip(have, clean)],
                    text={c: ("asr", text_sha256(f"asr text of {c}")) for c in have})
    return layout


def test_text_plan_reads_each_splits_variant(asr_store, tiny):
    config = TrainConfig(**tiny, text="asr,Train=preferred")
    assert config.text_plan == TextPlan("asr", (("Train", "preferred"),))
    feeds = build_feeds(config, asr_store, "cpu", DistInfo())
    assert feeds.data.train.text_variant == "clean" and feeds.data.dev.text_variant == "text-asr"
    assert {s.text_variant for s in feeds.data.tests.values()} == {"text-asr"}
    reader = EmbeddingStore(asr_store).reader([("roberta", "clean"), ("roberta", "text-asr")])
    for split, loader, variant in ((feeds.data.dev, feeds.dev_loader, "text-asr"),
                                   (feeds.data.train, feeds.eval_loader(feeds.data.train), "clean")):
        batch = next(iter(loader))
        frames, lengths = batch.inputs["roberta"]
        ids = [split.clip_ids[i] for i in batch.index.tolist()]
        want = reader.read("roberta", variant, ids)
        for k, w in enumerate(want):  # the frames the model got are the chosen variant's
            np.testing.assert_array_equal(frames[k, : int(lengths[k])].numpy(), w)
    digests = {d.context: d.digest for d in feeds.datasets}
    plain = build_feeds(TrainConfig(**tiny), asr_store, "cpu", DistInfo())
    assert {d.context: d.digest for d in plain.datasets}["training"] == digests["training"]  # Train: preferred
    assert {d.context: d.digest for d in plain.datasets}["evaluation"] != digests["evaluation"]  # dev: other text


def test_train_text_asr_is_logged_with_the_run(asr_store, tiny, tmp_path):
    from sertool.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = CliRunner().invoke(app, [
        "--store", str(asr_store.root), "--tracking-uri", uri, "train", "--text", "asr", "--epochs", "1",
        "--proj-dim", "16", "--lstm-hidden", "16", "--batch-size", "32", "--num-workers", "0", "--device", "cpu",
        "--experiment", "text"])
    assert res.exit_code == 0, res.output
    run = Tracker(uri, experiment="text").find_runs("text", kind="train")[0]
    assert run.params["text"] == "asr"


def test_text_asr_without_asr_transcripts_exits_2_and_starts_no_run(frame_store, tiny, tmp_path):
    layout = copy_store(frame_store, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = CliRunner().invoke(app, ["--store", str(layout.root), "--tracking-uri", uri, "train", "--text", "asr",
                                   "--epochs", "1", "--device", "cpu", "--experiment", "text"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "no asr transcripts" in res.stderr and "sertool transcribe --all" in res.stderr
    from sertool.tracking.tracker import Tracker

    tracker = Tracker(uri, experiment="text")
    try:
        runs = tracker.find_runs("text")
    except Exception:  # no experiment (or store) was ever made: nothing was started
        runs = []
    assert runs == []


def test_a_choice_the_store_has_not_embedded_names_the_embed_to_run(asr_store, tiny):
    from sertool.errors import NotFound

    with pytest.raises(NotFound, match=r"no corpus transcripts"):  # the synthetic corpus has none
        build_feeds(TrainConfig(**tiny, text="corpus"), asr_store, "cpu", DistInfo())
    with Catalog(asr_store.catalog) as cat:
        cat.execute("INSERT INTO transcripts (clip_id, source, text) SELECT clip_id, 'corpus', 'words' FROM clips")
    with pytest.raises(NotFound, match=r"has no frames .* run `sertool embed --encoders roberta --text corpus`"):
        build_feeds(TrainConfig(**tiny, text="corpus"), asr_store, "cpu", DistInfo())


@pytest.mark.parametrize("spec", ["asr,corpus", "Train=spoken", ""])
def test_bad_text_specs_are_refused(spec, tiny):
    from sertool.train.config import ConfigError

    with pytest.raises(ConfigError, match="text"):
        TrainConfig(**tiny, text=spec)
