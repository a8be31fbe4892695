"""The catalog's tables, and how an older catalog is brought up to them.

The table and column names are a public interface (store/README.md documents every column); changes
are additive only (`MIGRATIONS`), so a catalog made by an older sertool keeps working.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 3
"""2: audio provenance and frame checksums (`clips.size_bytes`/`mtime_ns`, `embeddings.checksum`/
`audio_sha256`, `audio_hashes`). 3: transcript provenance (`transcripts`, every transcript a clip has
with its source and, for ASR, the model; `embeddings.text_source`/`text_sha256`, the text a text
encoder's row embedded). `MIGRATIONS` brings an older catalog up to it."""

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
    transcript_source VARCHAR,
    size_bytes        BIGINT,
    mtime_ns          BIGINT
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
CREATE TABLE IF NOT EXISTS views (
    name        VARCHAR PRIMARY KEY,
    scheme      VARCHAR NOT NULL,
    splits      VARCHAR NOT NULL,
    encoders    VARCHAR NOT NULL,
    variants    VARCHAR NOT NULL,
    dtype       VARCHAR NOT NULL,
    frame_rate  INTEGER NOT NULL,
    n_clips     INTEGER NOT NULL,
    bytes       BIGINT NOT NULL,
    sources     VARCHAR NOT NULL,
    created_at  TIMESTAMP
);
CREATE TABLE IF NOT EXISTS embeddings (
    clip_id   VARCHAR NOT NULL,
    encoder   VARCHAR NOT NULL,
    variant   VARCHAR NOT NULL,
    row_start BIGINT NOT NULL,
    n_frames  INTEGER NOT NULL,
    checksum     VARCHAR,
    audio_sha256 VARCHAR,
    text_source  VARCHAR,
    text_sha256  VARCHAR,
    PRIMARY KEY (clip_id, encoder, variant)
);
CREATE TABLE IF NOT EXISTS transcripts (
    clip_id     VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    text        VARCHAR NOT NULL,
    model       VARCHAR,
    revision    VARCHAR,
    fingerprint VARCHAR,
    decoding    VARCHAR,
    created_at  TIMESTAMP,
    PRIMARY KEY (clip_id, source)
);
CREATE TABLE IF NOT EXISTS audio_hashes (
    clip_id    VARCHAR PRIMARY KEY,
    sha256     VARCHAR NOT NULL,
    size_bytes BIGINT,
    mtime_ns   BIGINT
);
"""

MIGRATIONS: dict[int, str] = {
    2: """
    ALTER TABLE clips ADD COLUMN IF NOT EXISTS size_bytes BIGINT;
    ALTER TABLE clips ADD COLUMN IF NOT EXISTS mtime_ns BIGINT;
    ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS checksum VARCHAR;
    ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS audio_sha256 VARCHAR;
    """,
    3: """
    ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS text_source VARCHAR;
    ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS text_sha256 VARCHAR;
    INSERT OR IGNORE INTO transcripts (clip_id, source, text)
        SELECT clip_id, transcript_source, transcript FROM clips
        WHERE transcript IS NOT NULL AND transcript_source IS NOT NULL;
    """,
}
"""Version -> what brings a catalog of the version before it up to it. Only additive changes (new
columns at the end, new tables), so a catalog made by an older sertool keeps every row as it was and
its readers keep working; rows made before a column existed hold NULL there (`store verify` reports
frames without a checksum as such, not as damage). Run by the first writer that opens the catalog."""


def migrate(con: Any) -> None:
    """Create what is missing and bring an older catalog up to `SCHEMA_VERSION`, in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(SCHEMA)
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else SCHEMA_VERSION
        for v in sorted(MIGRATIONS):
            if version < v:
                con.execute(MIGRATIONS[v])
        if row is None or version < SCHEMA_VERSION:
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
