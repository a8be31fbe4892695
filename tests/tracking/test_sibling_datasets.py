"""Sibling runs in separate processes (a parallel sweep's children) log the same dataset at the same
moment: each run gets its input. MLflow's SQL store looks a dataset up and then inserts it, so all but
one of them meet a UNIQUE violation; the logger asks again, and then only links the existing row."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from sertool.tracking.records import DatasetRef
from sertool.tracking.tracker import Tracker

DATASET = DatasetRef("store/corpus/Train", "abc123", "/store", "training")


def _child(uri: str, start, results) -> None:
    tracker = Tracker(uri, experiment="siblings")
    with tracker.start("train", run_name="child") as run:
        start.wait()  # every child logs at once
        try:
            run.log_datasets([DATASET])
            results.put(("ok", run.run_id))
        except Exception as e:  # reported to the test, which names it
            results.put(("error", repr(e)[:300]))


@pytest.mark.slow  # spawned interpreters importing mlflow
def test_siblings_logging_one_dataset_at_once_each_get_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="siblings")
    tracker.experiment_id(create=True)
    ctx = mp.get_context("spawn")
    n = 4
    start, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(uri, start, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    got = [results.get(timeout=5) for _ in procs]
    assert [g[0] for g in got] == ["ok"] * n, got
    for _, run_id in got:
        inputs = tracker.client.get_run(run_id).inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [(DATASET.name, DATASET.digest)]
