"""Adversarial corpora: inputs a careless or hostile corpus folder can hold, each refused the same way.

Every case breaks a good corpus in one way and runs `sertool ingest msp-podcast` twice over: into a
fresh store and into a store that already holds the good corpus under the same name (a botched
re-ingest). Each must exit 2 with exactly one line on stderr, nothing on stdout, naming the file (and
the row and field where one applies), leave no catalog behind in the fresh store and the holding
store's catalog byte for byte as it was, and never open a FIFO.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from msp_corpus_builders import (CONSENSUS, CONSENSUS_HEADER, TEST3, VOTES, detailed_rows, dump_catalog, make_corpus,
                                 write_csv, write_wav)
from sertool.cli import app

CONS = "labels_consensus.csv"
DET = "labels_detailed.csv"


def _line(i: int) -> int:
    return i + 2  # header is line 1


def _audio(root: Path, name: str) -> Path:
    return root / "Audios" / name


# -- the cases: each breaks the good corpus at `root` and returns the pieces the one line must hold ----------
def _consensus_header_only(root: Path, tmp: Path) -> list[str]:
    write_csv(root / "Labels" / CONS, CONSENSUS_HEADER, [])
    return [CONS, ":1:", "no data rows"]


def _detailed_header_only(root: Path, tmp: Path) -> list[str]:
    header, _ = detailed_rows(VOTES, "emodetail")
    write_csv(root / "Labels" / DET, header, [])
    return [DET, ":1:", "no data rows"]


def _consensus_is_a_directory(root: Path, tmp: Path) -> list[str]:
    (root / "Labels" / CONS).unlink()
    (root / "Labels" / CONS).mkdir()
    return [CONS, "not a regular file", "directory"]


def _empty_wav(root: Path, tmp: Path) -> list[str]:
    sf.write(_audio(root, CONSENSUS[2][0]), np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    return [CONS, f":{_line(2)}:", "FileName", "0 samples", CONSENSUS[2][0]]


def _empty_unlabelled_wav(root: Path, tmp: Path) -> list[str]:
    sf.write(_audio(root, TEST3[0]), np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    return [f"Audios/{TEST3[0]}", "0 samples"]


def _nan_samples(root: Path, tmp: Path) -> list[str]:
    x = np.full((4000, 1), 0.1, np.float32)
    x[1234] = np.nan
    sf.write(_audio(root, CONSENSUS[1][0]), x, 16000, subtype="FLOAT")
    return [CONS, f":{_line(1)}:", "FileName", "NaN", CONSENSUS[1][0]]


def _symlink_outside(root: Path, tmp: Path) -> list[str]:
    outside = tmp / "outside.wav"
    write_wav(outside)
    _audio(root, CONSENSUS[3][0]).unlink()
    _audio(root, CONSENSUS[3][0]).symlink_to(outside)
    return [CONS, f":{_line(3)}:", "FileName", "symbolic link", "--follow-symlinks", CONSENSUS[3][0]]


def _fifo_as_wav(root: Path, tmp: Path) -> list[str]:
    _audio(root, CONSENSUS[0][0]).unlink()
    os.mkfifo(_audio(root, CONSENSUS[0][0]))
    return [CONS, f":{_line(0)}:", "FileName", "not a regular file", "FIFO", CONSENSUS[0][0]]


def _invalid_utf8_on_line_30(root: Path, tmp: Path) -> list[str]:
    extra = [[CONSENSUS[i % 6][0], f"WORKER9{i:04d}", "Neutral", "", "4.0", "4.0", "4.0"] for i in range(40)]
    make_corpus(root, fmt="workers", votes=VOTES + extra)
    path = root / "Labels" / DET
    lines = path.read_bytes().split(b"\n")
    lines[29] = lines[29].replace(b",Neutral,,", b",Neutral,Caf\xe9,")  # Latin-1, not UTF-8
    path.write_bytes(b"\n".join(lines))
    return [DET, ":30:", "EmoClass_Second", "not UTF-8"]


def _duplicate_header_column(root: Path, tmp: Path) -> list[str]:
    write_csv(root / "Labels" / CONS, CONSENSUS_HEADER + ["EmoAct"], [r + ["1.0"] for r in CONSENSUS])
    return [CONS, ":1:", "EmoAct", "twice"]


def _duplicate_vote_row(root: Path, tmp: Path) -> list[str]:
    make_corpus(root, fmt="workers", votes=VOTES + [VOTES[3]])
    return [DET, f":{_line(len(VOTES))}:", "Workers", "duplicate", f"line {_line(3)}"]


def _worker_votes_twice(root: Path, tmp: Path) -> list[str]:
    f, worker, *_ = VOTES[4]
    make_corpus(root, fmt="emodetail", votes=VOTES + [[f, worker, "Sad", "", "3.0", "3.0", "3.0"]])
    return [DET, f":{_line(len(VOTES))}:", "EmoDetail", worker, "already voted", f"line {_line(4)}"]


def _wav_case_twins(root: Path, tmp: Path) -> list[str]:
    name = CONSENSUS[5][0]
    twin = name[:-4] + ".WAV"
    _audio(root, twin).write_bytes(_audio(root, name).read_bytes())
    return [name, twin, "one clip"]


CASES = [_consensus_header_only, _detailed_header_only, _consensus_is_a_directory, _empty_wav, _empty_unlabelled_wav,
         _nan_samples, _symlink_outside, _fifo_as_wav, _invalid_utf8_on_line_30, _duplicate_header_column,
         _duplicate_vote_row, _worker_votes_twice, _wav_case_twins]


# -- helpers ---------------------------------------------------------------------------------------------------
@contextmanager
def fifo_watch(root: Path) -> Iterator[list[Path]]:
    """Records every FIFO under `root` that anyone opens for reading while the block runs, even for an
    instant without blocking: a writer waits on each FIFO, and its open returns exactly when a reader
    opens it. That reader then gets end of file at once, so a regression fails the test instead of
    hanging it."""
    fifos = [p for p in root.rglob("*") if stat.S_ISFIFO(p.lstat().st_mode)]
    opened: list[Path] = []
    done = threading.Event()

    def writer(p: Path) -> None:
        fd = os.open(p, os.O_WRONLY)  # blocks until someone opens `p` for reading
        if not done.is_set():
            opened.append(p)
        os.close(fd)

    threads = [threading.Thread(target=writer, args=(p,), daemon=True) for p in fifos]
    for t in threads:
        t.start()
    try:
        yield opened
    finally:
        done.set()
        for p, t in zip(fifos, threads):
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)  # our own read end lets a still-waiting writer go
            t.join()
            os.close(fd)


def ingest(store: Path, root: Path, *flags: str):
    with fifo_watch(root) as opened:
        res = CliRunner().invoke(app, ["--store", str(store), "ingest", "msp-podcast", str(root), *flags])
    assert opened == [], f"opened a FIFO: {opened}"
    return res


def assert_one_line(res, pieces: list[str]) -> None:
    assert res.exit_code == 2, res.output
    assert res.stdout == "", res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for piece in pieces:
        assert piece in lines[0], (piece, lines[0])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def holding(tmp_path_factory) -> Path:
    """A store that already holds the good corpus, named `good` like every broken copy below."""
    base = tmp_path_factory.mktemp("adversarial")
    store = base / "store"
    res = CliRunner().invoke(app, ["--store", str(store), "ingest", "msp-podcast", str(make_corpus(base / "good"))])
    assert res.exit_code == 0, res.output
    return store


# -- the suite -------------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("where", ["fresh", "holding"])
def test_adversarial_input_is_one_line_exit_2_and_no_change(tmp_path, holding, case, where):
    root = make_corpus(tmp_path / "good")
    pieces = case(root, tmp_path)
    store = tmp_path / "store" if where == "fresh" else holding
    catalog = store / "catalog.duckdb"
    before = (dump_catalog(catalog), _sha(catalog)) if where == "holding" else None
    res = ingest(store, root)
    assert_one_line(res, pieces)
    if where == "fresh":
        assert not catalog.exists() and not catalog.with_name("catalog.duckdb.wal").exists()
    else:
        assert (dump_catalog(catalog), _sha(catalog)) == before


@pytest.mark.timeout(60)
def test_skip_bad_skips_and_records_each_bad_wav_without_opening_fifos(tmp_path):
    root = make_corpus(tmp_path / "c")
    bad = {CONSENSUS[0][0]: "FIFO", CONSENSUS[1][0]: "NaN", CONSENSUS[2][0]: "0 samples",
           CONSENSUS[3][0]: "symbolic link"}
    _fifo_as_wav(root, tmp_path)
    _nan_samples(root, tmp_path)
    _empty_wav(root, tmp_path)
    _symlink_outside(root, tmp_path)
    store = tmp_path / "store"
    res = ingest(store, root, "--skip-bad")
    assert res.exit_code == 0, res.output
    q = CliRunner().invoke(app, ["--store", str(store), "store", "query",
                                 "select clip_id, reason from skipped order by 1", "--format", "json"])
    import json

    reasons = {r["clip_id"]: r["reason"] for r in json.loads(q.stdout)}
    assert set(reasons) == {name[:-4] for name in bad}
    for name, why in bad.items():
        assert why in reasons[name[:-4]], reasons[name[:-4]]
    # label errors are never skipped, --skip-bad or not
    _wav_case_twins(root, tmp_path)
    assert_one_line(ingest(store, root, "--skip-bad"), [CONSENSUS[5][0][:-4] + ".WAV"])


@pytest.mark.timeout(60)
def test_follow_symlinks_reads_linked_audio_but_never_a_fifo(tmp_path):
    root = make_corpus(tmp_path / "c")
    _symlink_outside(root, tmp_path)
    store = tmp_path / "store"
    res = ingest(store, root, "--follow-symlinks")
    assert res.exit_code == 0, res.output
    q = CliRunner().invoke(app, ["--store", str(store), "store", "query",
                                 f"select path, duration_s from clips where clip_id = '{CONSENSUS[3][0][:-4]}'",
                                 "--format", "csv"])
    assert q.stdout.split()[1].startswith(f"Audios/{CONSENSUS[3][0]},0.25")  # the linked file's header
    # a link to a FIFO is refused even when following links; so is a link to nothing
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    _audio(root, CONSENSUS[3][0]).unlink()
    _audio(root, CONSENSUS[3][0]).symlink_to(fifo)
    with fifo_watch(tmp_path):
        res = CliRunner().invoke(app, ["--store", str(store), "ingest", "msp-podcast", str(root), "--follow-symlinks"])
    assert_one_line(res, [CONS, f":{_line(3)}:", "FileName", "not a regular file", "FIFO"])
    _audio(root, CONSENSUS[3][0]).unlink()
    _audio(root, CONSENSUS[3][0]).symlink_to(tmp_path / "nowhere.wav")
    assert_one_line(ingest(store, root, "--follow-symlinks"), [CONS, f":{_line(3)}:", "FileName", "broken"])


def test_symlinked_transcript_is_refused_too(tmp_path):
    root = make_corpus(tmp_path / "c")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the catalog\n")
    tpath = root / "Transcripts" / "MSP-PODCAST_0001_0001.txt"
    tpath.unlink()
    tpath.symlink_to(secret)
    assert_one_line(ingest(tmp_path / "store", root), ["Transcripts/MSP-PODCAST_0001_0001.txt", "symbolic link"])


def test_reingest_that_would_lose_labels_is_refused_until_allowed(tmp_path):
    """labels_consensus.csv moved away: every clip would lose its split and its imported consensus."""
    root = make_corpus(tmp_path / "good")
    store = tmp_path / "store"
    assert ingest(store, root).exit_code == 0
    catalog = store / "catalog.duckdb"
    before = (dump_catalog(catalog), _sha(catalog))
    (root / "Labels" / CONS).rename(tmp_path / CONS)
    assert_one_line(ingest(store, root), ["corpus 'good'", f"{len(CONSENSUS)} of its 8 labels rows", "--allow-shrink"])
    assert (dump_catalog(catalog), _sha(catalog)) == before
    res = ingest(store, root, "--allow-shrink")
    assert res.exit_code == 0, res.output
    assert dump_catalog(catalog)["labels"] != before[0]["labels"]
