"""`sertool store info|query|split` and `ingest synthetic`, through the CLI on a small synthetic corpus."""

import csv
import hashlib
import io
import json
import shutil

import duckdb
import pytest
from typer.testing import CliRunner

from sertool.cli import app


def run(store, *args):
    return CliRunner().invoke(app, ["--store", str(store), *args])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli_store")
    res = run(base / "store", "ingest", "synthetic", str(base / "corpus"), "--clips", "48", "--seed", "1")
    assert res.exit_code == 0, res.output
    return base / "store"


def direct(store, sql):
    con = duckdb.connect(str(store / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_query_split_counts_as_table(store):
    res = run(store, "store", "query", "select split, count(*) from clips group by 1")
    assert res.exit_code == 0, res.output
    for split, n in direct(store, "select split, count(*) from clips group by 1"):
        assert any(split in line and str(n) in line for line in res.stdout.splitlines())


def test_query_csv_and_json(store):
    sql = "select split, count(*) as n from clips group by 1 order by 1"
    want = direct(store, sql)
    res = run(store, "store", "query", sql, "--format", "csv")
    assert res.exit_code == 0
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert rows[0] == ["split", "n"] and [(s, int(n)) for s, n in rows[1:]] == want
    res = run(store, "store", "query", sql, "--format", "json")
    assert [(r["split"], r["n"]) for r in json.loads(res.stdout)] == want


def test_query_refuses_writes_and_reports_sql_errors(store):
    before = direct(store, "select count(*) from clips")
    res = run(store, "store", "query", "delete from clips")
    assert res.exit_code == 2 and "read-only" in res.stderr
    assert direct(store, "select count(*) from clips") == before
    res = run(store, "store", "query", "selec 1")
    assert res.exit_code == 2 and "query failed" in res.stderr


def tree_hash(root) -> str:
    """Every file under `root`, name and bytes: a store is unchanged exactly when this is."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


ESCAPES = {
    "copy-out": "COPY clips TO '{tmp}/out.csv'",
    "copy-over-an-array": "COPY (SELECT 'x') TO '{store}/embeddings.zarr/whisper/clean/frames/zarr.json' (FORMAT csv, HEADER false)",
    "copy-over-the-catalog": "COPY (SELECT 'x') TO '{store}/catalog.duckdb'",
    "export": "EXPORT DATABASE '{tmp}/exported'",
    "second-statement": "select 1; COPY clips TO '{tmp}/out.csv'",
    "read_text": "select * from read_text('{secret}')",
    "read_csv": "select * from read_csv('{secret}')",
    "read_blob": "select * from read_blob('{secret}')",
    "glob": "select * from glob('{tmp}/*')",
    "attach": "ATTACH '{tmp}/other.duckdb' AS other",
    "install": "INSTALL httpfs",
    "load": "LOAD json",
    "re-enable": "SET enable_external_access = true",
    "create": "CREATE TABLE x AS SELECT 1",
    "two-selects": "select 1; select 2",
}


@pytest.mark.parametrize("sql", ESCAPES.values(), ids=ESCAPES.keys())
def test_query_reads_the_catalog_only(store, tmp_path, sql):
    """Writes, other files, extensions and settings are refused: one line, exit 2, not a byte of the store
    changed, no file made or read elsewhere."""
    mine = tmp_path / "store"
    shutil.copytree(store, mine)
    array = mine / "embeddings.zarr" / "whisper" / "clean" / "frames" / "zarr.json"
    array.parent.mkdir(parents=True)
    array.write_text('{"zarr_format": 3, "node_type": "array"}')
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("name,password\nroot,hunter2\n")
    before, files = tree_hash(mine), sorted(outside.iterdir())
    res = run(mine, "store", "query", sql.format(tmp=outside, store=mine, secret=secret))
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output, res.output
    assert "hunter2" not in res.output
    assert tree_hash(mine) == before and sorted(outside.iterdir()) == files


def test_query_results_are_cut_at_a_limit_with_a_note(store):
    res = run(store, "store", "query", "select range as n from range(2500)")
    assert res.exit_code == 0
    assert "│ 999 " in res.stdout and "│ 1000 " not in res.stdout  # a table shows the first 1,000 rows
    assert "more than 1,000 rows" in res.stderr and "--limit" in res.stderr
    res = run(store, "store", "query", "select range as n from range(2500)", "--format", "csv", "--limit", "10")
    assert res.stdout.splitlines() == ["n", *map(str, range(10))] and "more than 10 rows" in res.stderr
    res = run(store, "store", "query", "select range as n from range(2500)", "--format", "csv")
    assert len(res.stdout.splitlines()) == 2501 and "more than" not in res.stderr  # files get every row
    res = run(store, "store", "query", "select range as n from range(2500)", "--format", "json", "--limit", "0")
    assert len(json.loads(res.stdout)) == 2500
    res = run(store, "store", "query", "select 1", "--limit", "-1")
    assert res.exit_code == 2 and "--limit" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_info_shows_every_figure(store):
    res = run(store, "store", "info")
    assert res.exit_code == 0, res.output
    for title in ("Clips per split", "Class distribution", "Annotators per labelled clip", "Transcript coverage",
                  "Transcripts by source and model",
                  "Split schemes", "Embeddings per encoder and variant"):
        assert title in res.stdout
    for (split,) in direct(store, "select distinct split from clips"):
        assert split in res.stdout


def test_info_and_query_without_a_store(tmp_path):
    for args in (["store", "info"], ["store", "query", "select 1"]):
        res = run(tmp_path / "none", *args)
        assert res.exit_code == 2 and "no catalog" in res.stderr
    assert not (tmp_path / "none").exists()


def test_split_command(store):
    res = run(store, "store", "split", "ablation", "--from", "Train", "--holdout", "0.2", "--by", "speaker", "--seed", "4")
    assert res.exit_code == 0, res.output
    got = dict(direct(store, "select split, count(*) from splits where scheme = 'ablation' group by 1"))
    assert set(got) >= {"Train", "Development"} and got.get("Test-Development") == direct(
        store, "select count(*) from clips where split = 'Development'")[0][0]
    overlap = direct(store, """
        select count(*) from (
          select speaker_id from splits join clips using (clip_id) where scheme = 'ablation' and splits.split = 'Train'
          intersect
          select speaker_id from splits join clips using (clip_id) where scheme = 'ablation' and splits.split = 'Development')
        where lower(speaker_id) <> 'unknown'""")
    assert overlap == [(0,)]
    res = run(store, "store", "split", "ablation")
    assert res.exit_code == 2 and "--replace" in res.stderr
    res = run(store, "store", "split", "ablation", "--holdout", "0.3", "--replace")
    assert res.exit_code == 0
    assert "ablation" in run(store, "store", "info").stdout


def test_reingest_synthetic_changes_nothing(store):
    before = {t: direct(store, f"select * from {t} order by all") for t in ("clips", "votes", "labels", "corpora")}
    corpus = store.parent / "corpus"
    res = run(store, "ingest", "msp-podcast", str(corpus))
    assert res.exit_code == 0 and "nothing changed" in res.stdout
    assert {t: direct(store, f"select * from {t} order by all") for t in before} == before


def test_a_catalog_that_cannot_be_read_is_one_line(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "catalog.duckdb").write_text("not a DuckDB file\n")
    for args in (["store", "info"], ["store", "query", "select 1"]):
        res = run(tmp_path / "store", *args)
        assert res.exit_code == 2 and "cannot read the catalog" in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
