"""`sertool store verify`: a clean store passes; each kind of damage a disk or a person can do to the
arrays or the catalog is found and named (clip, encoder, variant), exit 1; nothing is ever changed.
Rows from before checksums existed read and verify as "no checksum", not as damage."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import _integrity_store as st  # noqa: E402
from sertool.cli import app  # noqa: E402
from sertool.errors import StoreCorrupt  # noqa: E402
from sertool.store.catalog import Catalog  # noqa: E402
from sertool.store.schema import SCHEMA_VERSION  # noqa: E402
from sertool.store.embeddings import EmbeddingStore  # noqa: E402
from sertool.store.shards import ShardAppender, ShardLayout  # noqa: E402


def files_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith((".lock", ".readers"))}


def verify(layout, *args: str):
    res = CliRunner().invoke(app, ["--store", str(layout.root), "store", "verify", "--format", "json", *args])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def row(layout, clip: str, encoder: str = "wavlm", variant: str = "clean") -> tuple[int, int]:
    with Catalog(layout.catalog, read_only=True) as cat:
        return tuple(cat.execute("SELECT row_start, n_frames FROM embeddings WHERE clip_id = ? AND encoder = ? "
                                 "AND variant = ?", [clip, encoder, variant])[0])


def shard_of(layout, start: int, encoder: str = "wavlm", variant: str = "clean") -> tuple[ShardLayout, int]:
    shard = ShardLayout.from_metadata(layout.embeddings / encoder / variant / "frames")
    return shard, start // shard.shard_frames


def named(report: dict, kind: str) -> list[tuple[str, str, list[str]]]:
    return [(p["encoder"], p["variant"], p["clips"]) for p in report["problems"] if p["kind"] == kind]


@pytest.fixture
def layout(tmp_path):
    return st.build(tmp_path / "store")


def test_a_clean_store_verifies(layout):
    before = files_digest(layout.root)
    code, report = verify(layout, "--frames")
    assert code == 0 and report["ok"] and report["problems"] == []
    assert {(u["encoder"], u["variant"]): u["checked"] for u in report["units"]} == {u: 40 for u in st.UNITS}
    assert all(u["no_checksum"] == 0 and u["orphaned_frames"] == 0 for u in report["units"])
    res = CliRunner().invoke(app, ["--store", str(layout.root), "store", "verify"])  # the table
    assert res.exit_code == 0 and "no problems" in res.stderr
    assert files_digest(layout.root) == before  # verify never writes


def test_one_flipped_byte_is_found_by_frames(layout):
    start, n = row(layout, "c0013")
    shard, k = shard_of(layout, start)
    path = shard.shard_path(k)
    data = bytearray(path.read_bytes())
    at = shard.index_bytes + (start - k * shard.shard_frames + n // 2) * shard.row_bytes + 1
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    before = files_digest(layout.root)
    assert verify(layout)[0] == 0  # structure alone cannot see it: the index is intact
    code, report = verify(layout, "--frames")
    assert code == 1 and named(report, "checksum") == [("wavlm", "clean", ["c0013"])]
    assert files_digest(layout.root) == before
    # the table names it too, and the reader's on-demand check refuses it
    res = CliRunner().invoke(app, ["--store", str(layout.root), "store", "verify", "--frames"])
    assert res.exit_code == 1 and "c0013" in res.stdout and "checksum" in res.stdout
    reader = EmbeddingStore(layout).reader([("wavlm", "clean")])
    reader.read("wavlm", "clean", ["c0013"])  # the normal path does not look
    with pytest.raises(StoreCorrupt, match="c0013"):
        reader.read("wavlm", "clean", ["c0012", "c0013"], verify=True)


def test_a_truncated_shard_file_is_found(layout):
    start, _ = row(layout, "c0020")
    shard, k = shard_of(layout, start)
    path = shard.shard_path(k)
    path.write_bytes(path.read_bytes()[: path.stat().st_size - 3 * shard.chunk_bytes // 2])
    code, report = verify(layout)
    (found,) = named(report, "truncated-shard")
    assert code == 1 and found[:2] == ("wavlm", "clean") and "c0020" in found[2]
    assert named(report, "checksum") == []


def test_a_deleted_shard_file_is_found(layout):
    start, _ = row(layout, "c0030", "whisper")
    shard, k = shard_of(layout, start, "whisper")
    shard.shard_path(k).unlink()
    code, report = verify(layout, "--frames")
    (found,) = named(report, "missing-shard")
    assert code == 1 and found[:2] == ("whisper", "clean") and "c0030" in found[2]


def test_overlapping_rows_are_found(layout):
    start, _ = row(layout, "c0005", "wavlm", "noise")
    with Catalog(layout.catalog) as cat:
        cat.execute("UPDATE embeddings SET row_start = ? WHERE clip_id = 'c0009' AND encoder = 'wavlm' "
                    "AND variant = 'noise'", [start + 1])
    code, report = verify(layout)
    (found,) = named(report, "overlap")
    assert code == 1 and found[:2] == ("wavlm", "noise") and {"c0005", "c0009"} <= set(found[2])


def test_rows_without_checksums_read_and_verify_as_such(layout):
    """A store from before checksums (NULL in the column, or no column at all in an old catalog)."""
    with Catalog(layout.catalog) as cat:
        cat.execute("UPDATE embeddings SET checksum = NULL WHERE encoder = 'whisper'")
    code, report = verify(layout, "--frames")
    units = {(u["encoder"], u["variant"]): u for u in report["units"]}
    assert code == 0 and units[("whisper", "clean")]["no_checksum"] == 40 and units[("wavlm", "clean")]["checked"] == 40
    res = CliRunner().invoke(app, ["--store", str(layout.root), "store", "verify", "--frames"])
    assert res.exit_code == 0 and "without a checksum" in res.stderr
    reader = EmbeddingStore(layout).reader([("whisper", "clean")])
    got = reader.read("whisper", "clean", ["c0001"], verify=True)[0]
    np.testing.assert_array_equal(got, st.clip_frames("c0001", "whisper", "clean"))


def test_frames_a_killed_writer_left_are_counted_not_failed(layout):
    """What a writer killed between its frames and its commit leaves: frames past the last row."""
    d = layout.embeddings / "wavlm" / "clean" / "frames"
    shard = ShardLayout.from_metadata(d)
    end = sum(len(st.clip_frames(c, "wavlm", "clean")) for c in st.clip_ids(40))
    import zarr

    zarr.open_array(d, mode="a").resize((end + 300, 16))
    ShardAppender(shard).write(end, np.ones((300, 16), dtype=np.float16))
    code, report = verify(layout, "--frames")
    units = {(u["encoder"], u["variant"]): u for u in report["units"]}
    assert code == 0 and units[("wavlm", "clean")]["orphaned_frames"] >= 300


def test_a_catalog_from_before_migrations_still_verifies(layout):
    """A version-1 catalog has neither checksum column; a reader never migrates it."""
    import duckdb

    con = duckdb.connect(str(layout.catalog))
    con.execute("ALTER TABLE embeddings DROP COLUMN checksum; ALTER TABLE embeddings DROP COLUMN audio_sha256; "
                "ALTER TABLE embeddings DROP COLUMN text_source; ALTER TABLE embeddings DROP COLUMN text_sha256; "
                "DROP TABLE audio_hashes; DROP TABLE transcripts; UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    code, report = verify(layout, "--frames", "--audio")
    assert code == 0 and all(u["no_checksum"] == u["rows"] for u in report["units"])
    with Catalog(layout.catalog) as cat:  # the first writer migrates it, keeping every row
        assert {"checksum", "audio_sha256"} <= cat.columns("embeddings")
        assert cat.scalar("SELECT count(*) FROM embeddings") == 120
        assert {"text_source", "text_sha256"} <= cat.columns("embeddings") and cat.columns("transcripts")
        assert cat.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(SCHEMA_VERSION) == "3"
