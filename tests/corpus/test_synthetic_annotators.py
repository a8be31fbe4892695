"""The synthetic annotators disagree like MSP-Podcast's crowd, and each worker has habits of their own.

The ranges come from the real corpus's figures stated in `sertool.corpus.synthetic_annotators`
(winning class about half of the votes; no plurality, X, on about 19% of Train clips; Neutral the
commonest minority answer, Contempt/Disgust drawing Angry votes, Sad drawing Neutral ones), widened
for a corpus of a few hundred clips. The votes are parsed from the files, independently of the
generator. Under the previous generator (every worker the same, little noise) the share was 0.75, X
5%, and the workers' answers were indistinguishable (chi-square p 0.99): every test here failed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2_contingency, kruskal
from test_synthetic import CLASS_CODES, parsed_votes, read_csv

from sertool.corpus.synthetic import write_synthetic_corpus

# MSP-Podcast: winning share about 0.5, X about 0.19 of Train. Ranges allow for ~300 labelled clips
# (the X share's sampling sd is about 0.025 there) and for the pool's random habits.
WINNING_SHARE = (0.45, 0.62)
X_SHARE = (0.12, 0.28)
EIGHT = "ASHUFDCN"
ATTRIBUTE_FIELDS = (("a", "EmoAct"), ("v", "EmoVal"), ("d", "EmoDom"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("syn") / "corpus", n_clips=400, seed=0)


def codes(vote: dict[str, str]) -> str:
    return "O" if vote["primary"].startswith("Other") else CLASS_CODES[vote["primary"]]


def test_agreement_and_no_agreement_look_like_msp_podcast(corpus: Path) -> None:
    votes = parsed_votes(corpus)
    rows = read_csv(corpus / "Labels" / "labels_consensus.csv")
    assert len(rows) >= 300
    shares, tied = [], {}
    for name, vs in votes.items():
        counts = Counter(codes(v) for v in vs).most_common()
        shares.append(counts[0][1] / len(vs))
        tied[name] = len(counts) > 1 and counts[0][1] == counts[1][1]
    assert WINNING_SHARE[0] <= np.mean(shares) <= WINNING_SHARE[1], np.mean(shares)
    assert min(vs_n := [len(vs) for vs in votes.values()]) >= 5 and np.mean(vs_n) > 5.5  # >= 5 raters

    tie_rate = np.mean(list(tied.values()))
    assert X_SHARE[0] <= tie_rate <= X_SHARE[1], tie_rate
    x_share = np.mean([r["EmoClass"] == "X" for r in rows])
    x_train = np.mean([r["EmoClass"] == "X" for r in rows if r["Split_Set"] == "Train"])
    assert x_share == tie_rate  # X comes from ties and only from ties
    assert X_SHARE[0] <= x_train <= X_SHARE[1], x_train
    # The classes themselves stay Neutral-heavy and keep every class, as in MSP-Podcast.
    classes = Counter(r["EmoClass"] for r in rows if r["EmoClass"] in EIGHT)
    assert classes.most_common(1)[0][0] == "N" and set(classes) == set(EIGHT)


def test_minority_votes_confuse_the_classes_people_confuse(corpus: Path) -> None:
    votes = parsed_votes(corpus)
    minority: dict[str, Counter[str]] = defaultdict(Counter)
    for row in read_csv(corpus / "Labels" / "labels_consensus.csv"):
        if row["EmoClass"] in EIGHT:
            minority[row["EmoClass"]].update(c for c in map(codes, votes[row["FileName"]])
                                             if c != row["EmoClass"])
    overall = sum(minority.values(), Counter())
    assert overall.most_common(1)[0][0] == "N"  # Neutral: the commonest second opinion
    assert minority["S"].most_common(1)[0][0] == "N"  # Sad clips draw Neutral votes
    # Contempt and Disgust clips draw Angry votes: clearly (1.5x) more often than the minorities of
    # the Sad, Happy, Surprise, Fear and Neutral clips do.
    cd = minority["C"] + minority["D"]
    rest = sum((minority[c] for c in EIGHT if c not in "CDA"), Counter())
    assert cd["A"] / cd.total() > 1.5 * rest["A"] / rest.total(), (cd, rest)


def test_each_worker_has_persistent_habits(corpus: Path) -> None:
    """Bias and noise belong to the worker: their class use, how far their ratings stray from the
    clip's mean, and which way their arousal ratings lean differ between workers far beyond what
    the random assignment of workers to clips explains (p < 1e-4 where no habit would give p ~ U(0, 1))."""
    votes = parsed_votes(corpus)
    consensus = {r["FileName"]: r for r in read_csv(corpus / "Labels" / "labels_consensus.csv")}
    use: dict[str, Counter[str]] = defaultdict(Counter)
    stray: dict[str, list[float]] = defaultdict(list)
    offsets: dict[str, list[float]] = defaultdict(list)
    for name, vs in votes.items():
        for v in vs:
            code = codes(v)
            use[v["worker"]][code if code in "NAHS" else "rest"] += 1
            deltas = [float(v[k]) - float(consensus[name][f]) for k, f in ATTRIBUTE_FIELDS]
            stray[v["worker"]].append(float(np.mean(np.abs(deltas))))
            offsets[v["worker"]].append(deltas[0])
    workers = sorted(w for w in use if sum(use[w].values()) >= 30)
    assert len(workers) >= 30
    table = [[use[w][k] for k in ("N", "A", "H", "S", "rest")] for w in workers]
    assert chi2_contingency(table)[1] < 1e-4  # class habits (e.g. a Neutral-prone worker)
    assert kruskal(*(stray[w] for w in workers))[1] < 1e-4  # careful and sloppy workers
    assert kruskal(*(offsets[w] for w in workers))[1] < 1e-4  # hears everyone calmer / livelier
    # The habit is visible in one worker too: the most Neutral-prone one against the pool, 4 binomial
    # sd above it (the largest of 40 workers without habits passes that about once in 1000 corpora).
    pool_n = sum(u["N"] for u in use.values()) / sum(sum(u.values()) for u in use.values())
    top = max(workers, key=lambda w: use[w]["N"] / sum(use[w].values()))
    n_top = sum(use[top].values())
    assert use[top]["N"] / n_top > pool_n + 4 * np.sqrt(pool_n * (1 - pool_n) / n_top)

