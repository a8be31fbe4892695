"""The MSP-Podcast reader on small hand-written corpora in each release format."""

from collections import Counter, defaultdict
from statistics import fmean

import pytest
import soundfile as sf

from msp_corpus_builders import CONSENSUS, DETAILED_FORMATS, TEST3, TRANSCRIPTS, VOTES, make_corpus, write_wav
from sertool.labels import class_code
from sertool.corpus.msp_podcast import detailed_format, read_msp_podcast


@pytest.mark.parametrize("fmt", DETAILED_FORMATS)
def test_every_detailed_format_gives_the_same_votes(tmp_path, fmt):
    rec = read_msp_podcast(make_corpus(tmp_path / "c", fmt=fmt), progress=False)
    assert rec.format == f"msp-podcast/{fmt}"
    got = [(v.clip_id, v.annotator_id, v.emotion, v.secondary, v.arousal, v.valence, v.dominance) for v in rec.votes]
    want = [(f[:-4], w, class_code(p), s or None, float(a), float(v), float(d)) for f, w, p, s, a, v, d in VOTES]
    assert got == want


def test_detailed_format_detection():
    assert detailed_format(["FileName", "EmoDetail"]) == "emodetail"
    assert detailed_format(["FileName", "Workers", "EmoClass_Major"]) == "workers"
    assert detailed_format(["FileName", "WorkerID", "EmoClass_Major"]) == "workerid"
    assert detailed_format(["FileName", "Who"]) == "unknown"


def test_imported_and_derived_consensus(tmp_path):
    rec = read_msp_podcast(make_corpus(tmp_path / "c"), progress=False)
    labels = {lab.clip_id: lab for lab in rec.labels}
    votes = defaultdict(list)
    for f, _, p, _, a, v, d in VOTES:
        votes[f[:-4]].append((class_code(p), float(a), float(v), float(d)))

    for f, emo, a, v, d, *_ in CONSENSUS:  # imported as written, with counts from the votes
        lab = labels[f[:-4]]
        assert (lab.source, lab.emotion, lab.arousal, lab.valence, lab.dominance) == ("corpus", emo, float(a), float(v), float(d))
        vs = votes[f[:-4]]
        assert lab.n_annotators == len(vs)
        top = max(Counter(e for e, *_ in vs).values())
        share = (sum(e == emo for e, *_ in vs) if emo != "X" else top) / len(vs)
        assert lab.agreement == pytest.approx(share)

    consensus_ids = {f[:-4] for f, *_ in CONSENSUS}
    derived = {cid for cid in votes if cid not in consensus_ids}
    assert derived and {c for c, lab in labels.items() if lab.source == "votes"} == derived
    for cid in derived:
        lab, vs = labels[cid], votes[cid]
        counts = Counter(e for e, *_ in vs).most_common()
        expect = "X" if len(counts) > 1 and counts[0][1] == counts[1][1] else counts[0][0]
        assert lab.emotion == expect
        assert lab.arousal == pytest.approx(fmean(x[1] for x in vs))
        assert lab.valence == pytest.approx(fmean(x[2] for x in vs))
        assert lab.dominance == pytest.approx(fmean(x[3] for x in vs))
        assert lab.n_annotators == len(vs)
    assert {lab.emotion for lab in labels.values() if lab.source == "votes"} >= {"X"}  # the tie case is there


def test_clips_splits_audio_and_transcripts(tmp_path):
    root = make_corpus(tmp_path / "c")
    write_wav(root / "Audios" / "MSP-PODCAST_0002_0001.wav", seconds=0.5, sample_rate=8000, channels=2)
    rec = read_msp_podcast(root, progress=False)
    clips = {c.clip_id: c for c in rec.clips}
    assert rec.name == "c"
    for f, *_, spk, gender, split in CONSENSUS:
        c = clips[f[:-4]]
        assert (c.path, c.split, c.speaker_id, c.gender) == (f"Audios/{f}", split, spk, gender)
    for f in TEST3:  # audio without a label row: the challenge test set, no labels
        assert clips[f[:-4]].split == "Test3"
        assert f[:-4] not in {lab.clip_id for lab in rec.labels}
    for cid, c in clips.items():
        info = sf.info(str(root / c.path))
        assert (c.duration_s, c.sample_rate, c.n_channels) == (pytest.approx(info.duration), info.samplerate, info.channels)
        assert c.transcript == TRANSCRIPTS.get(cid)
    assert (clips["MSP-PODCAST_0002_0001"].sample_rate, clips["MSP-PODCAST_0002_0001"].n_channels) == (8000, 2)


def test_name_option_and_consensus_only_corpus(tmp_path):
    root = make_corpus(tmp_path / "c")
    (root / "Labels" / "labels_detailed.csv").unlink()
    rec = read_msp_podcast(root, name="podcast", progress=False)
    assert rec.name == "podcast" and rec.format == "msp-podcast/none" and rec.votes == []
    assert all(lab.source == "corpus" and lab.n_annotators == 0 and lab.agreement is None for lab in rec.labels)
