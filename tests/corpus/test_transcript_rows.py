"""Transcripts as data at ingest: the corpus's transcripts land in `transcripts` beside the clips, a
re-ingest replaces them but keeps every ASR row, and a catalog from before schema 3 gets its
transcripts copied over when a writer first opens it."""

import duckdb

from msp_corpus_builders import TRANSCRIPTS, make_corpus
from sertool.corpus.ingest import ingest_msp_podcast
from sertool.store.catalog import Catalog
from sertool.store.schema import SCHEMA_VERSION
from sertool.store.records import TranscriberRecord
from sertool.store.transcripts import asr_writers, clip_texts, write_asr

ASR = TranscriberRecord("test/asr", "r1", {"num_beams": 1})


def stem(name: str) -> str:
    return name.removesuffix(".wav")


def test_ingest_writes_corpus_rows_and_a_reingest_keeps_asr_beside_them(tmp_path):
    corpus = make_corpus(tmp_path / "podcast")
    cat_path = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat_path, corpus, progress=False)
    with Catalog(cat_path) as cat:
        corpus_rows = clip_texts(cat, "corpus")
        assert {k: v[0] for k, v in corpus_rows.items()} == {stem(k): v for k, v in TRANSCRIPTS.items()}
        ids = [r[0] for r in cat.execute("SELECT clip_id FROM clips ORDER BY 1")]
        write_asr(cat, [(c, f"heard {c}") for c in ids], ASR)  # --all: every clip, the corpus's kept
        preferred = clip_texts(cat, "preferred")
    assert all(preferred[c] == (t, "corpus") for c, (t, _) in corpus_rows.items())
    assert all(preferred[c] == (f"heard {c}", "asr") for c in ids if c not in corpus_rows)

    fixed = next(iter(TRANSCRIPTS))
    (corpus / "Transcripts" / f"{stem(fixed)}.txt").write_text("a corrected transcript\n", encoding="utf-8")
    assert ingest_msp_podcast(cat_path, corpus, progress=False).changed
    with Catalog(cat_path, read_only=True) as cat:
        assert clip_texts(cat, "corpus")[stem(fixed)] == ("a corrected transcript", "corpus")
        assert clip_texts(cat, "preferred")[stem(fixed)] == ("a corrected transcript", "corpus")
        assert {k: v[0] for k, v in clip_texts(cat, "asr").items()} == {c: f"heard {c}" for c in ids}
        assert [(w.checkpoint, w.clips) for w in asr_writers(cat)] == [("test/asr", len(ids))]

    (corpus / "Transcripts" / f"{stem(fixed)}.txt").unlink()  # the corpus drops it: ASR's becomes preferred
    ingest_msp_podcast(cat_path, corpus, progress=False)
    with Catalog(cat_path, read_only=True) as cat:
        assert stem(fixed) not in clip_texts(cat, "corpus")
        assert clip_texts(cat, "preferred")[stem(fixed)] == (f"heard {stem(fixed)}", "asr")


def test_a_schema_2_catalog_gets_its_transcripts_copied(tmp_path):
    corpus = make_corpus(tmp_path / "podcast")
    cat_path = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat_path, corpus, progress=False)
    con = duckdb.connect(str(cat_path))
    con.execute("UPDATE clips SET transcript = 'old asr', transcript_source = 'asr' WHERE transcript IS NULL")
    con.execute("DROP TABLE transcripts; ALTER TABLE embeddings DROP COLUMN text_source; "
                "ALTER TABLE embeddings DROP COLUMN text_sha256; UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with Catalog(cat_path) as cat:  # the first writer migrates
        assert cat.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(SCHEMA_VERSION)
        assert {k: v[0] for k, v in clip_texts(cat, "corpus").items()} == {stem(k): v for k, v in TRANSCRIPTS.items()}
        asr = clip_texts(cat, "asr")
        assert asr and all(t == "old asr" for t, _ in asr.values())
        writers = asr_writers(cat)
        assert [w.fingerprint for w in writers] == [None] and "unrecorded" in writers[0].describe()
