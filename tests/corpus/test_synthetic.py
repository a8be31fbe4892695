"""The synthetic corpus: exact MSP-Podcast layout, consensus = votes, determinism, learnable labels."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.stats import spearmanr

from sertool.corpus.synthetic import write_synthetic_corpus
from sertool.corpus.synthetic_speech import NEGATIVE_WORDS, POSITIVE_WORDS
from sertool.errors import SertoolError

CLASS_CODES = {"Angry": "A", "Sad": "S", "Happy": "H", "Surprise": "U", "Fear": "F", "Disgust": "D",
               "Contempt": "C", "Neutral": "N"}
# The 1.11+ EmoDetail string, parsed independently of the generator.
EMO_DETAIL = re.compile(
    r"^(?P<worker>WORKER\d+); (?P<primary>Angry|Sad|Happy|Surprise|Fear|Disgust|Contempt|Neutral|"
    r"Other(?:-[A-Za-z]+)?); (?P<secondary>[A-Za-z,-]*); A:(?P<a>\d\.\d); V:(?P<v>\d\.\d); "
    r"D:(?P<d>\d\.\d);$")
WAV_NAME = re.compile(r"^MSP-PODCAST_(\d{4}_\d{4}|test3_\d{4})\.wav$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("syn") / "corpus", n_clips=240, seed=0)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def parsed_votes(root: Path) -> dict[str, list[dict[str, str]]]:
    votes: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_csv(root / "Labels" / "labels_detailed.csv"):
        m = EMO_DETAIL.match(row["EmoDetail"])
        assert m, f"unparseable EmoDetail: {row['EmoDetail']!r}"
        votes[row["FileName"]].append(m.groupdict())
    return votes


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = tree_hashes(write_synthetic_corpus(tmp_path / "a", n_clips=40, seed=7))
    b = tree_hashes(write_synthetic_corpus(tmp_path / "b", n_clips=40, seed=7))
    c = tree_hashes(write_synthetic_corpus(tmp_path / "c", n_clips=40, seed=8))
    assert len(a) == 2 * 40 + 3  # wav + transcript per clip, two label files, the marker
    assert a == b
    shared = set(a) & set(c)
    assert sum(a[k] != c[k] for k in shared if k.startswith("Audios/")) >= 0.9 * sum(
        k.startswith("Audios/") for k in shared)
    assert a["Labels/labels_detailed.csv"] != c["Labels/labels_detailed.csv"]


def test_layout_audio_format_and_headers(corpus: Path) -> None:
    assert sorted(p.name for p in corpus.iterdir()) == ["Audios", "Labels", "SYNTHETIC.txt",
                                                       "Transcripts"]
    wavs = sorted((corpus / "Audios").iterdir())
    assert len(wavs) == 240 and all(p.is_file() and WAV_NAME.match(p.name) for p in wavs)
    durations = []
    for p in wavs:
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16",
                                                                               "WAV")
        durations.append(info.duration)
        lines = (corpus / "Transcripts" / f"{p.stem}.txt").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1 and lines[0].strip()
    durations = np.array(durations)
    assert durations.min() >= 1.5 and durations.max() <= 11.0
    assert np.sum(durations > 6.0) == 2  # clips 50 and 150: one or two long ones, as in real data
    assert np.mean(durations <= 6.0) > 0.95 and durations.std() > 0.5  # speech-like and varied
    assert sorted(p.name for p in (corpus / "Transcripts").iterdir()) == [f"{p.stem}.txt" for p in wavs]

    consensus = (corpus / "Labels" / "labels_consensus.csv").read_bytes()
    detailed = (corpus / "Labels" / "labels_detailed.csv").read_bytes()
    assert consensus.startswith(b"FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n")
    assert detailed.startswith(b"FileName,EmoDetail\n")
    assert b"\r" not in consensus + detailed


def test_votes_parse_and_consensus_is_their_plurality(corpus: Path) -> None:
    votes = parsed_votes(corpus)
    rows = read_csv(corpus / "Labels" / "labels_consensus.csv")
    assert {r["FileName"] for r in rows} == set(votes)
    n_votes = Counter()
    for row in rows:
        clip_votes = votes[row["FileName"]]
        n_votes[len(clip_votes)] += 1
        assert len({v["worker"] for v in clip_votes}) == len(clip_votes)  # distinct annotators
        codes = Counter("O" if v["primary"].startswith("Other") else CLASS_CODES[v["primary"]]
                        for v in clip_votes).most_common()
        expected = "X" if len(codes) > 1 and codes[0][1] == codes[1][1] else codes[0][0]
        assert row["EmoClass"] == expected, row["FileName"]
        for field, key in (("EmoAct", "a"), ("EmoVal", "v"), ("EmoDom", "d")):
            ratings = [float(v[key]) for v in clip_votes]
            assert all(1.0 <= x <= 7.0 for x in ratings)
            assert float(row[field]) == round(sum(ratings) / len(ratings), 4)
    assert set(n_votes) == {5, 6, 7, 8}
    details = [v for vs in votes.values() for v in vs]
    assert any(v["secondary"] == "" for v in details) and any("," in v["secondary"] for v in details)
    assert any(v["primary"].startswith("Other-") for v in details)


@pytest.mark.parametrize("n_clips", [20, 240])
def test_every_class_o_and_x_appear_in_train(tmp_path: Path, corpus: Path, n_clips: int) -> None:
    root = corpus if n_clips == 240 else write_synthetic_corpus(tmp_path / "small", n_clips, seed=3)
    train = Counter(r["EmoClass"] for r in read_csv(root / "Labels" / "labels_consensus.csv")
                    if r["Split_Set"] == "Train")
    assert set(train) == set("ASHUFDCNOX")


def test_test3_has_audio_and_transcripts_but_no_labels(corpus: Path) -> None:
    test3 = {p.name for p in (corpus / "Audios").glob("MSP-PODCAST_test3_*.wav")}
    assert 0.1 * 240 <= len(test3) <= 0.2 * 240
    assert all((corpus / "Transcripts" / name.replace(".wav", ".txt")).is_file() for name in test3)
    labelled = {r["FileName"] for r in read_csv(corpus / "Labels" / "labels_consensus.csv")}
    voted = {r["FileName"] for r in read_csv(corpus / "Labels" / "labels_detailed.csv")}
    assert not test3 & (labelled | voted)
    assert labelled | test3 == {p.name for p in (corpus / "Audios").iterdir()}


def test_speakers_genders_and_speaker_disjoint_splits(corpus: Path) -> None:
    rows = read_csv(corpus / "Labels" / "labels_consensus.csv")
    assert {r["Split_Set"] for r in rows} == {"Train", "Development"}
    splits_of: dict[str, set[str]] = defaultdict(set)
    genders_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        splits_of[r["SpkrID"]].add(r["Split_Set"])
        genders_of[r["SpkrID"]].add(r["Gender"])
    unknown_splits = splits_of.pop("Unknown")
    assert genders_of.pop("Unknown") == {"Unknown"} and unknown_splits == {"Train", "Development"}
    assert 8 <= len(splits_of) <= 12
    assert all(len(s) == 1 for s in splits_of.values())  # each known speaker in one split only
    assert {next(iter(s)) for s in splits_of.values()} == {"Train", "Development"}
    assert {g for gs in genders_of.values() for g in gs} == {"Male", "Female"}


def test_labels_are_learnable_from_audio_and_from_text(corpus: Path) -> None:
    """Simple features predict the consensus: loudness -> arousal, spectral tilt -> dominance,
    share of positive words -> valence."""
    rows = read_csv(corpus / "Labels" / "labels_consensus.csv")
    loudness, tilt, positive, net = [], [], [], []
    for r in rows:
        y, sr = sf.read(corpus / "Audios" / r["FileName"])
        loudness.append(10 * np.log10(np.mean(y**2)))
        power = np.abs(np.fft.rfft(y)) ** 2
        freq = np.fft.rfftfreq(len(y), 1 / sr)
        tilt.append(np.log(power[(freq > 1000) & (freq < 4000)].sum()
                           / power[(freq > 80) & (freq < 1000)].sum()))
        text = (corpus / "Transcripts" / r["FileName"].replace(".wav", ".txt")).read_text()
        words = re.findall(r"[a-z']+", text.lower())
        positive.append(sum(w in POSITIVE_WORDS for w in words) / len(words))
        net.append(positive[-1] - sum(w in NEGATIVE_WORDS for w in words) / len(words))
    arousal, valence, dominance = (np.array([float(r[k]) for r in rows])
                                   for k in ("EmoAct", "EmoVal", "EmoDom"))
    assert spearmanr(loudness, arousal)[0] > 0.6
    assert spearmanr(positive, valence)[0] > 0.6
    assert spearmanr(net, valence)[0] > 0.7  # negative words carry the low end of valence
    assert spearmanr(tilt, dominance)[0] > 0.45
    # Not trivial: no single cue explains its attribute perfectly.
    assert spearmanr(loudness, arousal)[0] < 0.95 and spearmanr(positive, valence)[0] < 0.95


def test_regenerates_its_own_folder_and_refuses_foreign_ones(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write_synthetic_corpus(root, n_clips=40, seed=1)
    write_synthetic_corpus(root, n_clips=20, seed=1)  # no stale clips from the larger corpus
    assert len(list((root / "Audios").iterdir())) == 20
    assert len(read_csv(root / "Labels" / "labels_consensus.csv")) == 20 - 3

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(SertoolError, match="not empty"):
        write_synthetic_corpus(foreign, n_clips=20)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    with pytest.raises(SertoolError, match="at least"):
        write_synthetic_corpus(tmp_path / "tiny", n_clips=5)
