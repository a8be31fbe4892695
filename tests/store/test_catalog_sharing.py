"""Sharing the catalog: a long-running writer keeps the DuckDB file only while nobody asks for it, readers
get it between commits, and a second writer is refused at once (the end-to-end version with a real
`sertool embed` is tests/jobs/embed/test_concurrency.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sertool.errors import StoreInUse
from sertool.store.catalog import Catalog


def _insert(cat: Catalog, i: int) -> None:
    with cat.transaction():
        cat.execute("INSERT INTO skipped VALUES (?, 'c', 'p', 'r')", [f"k{i:03d}"])


def test_a_writer_keeps_the_file_between_commits_until_a_reader_asks(tmp_path):
    path = tmp_path / "catalog.duckdb"
    with Catalog(path, hold=False) as writer:
        _insert(writer, 0)
        first = writer._con
        for i in range(1, 20):  # nobody reads: one connection for every commit (no open/close cost)
            _insert(writer, i)
        assert writer._con is first
        t0 = time.perf_counter()
        with Catalog(path, read_only=True) as reader:  # raises its hand; the writer lets go between commits
            waited = time.perf_counter() - t0
            assert reader.scalar("SELECT count(*) FROM skipped") == 20
        assert waited < 5.0, waited
        _insert(writer, 20)  # and the writer takes the file back for its next commit
        assert writer.scalar("SELECT count(*) FROM skipped") == 21


def test_a_second_writer_is_refused_at_once_and_told_who_writes(tmp_path):
    path = tmp_path / "catalog.duckdb"
    Catalog(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sertool.store.catalog import Catalog; "
         "c = Catalog(sys.argv[1], hold=False); print('ready', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with Catalog(path, read_only=True) as reader:  # the holder lets readers in...
            assert reader.scalar("SELECT count(*) FROM clips") == 0
        t0 = time.perf_counter()
        with pytest.raises(StoreInUse, match=rf"store is in use by another sertool process \(pid {holder.pid}"):
            Catalog(path)  # ...but never a second writer, not even while it does not have the file open
        assert time.perf_counter() - t0 < 1.0
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    Catalog(path).close()  # the lock died with its holder (kill -9 included)
