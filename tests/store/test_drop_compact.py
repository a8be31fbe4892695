"""`sertool store drop` and `store compact`: they give disk back and never a committed frame, even when
killed (SIGKILL, a real subprocess) at a random moment; refused while a writer runs; bad input is one
line, exit 2, store unchanged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import _integrity_store as st  # noqa: E402
from test_verify import files_digest, verify  # noqa: E402

from sertool.cli import app  # noqa: E402
from sertool.store.catalog import Catalog  # noqa: E402
from sertool.store.maintenance import compact, disk_bytes  # noqa: E402
from sertool.store.provenance import forget_rows  # noqa: E402
from sertool.store.shards import ShardAppender, ShardLayout  # noqa: E402

HERE = Path(__file__).parent


def cli(layout, *args: str):
    return CliRunner().invoke(app, ["--store", str(layout.root), "store", *args])


def with_waste(root: Path, n: int = 40):
    """A store whose arrays hold frames no row points at: forgotten rows (as a re-embed of changed audio
    leaves) and frames past the last row of each unit (as a killed writer leaves)."""
    layout = st.build(root, n)
    with Catalog(layout.catalog) as cat, cat.transaction():
        forget_rows(cat, [(c, e, v) for e, v in st.UNITS for c in st.clip_ids(n)[3 : n // 2]])
    for enc, var in st.UNITS:
        d = layout.embeddings / enc / var / "frames"
        import zarr

        arr = zarr.open_array(d, mode="a")
        end = arr.shape[0]
        arr.resize((end + 500, 16))
        ShardAppender(ShardLayout.from_metadata(d)).write(end, np.ones((500, 16), dtype=np.float16))
    return layout


def test_drop_a_variant_then_an_encoder(tmp_path):
    layout = st.build(tmp_path / "store")
    before = st.read_all(layout)
    res = cli(layout, "drop", "wavlm/noise")
    assert res.exit_code == 0 and "40 row(s)" in res.stdout and "freed" in res.stdout
    assert not (layout.embeddings / "wavlm" / "noise").exists()
    after = st.read_all(layout)
    assert set(after) == {k for k in before if k[1:] != ("wavlm", "noise")}
    assert all(np.array_equal(after[k], before[k]) for k in after)
    assert verify(layout, "--frames")[0] == 0
    res = cli(layout, "drop", "whisper")
    assert res.exit_code == 0 and "gone from the store" in res.stdout
    with Catalog(layout.catalog, read_only=True) as cat:
        assert cat.execute("SELECT name FROM encoders") == [("wavlm",)]
    assert not (layout.embeddings / "whisper").exists() and verify(layout, "--frames")[0] == 0


@pytest.mark.parametrize("target", ["nope", "wavlm/nope", "wavlm/", "/clean"])
def test_drop_of_what_is_not_there_is_one_line(tmp_path, target):
    layout = st.build(tmp_path / "store", 8)
    before = files_digest(layout.root)
    res = cli(layout, "drop", target)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "error:" in res.output
    assert files_digest(layout.root) == before


def test_drop_and_compact_are_refused_while_a_writer_runs(tmp_path):
    layout = st.build(tmp_path / "store", 8)
    before = files_digest(layout.root)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sertool.store.locking import WriterLock\n"
        f"with WriterLock({str(layout.catalog)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (("drop", "wavlm/noise"), ("compact",)):
            res = cli(layout, *args)
            assert res.exit_code == 2 and "in use by another sertool process" in res.output
    finally:
        holder.kill()
        holder.wait()
    assert files_digest(layout.root) == before


def test_compact_frees_the_waste_and_keeps_every_frame(tmp_path):
    layout = with_waste(tmp_path / "store")
    before = st.read_all(layout)
    code, report = verify(layout, "--frames")
    units = {(u["encoder"], u["variant"]): u for u in report["units"]}
    assert code == 0 and all(u["orphaned_frames"] >= 500 and u["unreferenced_frames"] > 0 for u in units.values())
    size = disk_bytes(layout.embeddings)
    res = cli(layout, "compact")
    assert res.exit_code == 0 and "freed" in res.stdout
    assert disk_bytes(layout.embeddings) < size
    after = st.read_all(layout)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in after)
    code, report = verify(layout, "--frames")
    assert code == 0
    assert all(u["orphaned_frames"] == 0 and u["unreferenced_frames"] == 0 for u in report["units"])
    again = compact(layout)  # nothing left to do
    assert again.bytes_freed == 0 and not again.units
    # the writer appends after a compacted array as before (the fast reader's linear layout is kept)
    store_ = __import__("sertool.store.embeddings", fromlist=["EmbeddingStore"]).EmbeddingStore(layout, st.SMALL)
    with Catalog(layout.catalog) as cat, store_.open_writer(cat, st.record("wavlm"), "clean") as w:
        w.write([("c0010", st.clip_frames("c0010", "wavlm", "clean"))])
    assert st.read_all(layout)[("c0010", "wavlm", "clean")].tolist() == st.clip_frames("c0010", "wavlm", "clean").tolist()
    assert verify(layout, "--frames")[0] == 0


def _kill_at_random(layout, args: list[str], rnd: random.Random, window: float) -> str:
    proc = subprocess.Popen([sys.executable, str(HERE / "_integrity_store.py"), str(layout.root), *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(rnd.uniform(0.0, window))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read()
    proc.stdout.close()
    return rest


@pytest.mark.slow
def test_compact_killed_at_random_moments_loses_nothing(tmp_path):
    layout = with_waste(tmp_path / "store", 160)
    t0 = time.perf_counter()
    reference = with_waste(tmp_path / "ref", 160)
    compact(reference)  # how long an uninterrupted compaction takes here
    window = max(0.2, 1.5 * (time.perf_counter() - t0))
    before = st.read_all(layout)
    rnd = random.Random(os.getpid())
    finished = 0
    for _ in range(6):
        finished += "done" in _kill_at_random(layout, ["compact"], rnd, window)
        code, report = verify(layout, "--frames")
        assert code == 0, report["problems"]
        after = st.read_all(layout)
        assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in after)
    compact(layout)
    assert verify(layout, "--frames")[0] == 0
    assert disk_bytes(layout.embeddings) == disk_bytes(reference.embeddings)


@pytest.mark.slow
def test_drop_killed_at_random_moments_loses_nothing_else(tmp_path):
    rnd = random.Random(os.getpid() + 1)
    for i in range(4):
        layout = st.build(tmp_path / f"store{i}", 60)
        before = st.read_all(layout)
        _kill_at_random(layout, ["drop", "wavlm/noise"], rnd, 0.15)
        code, report = verify(layout, "--frames")
        assert code == 0, report["problems"]
        after = st.read_all(layout)
        # all or nothing for the dropped variant; every other clip exactly as it was
        assert {k for k in after if k[1:] == ("wavlm", "noise")} in (set(), {k for k in before if k[1:] == ("wavlm", "noise")})
        assert all(np.array_equal(after[k], before[k]) for k in after)
        assert {k for k in before if k[1:] != ("wavlm", "noise")} <= set(after)
        compact(layout)  # removes whatever an interrupted drop left
        assert verify(layout, "--frames")[0] == 0 and not list(layout.embeddings.glob(".dropped-*"))
