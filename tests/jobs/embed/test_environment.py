"""`sertool embed`, `ingest` and `store split` on a full disk and on a read-only store: one line, exit 2,
the store as it was (or, after a full disk, every committed clip intact), and a rerun that resumes into
exactly what an uninterrupted run makes.

Real filesystems: a size-limited tmpfs and a read-only bind mount, made in a private mount namespace
(`unshare --user --map-root-user --mount`) so that nothing outlives the test, and so that root, whom
permission bits do not stop, meets a genuinely read-only filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sertool.jobs.embed import EmbedConfig, embed_store
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore
from sertool.store.layout import StoreLayout

pytestmark = pytest.mark.slow  # one interpreter in the namespace runs four embeds: ~30 s

ENCODERS = ("whisper", "wavlm", "roberta")
ARGS = ["--preset", "tiny", "--batch-seconds", "8"]
CFG = EmbedConfig(preset="tiny", encoders=ENCODERS, batch_seconds=8.0)
HERE = Path(__file__).parent


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def stored(layout: StoreLayout) -> dict[tuple[str, str, str], tuple[int, int, np.ndarray]]:
    """(encoder, variant, clip) -> (row_start, n_frames, frames) of every committed clip."""
    with Catalog(layout.catalog, read_only=True) as cat:
        rows = cat.execute("SELECT encoder, variant, clip_id, row_start, n_frames FROM embeddings ORDER BY ALL")
    units = sorted({(r[0], r[1]) for r in rows})
    reader = EmbeddingStore(layout).reader(units)
    return {(e, v, c): (s, n, reader.read(e, v, [c])[0]) for e, v, c, s, n in rows}


def one_line(res: dict) -> str:
    """The one error line (a run stopped mid-way leaves its progress bar's last state above it)."""
    lines = res["stderr"].strip().splitlines()
    assert "Traceback" not in res["stderr"] + res["stdout"], res["stderr"]
    assert [ln for ln in lines if ln.startswith("error:")] == lines[-1:], res["stderr"]
    return lines[-1]


@pytest.mark.skipif(not _namespaces_work(), reason="needs `unshare --user --map-root-user --mount` to mount a small "
                    "tmpfs; tests/store/test_environment.py covers the shard writes with a file-size limit")
def test_full_disk_and_read_only_store(layout, tiny_encoders, tmp_path):
    template = tmp_path / "template"
    shutil.copytree(layout.root, template)
    ref = StoreLayout.at(tmp_path / "ref")
    shutil.copytree(layout.root, ref.root)
    embed_store(ref, CFG, encoders=[tiny_encoders[k] for k in ENCODERS])  # the uninterrupted run
    want = stored(ref)
    frame_bytes = sum(a.nbytes for *_, a in want.values())
    spec = {"template": str(template), "work": str(tmp_path / "work"), "out": str(tmp_path / "out"), "args": ARGS,
            "frames_room": f"{frame_bytes // 2 // 1024}k", "catalog_room": 4096}
    (tmp_path / "work").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    res = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
                          sys.executable, str(HERE / "_namespace_run.py"), str(tmp_path / "spec.json")],
                         env={**os.environ, "OMP_NUM_THREADS": "1"},  # as the in-process reference (conftest)
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    result = json.loads((tmp_path / "out" / "result.json").read_text())

    for name, where in (("frames", "embeddings.zarr/"), ("catalog", "catalog.duckdb")):
        failed, resumed = result[name]["failed"], result[name]["resumed"]
        assert failed["rc"] == 2, (name, failed)
        line = one_line(failed)
        assert "no space left on device" in line and where in line and "run the command again" in line, line
        # Nothing committed is damaged: every clip the catalog holds has exactly its uninterrupted frames.
        partial = stored(StoreLayout.at(tmp_path / "out" / f"{name}-failed"))
        assert 0 < len(partial) < len(want), name  # it stopped mid-run
        for key, (start, n, frames) in partial.items():
            assert (start, n) == want[key][:2] and np.array_equal(frames, want[key][2]), (name, key)
        assert resumed["rc"] == 0, (name, resumed["stderr"][-2000:])
        got = stored(StoreLayout.at(tmp_path / "out" / f"{name}-resumed"))
        assert got.keys() == want.keys(), name
        assert all(got[k][:2] == want[k][:2] and np.array_equal(got[k][2], want[k][2]) for k in want), name

    ro = result["readonly"]
    for command in ("embed", "ingest", "split"):
        assert ro[command]["rc"] == 2, (command, ro[command])
        assert "read-only file system" in one_line(ro[command]), command
    assert ro["info"]["rc"] == 0 and ro["query"]["rc"] == 0, ro
    assert ro["query"]["stdout"].splitlines()[1] == str(len(want))  # reading a read-only store works
    assert ro["unchanged"]
