"""Sharded embedding: 2 worker processes (`--shard I/2`, and torchrun ranks) equal one process, bit for bit."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore
from sertool.store.layout import StoreLayout
from team_corpus import make_audio_store

pytestmark = pytest.mark.slow  # worker subprocesses import torch and transformers (seconds each)

EMBED = ["embed", "--preset", "tiny", "--batch-seconds", "60", "--augment", "gain"]
"""60 padded seconds: two clips per Whisper batch, so each encoder's plan has several batches to deal out."""


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> StoreLayout:
    return make_audio_store(tmp_path_factory.mktemp("sharded"), n=8)


@pytest.fixture(scope="module")
def single(template, tmp_path_factory) -> StoreLayout:
    """The reference: the same store embedded by one process."""
    layout = StoreLayout.at(tmp_path_factory.mktemp("single") / "store")
    shutil.copytree(template.root, layout.root)
    res = CliRunner().invoke(app, ["--store", str(layout.root), *EMBED])
    assert res.exit_code == 0, res.output
    return layout


def _copy(template: StoreLayout, dst: Path) -> StoreLayout:
    shutil.copytree(template.root, dst)
    return StoreLayout.at(dst)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"}


def frames_of(layout: StoreLayout) -> dict[tuple[str, str, str], np.ndarray]:
    """Every stored clip's frames, as raw fp16 bits, keyed by (encoder, variant, clip)."""
    with Catalog(layout.catalog, read_only=True) as cat:
        units = cat.execute("SELECT DISTINCT encoder, variant FROM embeddings")
        ids = {u: [r[0] for r in cat.execute(
            "SELECT clip_id FROM embeddings WHERE encoder = ? AND variant = ? ORDER BY clip_id", list(u))] for u in units}
    reader = EmbeddingStore(layout).reader(units)
    out = {}
    for (enc, var), clips in ids.items():
        for cid, a in zip(clips, reader.read(enc, var, clips)):
            out[(enc, var, cid)] = a.view(np.uint16)
    return out


def assert_same_frames(got: StoreLayout, want: StoreLayout, encoders: set[str] | None = None) -> None:
    a, b = frames_of(got), frames_of(want)
    if encoders is not None:
        b = {k: v for k, v in b.items() if k[0] in encoders}
    assert sorted(a) == sorted(b)
    for key in b:
        assert a[key].shape == b[key].shape and np.array_equal(a[key], b[key]), key


