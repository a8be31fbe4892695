"""The DuckDB catalog: corpus metadata, labels, votes, split schemes and the embedding index.

The table and column names here are a public interface (users query them with `sertool store query`
and with DuckDB itself); store/README.md documents every column. DuckDB allows one read-write
process per file; a second writer gets `StoreInUse` instead of DuckDB's lock message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import NotFound, StoreInUse

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);
CREATE TABLE IF NOT EXISTS corpora (
    corpus      VARCHAR PRIMARY KEY,
    root        VARCHAR NOT NULL,
    format      VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    clip_id           VARCHAR PRIMARY KEY,
    corpus            VARCHAR NOT NULL,
    path              VARCHAR NOT NULL,
    split             VARCHAR,
    duration_s        DOUBLE,
    sample_rate       INTEGER,
    n_channels        INTEGER,
    speaker_id        VARCHAR,
    gender            VARCHAR,
    transcript        VARCHAR,
    transcript_source VARCHAR
);
CREATE TABLE IF NOT EXISTS votes (
    clip_id      VARCHAR NOT NULL,
    annotator_id VARCHAR NOT NULL,
    emotion      VARCHAR,
    secondary    VARCHAR,
    arousal      DOUBLE,
    valence      DOUBLE,
    dominance    DOUBLE
);
CREATE TABLE IF NOT EXISTS labels (
    clip_id      VARCHAR PRIMARY KEY,
    emotion      VARCHAR,
    arousal      DOUBLE,
    valence      DOUBLE,
    dominance    DOUBLE,
    n_annotators INTEGER,
    agreement    DOUBLE,
    source       VARCHAR
);
CREATE TABLE IF NOT EXISTS skipped (
    clip_id VARCHAR PRIMARY KEY,
    corpus  VARCHAR NOT NULL,
    path    VARCHAR NOT NULL,
    reason  VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS split_schemes (
    scheme     VARCHAR PRIMARY KEY,
    params     VARCHAR,
    created_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS splits (
    scheme  VARCHAR NOT NULL,
    clip_id VARCHAR NOT NULL,
    split   VARCHAR NOT NULL,
    PRIMARY KEY (scheme, clip_id)
);
CREATE TABLE IF NOT EXISTS encoders (
    name        VARCHAR PRIMARY KEY,
    kind        VARCHAR NOT NULL,
    checkpoint  VARCHAR NOT NULL,
    revision    VARCHAR,
    layer       INTEGER,
    dim         INTEGER NOT NULL,
    frame_rate  DOUBLE,
    dtype       VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    created_at  TIMESTAMP
);
CREATE TABLE IF NOT EXISTS embeddings (
    clip_id   VARCHAR NOT NULL,
    encoder   VARCHAR NOT NULL,
    variant   VARCHAR NOT NULL,
    row_start BIGINT NOT NULL,
    n_frames  INTEGER NOT NULL,
    PRIMARY KEY (clip_id, encoder, variant)
);
"""

# The corpus's own splits form this scheme; `splits` holds only derived schemes.
CORPUS_SCHEME = "corpus"


class Catalog:
    """One connection to the catalog. Use as a context manager; writes go through `transaction()`."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        import duckdb

        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise NotFound(f"{self.path}: no catalog here (run `sertool ingest` first)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise StoreInUse(
                    f"{self.path}: store is in use by another sertool process (DuckDB allows one writer); "
                    "wait for it to finish"
                ) from None
            raise
        if not read_only:
            self.con.execute(SCHEMA)
            self.con.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )

    # -- plumbing ---------------------------------------------------------------------------------
    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator["Catalog"]:
        """All or nothing: a failure anywhere inside leaves the catalog exactly as it was."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run one statement and fetch everything (DuckDB 2.0 blocks the connection on an unfinished result)."""
        cur = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
        return cur.fetchall() if cur.description is not None else []

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a query."""
        cur = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
        if cur.description is None:
            return [], []
        cols = [d[0] for d in cur.description]
        return cols, cur.fetchall()

    def df(self, sql: str, params: Sequence[Any] | None = None):
        """A query as a pandas DataFrame."""
        cur = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
        return cur.df()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None
