"""`sertool store info|query|split` and `ingest synthetic`, through the CLI on a small synthetic corpus."""

import csv
import io
import json

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


def test_info_shows_every_figure(store):
    res = run(store, "store", "info")
    assert res.exit_code == 0, res.output
    for title in ("Clips per split", "Class distribution", "Annotators per labelled clip", "Transcript coverage",
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