def test_two_shard_workers_then_merge_equal_one_process(template, single, tmp_path):
    layout = _copy(template, tmp_path / "store")
    workers = [
        subprocess.Popen([_bin("sertool"), "--store", str(layout.root), *EMBED, "--part", f"{i}/2"],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for w in workers:
        _, stderr = w.communicate(timeout=240)
        assert w.returncode == 0, stderr[-3000:]
    # Until the merge the store is untouched: each worker wrote only its own segment.
    with Catalog(layout.catalog, read_only=True) as cat:
        assert cat.scalar("SELECT count(*) FROM embeddings") == 0
    segments = sorted(p.name for p in (layout.root / "segments").iterdir())
    assert segments == ["part-0-of-2", "part-1-of-2"]
    seg_files = [{p.relative_to(layout.root / "segments" / s) for p in (layout.root / "segments" / s).rglob("*")
                  if p.is_file()} for s in segments]
    assert all(any(str(f).startswith("embeddings.zarr/whisper/clean/frames/c/") for f in fs) for fs in seg_files)

    res = CliRunner().invoke(app, ["--store", str(layout.root), "store", "merge"])
    assert res.exit_code == 0, res.output
    assert not (layout.root / "segments").exists()
    assert_same_frames(layout, single)
    with Catalog(layout.catalog, read_only=True) as cat:
        # The second segment starts on a shard boundary of the store's array: no shard file is shared.
        starts = cat.execute("SELECT min(row_start), max(row_start) FROM embeddings WHERE encoder = 'whisper' "
                             "AND variant = 'clean'")[0]
    assert starts[0] == 0 and starts[1] >= EmbeddingStore(layout).config.shard_frames
    # A rerun of a shard finds everything stored: nothing to do, nothing to merge.
    res = CliRunner().invoke(app, ["--store", str(layout.root), *EMBED, "--part", "1/2"])
    assert res.exit_code == 0 and "nothing to do" in res.output, res.output


def test_torchrun_ranks_embed_one_shard_each(template, single, tmp_path):
    layout = _copy(template, tmp_path / "store")
    res = subprocess.run(
        [_bin("torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", _bin("sertool"),
         "--store", str(layout.root), "embed", "--preset", "tiny", "--encoders", "whisper", "--batch-seconds", "60"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "merged 2 segment(s)" in res.stderr
    assert not (layout.root / "segments").exists()
    got = frames_of(layout)
    # Whisper's plan has four batches of two clips here, so both ranks embed.
    want = {k: v for k, v in frames_of(single).items() if k[0] == "whisper" and k[1] == "clean"}
    assert sorted(got) == sorted(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_bad_shard_spec_is_one_line():
    res = CliRunner().invoke(app, ["--store", "/nonexistent", "embed", "--part", "2/2"])
    assert res.exit_code == 2 and "0 <= I < N" in res.output


def test_merge_refused_mid_run_then_plain_embed_then_merge_equals_plain_embeds(template, single, tmp_path):
    """The hardening issue's sequence: `embed --part 0/2`; `embed --part 1/2` still running when `store merge`
    is tried (refused); a plain `embed --splits Development`; `store merge`. Every clip must carry the frames a
    plain embed makes: Train clips those of one full run (`single`), Development clips those of a plain
    `--splits Development` run. Before the fix the refused merge had already hard-linked part 0's shard files
    into the store, the plain embed appended into them in place, and the final merge copied its frames in."""
    layout = _copy(template, tmp_path / "store")
    dev = _copy(template, tmp_path / "dev")  # the reference for the Development clips
    for lay in (layout, dev):
        with Catalog(lay.catalog) as cat, cat.transaction():
            cat.execute("UPDATE clips SET split = 'Development' WHERE clip_id IN ('c01', 'c04', 'c06')")
    store = ["--store", str(layout.root)]
    res = CliRunner().invoke(app, [*store, *EMBED, "--part", "0/2"])
    assert res.exit_code == 0, res.output
    worker = subprocess.Popen([_bin("sertool"), *store, *EMBED, "--part", "1/2"], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = layout.root / "segments" / "part-1-of-2" / "embeddings.zarr"
        deadline = time.monotonic() + 240
        while not started.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGSTOP)  # frozen mid-run, holding its segment: deterministic, however fast it is
        assert worker.poll() is None, "the part 1/2 worker finished before the merge could be tried"
        res = CliRunner().invoke(app, [*store, "store", "merge"])
        moved = sorted(str(p.relative_to(layout.root)) for p in layout.embeddings.rglob("c/*/0")) \
            if layout.embeddings.exists() else []
        worker.send_signal(signal.SIGCONT)
        _, stderr = worker.communicate(timeout=240)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr[-3000:]
    assert res.exit_code == 2 and "still being written" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    for lay in (layout, dev):
        res = CliRunner().invoke(app, ["--store", str(lay.root), *EMBED, "--splits", "Development"])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*store, "store", "merge"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*store, *EMBED])
    assert res.exit_code == 0 and "nothing to do" in res.output, res.output

    got, full, plain_dev = frames_of(layout), frames_of(single), frames_of(dev)
    assert sorted(got) == sorted(full)
    want = {k: (plain_dev if k[2] in ("c01", "c04", "c06") else full)[k] for k in full}
    wrong = [k for k in want if not np.array_equal(got[k], want[k])]
    assert wrong == [], f"{len(wrong)} of {len(want)} (clip, encoder, variant) slices differ from a plain embed"
    assert moved == [], "the refused merge had already placed files in the store"
