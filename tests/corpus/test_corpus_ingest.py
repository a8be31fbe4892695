"""Writing a corpus into the catalog: one transaction, idempotent, ASR transcripts kept, --skip-bad,
stale embed skips cleared, and re-ingests that would remove much refused without allow_shrink."""

import shutil

import pytest

from msp_corpus_builders import CONSENSUS, TEST3, VOTES, dump_catalog, make_corpus
from sertool.corpus.ingest import ingest_msp_podcast
from sertool.errors import SertoolError, ShrinkRefused
from sertool.store.catalog import Catalog
from sertool.store.clips import clips_in_split, clips_to_embed, record_skips


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "podcast")


def test_ingest_writes_every_table(tmp_path, corpus):
    cat = tmp_path / "store" / "catalog.duckdb"
    report = ingest_msp_podcast(cat, corpus, progress=False)
    names = {r[0] for r in CONSENSUS} | {r[0] for r in VOTES} | set(TEST3)
    assert report.clips == len(names) and report.votes == len(VOTES) and report.changed
    with Catalog(cat, read_only=True) as c:
        assert c.scalar("SELECT count(*) FROM clips") == len(names)
        assert c.scalar("SELECT count(*) FROM votes") == len(VOTES)
        assert c.scalar("SELECT count(*) FROM labels WHERE source = 'corpus'") == len(CONSENSUS)
        assert c.scalar("SELECT count(*) FROM labels WHERE source = 'votes'") == report.labels_derived > 0
        assert c.scalar("SELECT count(*) FROM labels WHERE n_annotators IS NULL OR agreement IS NULL") == 0
        assert c.execute("SELECT corpus, format FROM corpora") == [("podcast", "msp-podcast/emodetail")]
        assert c.scalar("SELECT count(*) FROM clips WHERE split = 'Test3'") == len(TEST3)


def test_reingest_is_idempotent(tmp_path, corpus):
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    before = dump_catalog(cat)
    again = ingest_msp_podcast(cat, corpus, progress=False)
    assert not again.changed
    assert dump_catalog(cat) == before  # ingested_at included: nothing was rewritten


def test_reingest_after_a_fix_replaces_rows_without_duplicates(tmp_path, corpus):
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    make_corpus(corpus, votes=VOTES[1:])  # one vote withdrawn
    report = ingest_msp_podcast(cat, corpus, progress=False)
    assert report.changed
    with Catalog(cat, read_only=True) as c:
        assert c.scalar("SELECT count(*) FROM votes") == len(VOTES) - 1
        assert c.scalar("SELECT count(*) FROM (SELECT clip_id FROM clips GROUP BY 1 HAVING count(*) > 1)") == 0
        first = VOTES[0][0][:-4]
        assert c.scalar("SELECT n_annotators FROM labels WHERE clip_id = ?", [first]) == sum(v[0] == VOTES[0][0] for v in VOTES) - 1


def test_asr_transcripts_survive_reingest(tmp_path, corpus):
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    no_text = "MSP-PODCAST_0002_0001"
    gets_text = "MSP-PODCAST_test3_0002"
    with Catalog(cat) as c:  # what `sertool transcribe` does
        c.execute("UPDATE clips SET transcript = 'asr words', transcript_source = 'asr' WHERE clip_id IN (?, ?)",
                  [no_text, gets_text])
    (corpus / "Transcripts" / f"{gets_text}.txt").write_text("corpus words\n")
    report = ingest_msp_podcast(cat, corpus, progress=False)
    assert report.asr_transcripts_kept == 1
    with Catalog(cat, read_only=True) as c:
        rows = dict(c.execute("SELECT clip_id, (transcript, transcript_source) FROM clips WHERE clip_id IN (?, ?)",
                              [no_text, gets_text]))
    assert rows[no_text] == ("asr words", "asr")
    assert rows[gets_text] == ("corpus words", "corpus")  # the corpus's own transcript wins
    before = dump_catalog(cat)
    assert not ingest_msp_podcast(cat, corpus, progress=False).changed
    assert dump_catalog(cat) == before


def test_same_clips_under_another_corpus_name_are_refused(tmp_path, corpus):
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    before = dump_catalog(cat)
    with pytest.raises(SertoolError, match="already in the catalog as part of corpus 'podcast'"):
        ingest_msp_podcast(cat, corpus, name="other", progress=False)
    assert dump_catalog(cat) == before


def test_skip_bad_records_missing_and_unreadable_audio(tmp_path, corpus):
    missing, broken = CONSENSUS[1][0], CONSENSUS[2][0]
    (corpus / "Audios" / missing).unlink()
    (corpus / "Audios" / broken).write_bytes(b"RIFF not really a wav")
    cat = tmp_path / "store" / "catalog.duckdb"
    seen = []
    report = ingest_msp_podcast(cat, corpus, skip_bad=True, progress=False, on_skip=seen.append)
    assert sorted(s.clip_id for s in report.skipped) == sorted([missing[:-4], broken[:-4]]) == sorted(s.clip_id for s in seen)
    with Catalog(cat, read_only=True) as c:
        skipped = dict(c.execute("SELECT clip_id, reason FROM skipped"))
        assert "missing audio" in skipped[missing[:-4]] and "unreadable audio" in skipped[broken[:-4]]
        for name in (missing, broken):
            for table in ("clips", "labels", "votes"):
                assert c.scalar(f"SELECT count(*) FROM {table} WHERE clip_id = ?", [name[:-4]]) == 0
    # the fixed corpus re-ingests cleanly and the skips go away
    make_corpus(corpus)
    ingest_msp_podcast(cat, corpus, progress=False)
    with Catalog(cat, read_only=True) as c:
        assert c.scalar("SELECT count(*) FROM skipped") == 0
        assert c.scalar("SELECT count(*) FROM clips WHERE clip_id = ?", [missing[:-4]]) == 1


