"""How the synthetic corpus's annotators agree, next to the MSP-Podcast figures it aims at.

Reads only the files a corpus folder holds (`Labels/labels_detailed.csv`, `labels_consensus.csv`,
`Audios/`, `Transcripts/`), so it measures any MSP-Podcast-layout folder the same way, real or
synthetic. Printed figures (labelled clips; "Train" where the real figure is a Train one):

* mean winning share: per clip, the share of votes for the most-voted class (for X, for one of the
  tied classes), averaged over clips;
* X share: clips whose top is tied, of all labelled clips and of Train;
* margin-1 share: clips whose winner leads the runner-up by exactly one vote (near-ties, which
  soft labels keep and hard labels hide);
* minority votes: for clips with one of the 8 classes as consensus, what the other votes said, per
  consensus class (the per-class confusion), and which class gets the most minority votes overall;
* per-worker bias: the largest total-variation distance between one worker's vote distribution and
  the pool's, over workers with at least 30 votes;
* cue correlations: Spearman of loudness / positive-word share / spectral tilt with the consensus
  arousal / valence / dominance (the cues `sertool.corpus.synthetic_speech` plants).

usage: python bench/annotator_stats.py [--clips 600] [--seed 0] [--corpus DIR]
(without --corpus it writes a synthetic corpus to a temporary folder first).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sertool.corpus.synthetic import write_synthetic_corpus
from sertool.corpus.synthetic_speech import POSITIVE_WORDS
from sertool.labels import class_code

CLASSES = "ASHUFDCN"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def votes_by_clip(root: Path) -> dict[str, list[tuple[str, str]]]:
    """FileName -> [(worker, class code)] from a 1.11+ `EmoDetail` file."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in read_csv(root / "Labels" / "labels_detailed.csv"):
        worker, primary = (s.strip() for s in row["EmoDetail"].split(";")[:2])
        out[row["FileName"]].append((worker, class_code(primary, allow_x=False)))
    return out


def agreement_stats(root: Path) -> dict[str, object]:
    votes = votes_by_clip(root)
    rows = read_csv(root / "Labels" / "labels_consensus.csv")
    split = {r["FileName"]: r["Split_Set"] for r in rows}
    consensus = {r["FileName"]: r["EmoClass"] for r in rows}
    shares, ties, margin1, train_ties = [], [], [], []
    minority: dict[str, Counter[str]] = defaultdict(Counter)
    for name, vs in votes.items():
        counts = Counter(c for _, c in vs).most_common()
        top = counts[0][1]
        second = counts[1][1] if len(counts) > 1 else 0
        shares.append(top / len(vs))
        ties.append(top == second)
        margin1.append(top - second == 1)
        if split[name] == "Train":
            train_ties.append(top == second)
        if consensus[name] in CLASSES:
            minority[consensus[name]].update(c for _, c in vs if c != consensus[name])
    pool = Counter(c for vs in votes.values() for _, c in vs)
    per_worker: dict[str, Counter[str]] = defaultdict(Counter)
    for vs in votes.values():
        for w, c in vs:
            per_worker[w][c] += 1
    keys = sorted(pool)
    pool_p = np.array([pool[k] for k in keys], float) / sum(pool.values())
    tv = {w: 0.5 * np.abs(np.array([cnt[k] for k in keys], float) / sum(cnt.values()) - pool_p).sum()
          for w, cnt in per_worker.items() if sum(cnt.values()) >= 30}
    overall_minority = sum(minority.values(), Counter())
    return {
        "clips": len(votes), "votes_per_clip": np.mean([len(v) for v in votes.values()]),
        "mean_winning_share": float(np.mean(shares)), "x_share": float(np.mean(ties)),
        "x_share_train": float(np.mean(train_ties)), "margin1_share": float(np.mean(margin1)),
        "consensus": Counter(consensus.values()), "minority": minority,
        "top_minority_target": overall_minority.most_common(3),
        "worker_tv_max": max(tv.values()) if tv else float("nan"),
        "worker_tv_median": float(np.median(list(tv.values()))) if tv else float("nan"),
    }


def cue_correlations(root: Path) -> dict[str, float]:
    rows = read_csv(root / "Labels" / "labels_consensus.csv")
    loud, tilt, pos = [], [], []
    for r in rows:
        y, sr = sf.read(root / "Audios" / r["FileName"])
        loud.append(10 * np.log10(np.mean(y**2)))
        power = np.abs(np.fft.rfft(y)) ** 2
        freq = np.fft.rfftfreq(len(y), 1 / sr)
        tilt.append(np.log(power[(freq > 1000) & (freq < 4000)].sum()
                           / power[(freq > 80) & (freq < 1000)].sum()))
        words = re.findall(r"[a-z']+", (root / "Transcripts" / r["FileName"].replace(".wav", ".txt"))
                           .read_text().lower())
        pos.append(sum(w in POSITIVE_WORDS for w in words) / len(words))
    att = {k: [float(r[k]) for r in rows] for k in ("EmoAct", "EmoVal", "EmoDom")}
    return {"loudness~arousal": spearmanr(loud, att["EmoAct"])[0],
            "positive~valence": spearmanr(pos, att["EmoVal"])[0],
            "tilt~dominance": spearmanr(tilt, att["EmoDom"])[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.corpus or write_synthetic_corpus(Path(tmp) / "corpus", args.clips, args.seed)
        s = agreement_stats(root)
        cues = cue_correlations(root)
    print(f"labelled clips {s['clips']}, votes per clip {s['votes_per_clip']:.2f}")
    print(f"mean winning share {s['mean_winning_share']:.3f}   (MSP-Podcast: about 0.5)")
    print(f"X share {s['x_share']:.3f}, of Train {s['x_share_train']:.3f}   (MSP-Podcast Train: ~0.19)")
    print(f"margin-1 share {s['margin1_share']:.3f}")
    print("consensus classes", dict(sorted(s["consensus"].items())))
    print("top minority-vote targets", s["top_minority_target"])
    for c in CLASSES:
        total = sum(s["minority"][c].values())
        top = ", ".join(f"{k} {n / total:.2f}" for k, n in s["minority"][c].most_common(3)) if total else "-"
        print(f"  consensus {c}: minority votes -> {top}")
    print(f"per-worker vote distribution vs pool, total variation: max {s['worker_tv_max']:.3f}, "
          f"median {s['worker_tv_median']:.3f}")
    print("cue correlations", {k: round(float(v), 3) for k, v in cues.items()})


if __name__ == "__main__":
    main()
