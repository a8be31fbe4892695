"""Zarr arrays on S3 (a local moto server on 127.0.0.1), catalog on local disk: write, read, train, merge."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.store.catalog import Catalog
from sertool.store.embeddings import EmbeddingStore
from sertool.store.layout import StoreLayout
from sertool.train.synthetic import FrameSpec, _record, write_frame_store
from team_servers import free_port

BUCKET = "sertool-team"
SPEC = FrameSpec(splits={"Train": 48, "Development": 16, "Test1": 4, "Test3": 4},
                 encoders={"whisper": 8, "wavlm": 8, "roberta": 8}, frames=(6, 16), variants=("noise",), seed=2)


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free local port with one bucket; the endpoint goes to the AWS env vars."""
    pytest.importorskip("s3fs", reason="s3fs (test extra) is needed for s3:// stores")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] (test extra) is needed for a local S3")
    import boto3

    mp = pytest.MonkeyPatch()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._port}"
        for k, v in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(k, v)
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        mp.undo()
        server.stop()


@pytest.fixture(scope="module")
def stores(s3, tmp_path_factory):
    """The same synthetic frame store twice: arrays on S3 (catalog local), and all local."""
    base = tmp_path_factory.mktemp("remote")
    remote = write_frame_store(f"s3://{BUCKET}/store", SPEC, catalog=base / "team" / "catalog.duckdb")
    local = write_frame_store(base / "local", SPEC)
    return remote, local


def _keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_arrays_on_s3_read_back_like_a_local_store(stores, s3):
    remote, local = stores
    assert remote.remote and remote.catalog.exists() and not remote.embeddings.exists()
    assert remote.zarr_root == f"s3://{BUCKET}/store/embeddings.zarr"
    keys = _keys(s3, "store/embeddings.zarr/")
    assert "store/embeddings.zarr/wavlm/noise/frames/zarr.json" in keys
    assert any(k.startswith("store/embeddings.zarr/whisper/clean/frames/c/") for k in keys)
    with Catalog(local.catalog, read_only=True) as cat:
        units = cat.execute("SELECT DISTINCT encoder, variant FROM embeddings ORDER BY 1, 2")
        ids = [r[0] for r in cat.execute("SELECT clip_id FROM clips ORDER BY clip_id")]
    assert len(units) == 5
    r_reader, l_reader = EmbeddingStore(remote).reader(units), EmbeddingStore(local).reader(units)
    for enc, var in units:
        clips = list(l_reader.index(enc, var).clip_ids)
        for a, b in zip(r_reader.read(enc, var, clips), l_reader.read(enc, var, clips)):
            assert a.dtype == np.float16 and np.array_equal(a.view(np.uint16), b.view(np.uint16))
    batch = r_reader.batch(ids[:5], [("whisper", "clean"), ("roberta", "clean")])
    ref = l_reader.batch(ids[:5], [("whisper", "clean"), ("roberta", "clean")])
    for enc in ("whisper", "roberta"):
        assert np.array_equal(batch[enc][0].numpy(), ref[enc][0].numpy())
        assert batch[enc][1].tolist() == ref[enc][1].tolist()


def test_cli_reads_an_s3_store(stores):
    """`--store URL --catalog PATH` reaches every command; the catalog answers, the arrays are on S3."""
    remote, _ = stores
    store = ["--store", f"s3://{BUCKET}/store", "--catalog", str(remote.catalog)]
    res = CliRunner().invoke(app, [*store, "store", "info"])
    assert res.exit_code == 0 and "Train" in res.output, res.output
    res = CliRunner().invoke(app, [*store, "store", "query", "--format", "csv",
                                   "SELECT encoder, variant, count(*) AS n FROM embeddings GROUP BY 1, 2 ORDER BY 1, 2"])
    assert res.exit_code == 0, res.output
    assert "wavlm,noise,48" in res.output and "roberta,clean,72" in res.output


def test_url_store_without_catalog_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("SERTOOL_CATALOG", raising=False)
    res = CliRunner().invoke(app, ["--store", f"s3://{BUCKET}/store", "store", "info"])
    assert res.exit_code == 2 and "--catalog" in res.output and len(res.output.strip().splitlines()) == 1


def test_merge_segments_into_an_s3_store(s3, tmp_path, monkeypatch):
    """Shard workers write local segments; merging copies their frames into the remote arrays."""
    from sertool.store.merge import merge_segments
    from sertool.store.segments import PartSpec, seed_segment, segment_layout

    layout = StoreLayout.at(f"s3://{BUCKET}/merged", tmp_path / "cat" / "catalog.duckdb")
    with Catalog(layout.catalog) as cat, cat.transaction():
        cat.execute("INSERT INTO corpora VALUES ('c', '/x', 'wav', now())")
        for i in range(6):
            cat.execute("INSERT INTO clips (clip_id, corpus, path) VALUES (?, 'c', ?)", [f"k{i}", f"k{i}.wav"])
    rng = np.random.default_rng(0)
    want = {}
    for shard in (PartSpec(0, 2), PartSpec(1, 2)):
        seg = segment_layout(layout, shard)
        seed_segment(layout, seg)
        items = [(f"k{i}", rng.normal(size=(int(rng.integers(3, 9)), 8)).astype(np.float32))
                 for i in range(shard.index, 6, 2)]
        with Catalog(seg.catalog) as cat, EmbeddingStore(seg).open_writer(cat, _record("wavlm", 8), "clean") as w:
            w.write(items)
        want.update({c: a.astype(np.float16) for c, a in items})
    report = merge_segments(layout)
    assert report.clips == 6 and len(report.segments) == 2
    got = EmbeddingStore(layout).reader([("wavlm", "clean")]).read("wavlm", "clean", sorted(want))
    assert all(np.array_equal(g, want[c]) for g, c in zip(got, sorted(want)))
    assert not (tmp_path / "cat" / "segments").exists()
