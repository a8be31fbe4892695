"""A disk that refuses a write, at the store level: one clear error, nothing committed lost, a rerun resumes.

Portable stand-in for a full disk: a child process with a file-size limit (RLIMIT_FSIZE) gets EFBIG from
the shard writes exactly where a full disk gives ENOSPC (`tests/jobs/embed/test_environment.py` fills a
real tmpfs where the machine allows mounting one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore
from sertool.store.layout import StoreLayout
from sertool.store.records import EncoderRecord

REC = EncoderRecord("wavlm", "wavlm", "test", None, None, 64, 50.0, "float16", "16k")
N_BATCHES, PER_BATCH, FRAMES = 12, 4, 400  # 12 x 4 clips x 400 frames x 128 bytes: 2.4 MB of frames, one shard


def batch(b: int) -> list[tuple[str, np.ndarray]]:
    """Batch b's clips: a fixed function of b, so any process can check what it reads."""
    rng = np.random.default_rng(b)
    return [(f"b{b:02d}c{j}", rng.standard_normal((FRAMES, 64)).astype(np.float32)) for j in range(PER_BATCH)]


def append(root, first: int = 0) -> None:
    layout = StoreLayout.at(root)
    with Catalog(layout.catalog) as cat, EmbeddingStore(layout).open_writer(cat, REC, "clean") as w:
        for b in range(first, N_BATCHES):
            todo = [(c, f) for c, f in batch(b) if c not in w.done()]
            if todo:
                w.write(todo)


CHILD = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, sys.argv[3])
    from test_environment import append
    from sertool.errors import SertoolError
    from sertool.store.catalog import Catalog
    Catalog(sys.argv[1] + "/catalog.duckdb").close()  # the catalog exists before the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
    try:
        append(sys.argv[1])
    except SertoolError as e:
        print(json.dumps({"type": type(e).__name__, "message": str(e)}))
        sys.exit(2)
""")


def rows(layout: StoreLayout) -> list[tuple]:
    with Catalog(layout.catalog, read_only=True) as cat:
        return cat.execute("SELECT clip_id, row_start, n_frames FROM embeddings ORDER BY ALL")


def test_a_refused_shard_write_is_one_error_and_the_rerun_resumes_identically(tmp_path):
    ref = StoreLayout.at(tmp_path / "ref")
    append(ref.root)
    full = StoreLayout.at(tmp_path / "full")
    limit = 1_000_000  # the shard file reaches it after ~2.5 of the 12 batches
    res = subprocess.run([sys.executable, "-c", CHILD, str(full.root), str(limit), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-3000:]
    err = json.loads(res.stdout)
    assert err["type"] == "StoreUnwritable" and "file too large" in err["message"], err
    assert "frames/c/0/0" in err["message"] and "\n" not in err["message"]  # names the shard file, one line
    # Nothing committed is lost or wrong: the committed clips read back exactly.
    partial = rows(full)
    assert 0 < len(partial) < N_BATCHES * PER_BATCH and partial == rows(ref)[: len(partial)]
    ids = [r[0] for r in partial]
    got = EmbeddingStore(full).reader([("wavlm", "clean")]).read("wavlm", "clean", ids)
    want = dict(c for b in range(N_BATCHES) for c in batch(b))
    assert all(np.array_equal(g, want[c].astype(np.float16)) for g, c in zip(got, ids))
    append(full.root)  # the limit lifted: the rerun resumes after the last commit
    assert rows(full) == rows(ref)
    ids = [r[0] for r in rows(ref)]
    a = EmbeddingStore(full).reader([("wavlm", "clean")]).read("wavlm", "clean", ids)
    b = EmbeddingStore(ref).reader([("wavlm", "clean")]).read("wavlm", "clean", ids)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
