"""Tiny MSP-Podcast-layout corpora written by hand, for the reader, ingest and CLI tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

CONSENSUS_HEADER = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]

# FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
CONSENSUS = [
    ["MSP-PODCAST_0001_0001.wav", "H", "5.0", "6.0", "4.5", "11", "Female", "Train"],
    ["MSP-PODCAST_0001_0002.wav", "A", "6.0", "2.0", "5.5", "11", "Female", "Train"],
    ["MSP-PODCAST_0002_0001.wav", "N", "4.0", "4.0", "4.0", "12", "Male", "Train"],
    ["MSP-PODCAST_0003_0001.wav", "S", "2.5", "2.0", "3.0", "Unknown", "Unknown", "Train"],
    ["MSP-PODCAST_0004_0001.wav", "X", "4.0", "3.5", "4.0", "13", "Male", "Development"],
    ["MSP-PODCAST_0005_0001.wav", "O", "3.0", "5.0", "3.5", "14", "Female", "Test1"],
]

# FileName, worker, primary (word), secondary, A, V, D
VOTES = [
    ["MSP-PODCAST_0001_0001.wav", "WORKER00001", "Happy", "Excited,Amused", "5.0", "6.0", "4.0"],
    ["MSP-PODCAST_0001_0001.wav", "WORKER00002", "Happy", "", "5.0", "6.0", "5.0"],
    ["MSP-PODCAST_0001_0001.wav", "WORKER00003", "Neutral", "Concerned", "5.0", "6.0", "4.5"],
    ["MSP-PODCAST_0001_0002.wav", "WORKER00001", "Angry", "Annoyed", "6.0", "2.0", "5.0"],
    ["MSP-PODCAST_0001_0002.wav", "WORKER00004", "Angry", "", "6.0", "2.0", "6.0"],
    ["MSP-PODCAST_0002_0001.wav", "WORKER00002", "Neutral", "", "4.0", "4.0", "4.0"],
    ["MSP-PODCAST_0003_0001.wav", "WORKER00003", "Sad", "Disappointed", "2.5", "2.0", "3.0"],
    ["MSP-PODCAST_0004_0001.wav", "WORKER00001", "Happy", "", "4.0", "4.0", "4.0"],
    ["MSP-PODCAST_0004_0001.wav", "WORKER00002", "Sad", "", "4.0", "3.0", "4.0"],
    ["MSP-PODCAST_0005_0001.wav", "WORKER00004", "Other-Curious", "", "3.0", "5.0", "3.5"],
    # no consensus row: the reader derives the consensus from these votes
    ["MSP-PODCAST_0006_0001.wav", "WORKER00001", "Happy", "", "5.0", "6.0", "4.0"],
    ["MSP-PODCAST_0006_0001.wav", "WORKER00002", "Happy", "", "6.0", "7.0", "5.0"],
    ["MSP-PODCAST_0006_0001.wav", "WORKER00003", "Surprise", "", "7.0", "5.0", "3.0"],
    ["MSP-PODCAST_0007_0001.wav", "WORKER00001", "Fear", "", "6.0", "2.0", "2.0"],
    ["MSP-PODCAST_0007_0001.wav", "WORKER00004", "Disgust", "", "4.0", "2.0", "5.0"],
]

TEST3 = ["MSP-PODCAST_test3_0001.wav", "MSP-PODCAST_test3_0002.wav"]

TRANSCRIPTS = {
    "MSP-PODCAST_0001_0001": "that is wonderful news",
    "MSP-PODCAST_0001_0002": "I told you not to do that",
    "MSP-PODCAST_test3_0001": "hello there",
}

DETAILED_FORMATS = ("workers", "workerid", "emodetail")


def write_wav(path: Path, seconds: float = 0.25, sample_rate: int = 16000, channels: int = 1) -> None:
    rng = np.random.default_rng(len(path.name))
    data = (0.1 * rng.standard_normal((int(seconds * sample_rate), channels))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sample_rate, subtype="PCM_16")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def detailed_rows(votes: list[list[str]], fmt: str) -> tuple[list[str], list[list[str]]]:
    """The same votes in one of the three release formats of labels_detailed.csv."""
    if fmt == "emodetail":
        rows = [[f, f"{w}; {p}; {s}; A:{a}; V:{v}; D:{d};", "extra"] for f, w, p, s, a, v, d in votes]
        return ["FileName", "EmoDetail", "Comment"], rows
    worker = {"workers": "Workers", "workerid": "WorkerID"}[fmt]
    return ["FileName", worker, "EmoClass_Major", "EmoClass_Second", "EmoAct", "EmoVal", "EmoDom"], votes


def make_corpus(
    root: Path,
    *,
    fmt: str = "emodetail",
    consensus: list[list[str]] | None = None,
    votes: list[list[str]] | None = None,
    test3: list[str] | None = None,
    transcripts: dict[str, str] | None = None,
) -> Path:
    """Write a corpus in the MSP-Podcast layout: audio for every clip named anywhere, both label files."""
    consensus = CONSENSUS if consensus is None else consensus
    votes = VOTES if votes is None else votes
    test3 = TEST3 if test3 is None else test3
    transcripts = TRANSCRIPTS if transcripts is None else transcripts
    names = {r[0] for r in consensus} | {r[0] for r in votes} | set(test3)
    for i, name in enumerate(sorted(names)):
        write_wav(root / "Audios" / name, seconds=0.2 + 0.05 * i)
    write_csv(root / "Labels" / "labels_consensus.csv", CONSENSUS_HEADER, consensus)
    header, rows = detailed_rows(votes, fmt)
    write_csv(root / "Labels" / "labels_detailed.csv", header, rows)
    for stem, text in transcripts.items():
        (root / "Transcripts").mkdir(parents=True, exist_ok=True)
        (root / "Transcripts" / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def dump_catalog(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, through a read-only connection (the 'catalog unchanged' check)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        con.close()
