"""Bad input: one line naming file, row and field; exit code 2; the catalog exactly as it was."""

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msp_corpus_builders import CONSENSUS, CONSENSUS_HEADER, VOTES, dump_catalog, make_corpus, write_csv
from sertool.cli import app

CONS = "labels_consensus.csv"
DET = "labels_detailed.csv"


def _replace(rows, i, j, value):
    rows = [list(r) for r in rows]
    rows[i][j] = value
    return rows


def _line(i: int) -> int:
    return i + 2  # header is line 1


# Each case: (name, how to break a fresh corpus, expected pieces of the message).
def _consensus_header_typo(root: Path):
    write_csv(root / "Labels" / CONS, [h if h != "EmoVal" else "EmoVall" for h in CONSENSUS_HEADER], CONSENSUS)
    return [CONS, ":1:", "EmoVal", "missing column", "EmoVall"]


def _detailed_header_typo(root: Path):
    make_corpus(root, fmt="workers")
    path = root / "Labels" / DET
    path.write_text(path.read_text().replace("EmoClass_Major", "EmoClass_Majr", 1))
    return [DET, ":1:", "EmoClass_Major", "missing column"]


def _unknown_code(root: Path):
    make_corpus(root, consensus=_replace(CONSENSUS, 3, 1, "Q"))
    return [CONS, f":{_line(3)}:", "EmoClass", "unknown emotion class 'Q'"]


def _unknown_word_workers(root: Path):
    make_corpus(root, fmt="workerid", votes=_replace(VOTES, 4, 2, "Hapy"))
    return [DET, f":{_line(4)}:", "EmoClass_Major", "'Hapy'"]


def _unknown_word_emodetail(root: Path):
    make_corpus(root, fmt="emodetail", votes=_replace(VOTES, 2, 2, "Joyful"))
    return [DET, f":{_line(2)}:", "EmoDetail", "'Joyful'"]


def _attribute_out_of_range(root: Path):
    make_corpus(root, consensus=_replace(CONSENSUS, 1, 2, "8.5"))
    return [CONS, f":{_line(1)}:", "EmoAct", "outside the rating range"]


def _vote_attribute_out_of_range(root: Path):
    make_corpus(root, fmt="emodetail", votes=_replace(VOTES, 5, 5, "0.0"))
    return [DET, f":{_line(5)}:", "EmoDetail V", "outside the rating range"]


def _escaping_file_name(root: Path):
    make_corpus(root, consensus=_replace(CONSENSUS, 2, 0, "../../etc/passwd.wav"))
    return [CONS, f":{_line(2)}:", "FileName", "escapes the corpus folder"]


def _missing_audio(root: Path):
    (root / "Audios" / CONSENSUS[4][0]).unlink()
    return [CONS, f":{_line(4)}:", "FileName", "missing audio file", CONSENSUS[4][0]]


def _unreadable_audio(root: Path):
    (root / "Audios" / CONSENSUS[0][0]).write_bytes(b"\x00" * 64)
    return [CONS, f":{_line(0)}:", "FileName", "unreadable audio", CONSENSUS[0][0]]


def _duplicate_file_name(root: Path):
    make_corpus(root, consensus=CONSENSUS + [CONSENSUS[1]])
    return [CONS, f":{_line(len(CONSENSUS))}:", "FileName", "duplicate", f"first on line {_line(1)}"]


def _empty_file(root: Path):
    (root / "Labels" / DET).write_bytes(b"")
    return [DET, ":1:", "empty file"]


def _not_a_corpus(root: Path):
    import shutil

    shutil.rmtree(root / "Audios")
    return [str(root), "not an MSP-Podcast corpus", "Audios/"]


CASES = [_consensus_header_typo, _detailed_header_typo, _unknown_code, _unknown_word_workers, _unknown_word_emodetail,
         _attribute_out_of_range, _vote_attribute_out_of_range, _escaping_file_name, _missing_audio, _unreadable_audio,
         _duplicate_file_name, _empty_file, _not_a_corpus]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """A store that already holds the good corpus: bad input must leave it exactly as it is."""
    base = tmp_path_factory.mktemp("bad")
    store = base / "store"
    res = CliRunner().invoke(app, ["--store", str(store), "ingest", "msp-podcast", str(make_corpus(base / "good"))])
    assert res.exit_code == 0, res.output
    return store


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__.strip("_"))
def test_bad_input_names_file_row_field_and_leaves_catalog(tmp_path, ingested, case):
    root = make_corpus(tmp_path / "good")  # same corpus name as the stored one: a botched re-ingest
    expected = case(root)
    catalog = ingested / "catalog.duckdb"
    before, sha = dump_catalog(catalog), _sha(catalog)
    res = CliRunner().invoke(app, ["--store", str(ingested), "ingest", "msp-podcast", str(root)])
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in res.output
    for piece in expected:
        assert piece in line, (piece, line)
    assert dump_catalog(catalog) == before
    assert _sha(catalog) == sha


@pytest.mark.parametrize("case", [_unknown_code, _missing_audio], ids=["label", "audio"])
def test_failed_first_ingest_leaves_no_catalog(tmp_path, case):
    root = make_corpus(tmp_path / "c")
    case(root)
    store = tmp_path / "store"
    res = CliRunner().invoke(app, ["--store", str(store), "ingest", "msp-podcast", str(root)])
    assert res.exit_code == 2
    assert not (store / "catalog.duckdb").exists()


def test_skip_bad_reports_and_records_the_skip(tmp_path):
    root = make_corpus(tmp_path / "c")
    broken = CONSENSUS[0][0]
    (root / "Audios" / broken).write_bytes(b"\x00" * 64)
    store = tmp_path / "store"
    res = CliRunner().invoke(app, ["--store", str(store), "ingest", "msp-podcast", str(root), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.stderr and broken[:-4] in res.stderr
    q = CliRunner().invoke(app, ["--store", str(store), "store", "query", "select clip_id from skipped", "--format", "csv"])
    assert q.stdout.split() == ["clip_id", broken[:-4]]
    # --skip-bad does not excuse label errors
    make_corpus(root, consensus=_replace(CONSENSUS, 3, 1, "Q"))
    res = CliRunner().invoke(app, ["--store", str(store), "ingest", "msp-podcast", str(root), "--skip-bad"])
    assert res.exit_code == 2 and "EmoClass" in res.stderr
