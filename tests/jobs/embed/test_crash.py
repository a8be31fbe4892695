"""kill -9 of `sertool embed` at a random moment, then a rerun: the store equals an uninterrupted run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sertool.jobs.embed import EmbedConfig, embed_store
from sertool.store.catalog import Catalog
from sertool.store.layout import StoreLayout

from .test_embed import read_all

ENCODERS = ("whisper", "wavlm", "roberta")
ARGS = ["--encoders", ",".join(ENCODERS), "--augment", "noise", "--batch-seconds", "8", "--seed", "3",
        "--splits", "Train"]
CFG = EmbedConfig(preset="tiny", encoders=ENCODERS, augment=("noise",), batch_seconds=8.0, seed=3, splits=("Train",))


def embedding_rows(layout: StoreLayout) -> list[tuple]:
    with Catalog(layout.catalog, read_only=True) as cat:
        return cat.execute("SELECT clip_id, encoder, variant, row_start, n_frames FROM embeddings ORDER BY ALL")


def kill_mid_run(layout: StoreLayout, max_delay: float, rng: random.Random) -> tuple[float, bool]:
    """Start `sertool embed` on `layout`, SIGKILL it a random time after its first writer opened.
    Returns (delay, whether it was still running when killed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the in-process reference (see conftest)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from sertool.cli import main; main()", "--store", str(layout.root), "embed", "--preset", "tiny", *ARGS],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not layout.embeddings.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        delay = rng.uniform(0.0, max_delay)
        time.sleep(delay)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not alive:
            assert proc.returncode == 0, proc.stderr.read().decode()
        return delay, alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # a fresh interpreter loads torch + the models: ~10-20 s on a shared 2-core machine
def test_kill_9_then_rerun_equals_an_uninterrupted_run(layout, template, tiny_encoders, tmp_path):
    encoders = [tiny_encoders[k] for k in ENCODERS]
    t0 = time.perf_counter()
    embed_store(layout, CFG, encoders=encoders)  # the uninterrupted reference
    t_ref = time.perf_counter() - t0
    reference = embedding_rows(layout)

    rng = random.Random()
    victim = StoreLayout.at(tmp_path / "victim")
    for attempt in range(3):  # the random moment must fall while it works; shorten the window if not
        shutil.rmtree(victim.root, ignore_errors=True)
        shutil.copytree(template[0], victim.root)
        delay, alive = kill_mid_run(victim, t_ref * 0.8 / (attempt + 1), rng)
        if alive:
            break
    assert alive, f"sertool embed finished before every kill (last delay {delay:.2f}s)"
    partial = embedding_rows(victim)
    assert len(partial) < len(reference), f"killed after {delay:.2f}s"

    report = embed_store(victim, CFG, encoders=encoders)  # resume
    assert report.written == len(reference) - len(partial)
    resumed = embedding_rows(victim)
    # same rows, same places: orphaned frames of the killed batch were overwritten, nothing duplicated
    assert resumed == reference, f"killed after {delay:.2f}s"
    assert len({r[:3] for r in resumed}) == len(resumed)
    for enc in ENCODERS:
        for variant in ("clean",) if enc == "roberta" else ("clean", "noise"):
            a, b = read_all(layout, enc, variant), read_all(victim, enc, variant)
            assert a.keys() == b.keys()
            for clip_id in a:
                np.testing.assert_array_equal(a[clip_id], b[clip_id], err_msg=f"{enc}/{variant}/{clip_id}")
    # and a further rerun has nothing left to do
    assert embed_store(victim, CFG, encoders=encoders).nothing_to_do