def test_reingest_clears_embed_skips_of_audio_that_reads_again(tmp_path, corpus):
    """`embed --skip-bad` records clips it could not read; once their audio reads again, a re-ingest
    clears those skips (that alone makes it a change) and the clips are back on embed's list."""
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    with Catalog(cat) as c:
        test1 = sorted(clips_in_split(c, "Test1") | clips_in_split(c, "Development"))
        record_skips(c, [(cid, "embed: unreadable audio: Format not recognised") for cid in test1])  # what embed does
        assert not {s.clip_id for s in clips_to_embed(c)} & set(test1)
    report = ingest_msp_podcast(cat, corpus, progress=False)
    assert report.changed
    with Catalog(cat, read_only=True) as c:
        assert c.scalar("SELECT count(*) FROM skipped") == 0
        assert set(test1) <= {s.clip_id for s in clips_to_embed(c)}
    before = dump_catalog(cat)
    assert not ingest_msp_podcast(cat, corpus, progress=False).changed  # and then it is up to date
    assert dump_catalog(cat) == before


def test_embed_skip_of_audio_now_missing_becomes_ingest_skip(tmp_path, corpus):
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    gone = CONSENSUS[5][0]
    with Catalog(cat) as c:
        record_skips(c, [(gone[:-4], "embed: unreadable audio: truncated")])
    (corpus / "Audios" / gone).unlink()
    # one clip of ten, but its label is one of eight: past the shrink threshold of a corpus this small
    ingest_msp_podcast(cat, corpus, skip_bad=True, allow_shrink=True, progress=False)
    with Catalog(cat, read_only=True) as c:
        [(clip_id, reason)] = c.execute("SELECT clip_id, reason FROM skipped")
    assert clip_id == gone[:-4] and reason.startswith("missing audio file (listed on ")


def _smaller_corpus(root, keep: int):
    """The corpus with only its first `keep` consensus clips (and their votes), audio of the rest gone."""
    shutil.rmtree(root / "Audios")
    kept = {r[0] for r in CONSENSUS[:keep]}
    return make_corpus(root, consensus=CONSENSUS[:keep], votes=[v for v in VOTES if v[0] in kept], test3=[])


def test_reingest_that_removes_much_asks_for_allow_shrink(tmp_path, corpus):
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    before = dump_catalog(cat)
    _smaller_corpus(corpus, keep=2)
    with pytest.raises(ShrinkRefused) as e:
        ingest_msp_podcast(cat, corpus, progress=False)
    assert e.value.removals == {"clips": (8, 10), "votes": (10, 15), "labels": (6, 8)}
    assert "8 of its 10 clips rows" in str(e.value) and "--allow-shrink" in str(e.value)
    assert dump_catalog(cat) == before  # nothing written
    report = ingest_msp_podcast(cat, corpus, allow_shrink=True, progress=False)
    assert report.changed and report.clips == 2
    with Catalog(cat, read_only=True) as c:
        assert (c.scalar("SELECT count(*) FROM clips"), c.scalar("SELECT count(*) FROM votes")) == (2, 5)


def test_a_tenth_may_go_more_asks(tmp_path, corpus):
    """The threshold: removing 10% of a table is a normal re-ingest, removing more is not."""
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)  # 10 clips
    (corpus / "Audios" / TEST3[0]).unlink()
    assert ingest_msp_podcast(cat, corpus, progress=False).changed  # 1 of 10
    (corpus / "Audios" / TEST3[1]).unlink()
    with pytest.raises(ShrinkRefused, match=r"1 of its 9 clips rows \(11%\)"):
        ingest_msp_podcast(cat, corpus, progress=False)


def test_consensus_file_gone_asks_for_allow_shrink(tmp_path, corpus):
    """Without labels_consensus.csv every clip would lose its split and its imported consensus (replaced
    by one derived from votes): the label count stays, but the corpus's own labels would be lost."""
    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    before = dump_catalog(cat)
    (corpus / "Labels" / "labels_consensus.csv").unlink()
    with pytest.raises(ShrinkRefused) as e:
        ingest_msp_podcast(cat, corpus, progress=False)
    assert e.value.removals == {"labels": (len(CONSENSUS), 8)}
    assert dump_catalog(cat) == before


def test_ingest_keeps_each_files_size_and_mtime(tmp_path, corpus):
    """What the audio was when the corpus was read: a later change to a file is visible against it."""
    import os

    cat = tmp_path / "store" / "catalog.duckdb"
    ingest_msp_podcast(cat, corpus, progress=False)
    with Catalog(cat, read_only=True) as c:
        rows = c.execute("SELECT path, size_bytes, mtime_ns FROM clips ORDER BY clip_id")
    for path, size, mtime in rows:
        st = os.stat(corpus / path)
        assert (size, mtime) == (st.st_size, st.st_mtime_ns)
    path = corpus / rows[0][0]
    os.utime(path, ns=(rows[0][2], rows[0][2] + 1_000_000_000))
    assert ingest_msp_podcast(cat, corpus, progress=False).changed
    with Catalog(cat, read_only=True) as c:
        assert c.scalar("SELECT mtime_ns FROM clips WHERE path = ?", [rows[0][0]]) == rows[0][2] + 1_000_000_000
