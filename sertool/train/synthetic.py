"""A store of synthetic *frames* whose statistics follow the labels: for tests and the training benchmark.

The end-to-end path (synthetic audio -> ingest -> tiny encoders -> store) is what the demo runs; it
costs minutes of encoder time at realistic sizes. Training only needs frames with the store's layout
and a learnable relation to the labels, so this writes them straight through the store's writer:
each class has a random prototype direction per encoder, attributes shift the frames along three
more directions, and noise (more of it in augmented variants) hides both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..labels import CLASSES, OTHER, plurality
from ..store.catalog import Catalog
from ..store.corpora import write_corpus
from ..store.layout import StoreLayout
from ..store.records import ClipRecord, CorpusRecords, EncoderRecord, LabelRecord, VoteRecord

CORPUS = "synthetic-frames"


@dataclass(frozen=True)
class FrameSpec:
    """What to write: clip counts per split, encoder dims, frames per clip, variants."""

    splits: dict[str, int] = field(default_factory=lambda: {"Train": 320, "Development": 48, "Test1": 24, "Test3": 16})
    """Clips per split; Test3 is written without labels (like the challenge's test set)."""
    encoders: dict[str, int] = field(default_factory=lambda: {"whisper": 16, "wavlm": 12, "roberta": 8})
    """Encoder name -> frame width; `roberta` is a text encoder (clean variant only, fewer frames)."""
    frames: tuple[int, int] = (8, 40)
    """Frames per audio clip, drawn uniformly in [low, high] (unless `speech_lengths`)."""
    speech_lengths: bool = False
    """Realistic lengths instead: lognormal seconds (median 5 s, 1-30 s) at 50 frames/s, ~3 tokens/s of text."""
    variants: tuple[str, ...] = ("noise",)
    """Augmented variants of the training clips (audio encoders only)."""
    signal: float = 1.0
    """Strength of the label signal relative to unit noise."""
    p_other: float = 0.08
    p_no_agreement: float = 0.05
    seed: int = 0
    votes: bool = False
    """Also write 3-7 annotators' votes per labelled clip, each the clip's class with probability
    `vote_accuracy` (else another class or Other), with the consensus their plurality (ties: X), and
    speakers of both genders: a store for the levers that learn from every vote."""
    vote_accuracy: float = 0.55


def _record(name: str, dim: int) -> EncoderRecord:
    text = name == "roberta"
    return EncoderRecord(
        name=name, kind=name, checkpoint=f"synthetic/{name}", revision="0", layer=None, dim=dim,
        frame_rate=None if text else 50.0, dtype="float16", preprocessing="synthetic frames",
    )


def _votes(rows: list[tuple], labels: list[tuple], spec: FrameSpec) -> tuple[list[str | None], list[VoteRecord]]:
    """Votes around each clip's true class (what its frames encode) and the consensus they give."""
    vrng = np.random.default_rng([spec.seed, 7])
    consensus: list[str | None] = []
    votes: list[VoteRecord] = []
    for row, (emo, attrs) in zip(rows, labels):
        if emo is None:
            consensus.append(None)
            continue
        codes = []
        for k in range(int(vrng.integers(3, 8))):
            u = vrng.random()
            if emo in CLASSES and u < spec.vote_accuracy:
                code = emo
            elif u < 0.9:
                code = CLASSES[int(vrng.integers(len(CLASSES)))]
            else:
                code = OTHER
            rating = np.clip(np.round(attrs + vrng.normal(0, 0.8, 3)), 1, 7)
            votes.append(VoteRecord(row[0], f"W{k:03d}", code, "Frustrated" if vrng.random() < 0.3 else None,
                                    *map(float, rating)))
            codes.append(code)
        consensus.append(plurality(codes))
    return consensus, votes


def write_frame_store(root: str | Path, spec: FrameSpec = FrameSpec(), catalog: str | Path | None = None) -> StoreLayout:
    """Create a store at `root` (its catalog at `catalog`, for arrays on a remote filesystem) with clips,
    consensus labels and frames as `spec` says."""
    from ..store.embeddings import EmbeddingStore

    layout = StoreLayout.at(root, catalog)
    rng = np.random.default_rng(spec.seed)
    n_cls = len(CLASSES)
    # Class -> typical (arousal, valence, dominance): spread so the attributes carry class information too.
    cls_attr = rng.uniform(2.0, 6.0, size=(n_cls, 3))
    rows, labels, lengths = [], [], []
    for split, n in spec.splits.items():
        for i in range(n):
            cid = f"{split}_{i:05d}"
            u = rng.random()
            emo = "X" if u < spec.p_no_agreement else "O" if u < spec.p_no_agreement + spec.p_other else CLASSES[rng.integers(n_cls)]
            base = cls_attr[CLASSES.index(emo)] if emo in CLASSES else rng.uniform(2.0, 6.0, size=3)
            attrs = np.clip(base + rng.normal(0, 0.6, size=3), 1.0, 7.0)
            if spec.speech_lengths:
                n_frames = int(round(float(np.clip(rng.lognormal(np.log(5.0), 0.45), 1.0, 30.0)) * 50))
            else:
                n_frames = int(rng.integers(spec.frames[0], spec.frames[1] + 1))
            rows.append((cid, CORPUS, f"Audios/{cid}.wav", split, n_frames / 50.0, 16000, 1, f"spk{i % 7}", "Female"))
            labels.append((emo if split != "Test3" else None, attrs))
            lengths.append(n_frames)
    consensus = [e for e, _ in labels]
    votes: list[VoteRecord] = []
    if spec.votes:  # its own generator: the frames stay those of the same spec without votes
        consensus, votes = _votes(rows, labels, spec)
        rows = [(*r[:8], ("Female", "Male")[int(r[7][3:]) % 2]) for r in rows]
    records = CorpusRecords(
        CORPUS, str(layout.root), CORPUS,
        clips=[ClipRecord(r[0], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows],
        votes=votes,
        labels=[LabelRecord(r[0], e, *a.round(4).tolist(), 5, 0.6, "corpus")
                for r, e, (_, a) in zip(rows, consensus, labels) if e is not None],
    )
    with Catalog(layout.catalog) as cat:
        write_corpus(cat, records)
    store = EmbeddingStore(layout)
    with Catalog(layout.catalog) as cat:
        for name, dim in spec.encoders.items():
            record = _record(name, dim)
            erng = np.random.default_rng([spec.seed, dim, len(name)])
            protos = erng.normal(size=(n_cls, dim))
            attr_dirs = erng.normal(size=(3, dim))
            text = record.frame_rate is None
            variants = ["clean"] + ([] if text else list(spec.variants))
            for variant in variants:
                noise = 1.0 if variant == "clean" else 1.5
                with store.open_writer(cat, record, variant) as writer:
                    items: list[tuple[str, np.ndarray]] = []
                    for row, (emo, attrs), n_audio in zip(rows, labels, lengths):
                        cid, split = row[0], row[3]
                        if variant != "clean" and split != "Train":
                            continue
                        if not text:
                            n = n_audio
                        elif spec.speech_lengths:
                            n = max(1, round(n_audio / 50 * 3 + 2))
                        else:
                            n = 6 + int(erng.integers(6))
                        center = protos[CLASSES.index(emo)] if emo in CLASSES else 0.0
                        center = (spec.signal * (center + ((attrs - 4.0) / 1.5) @ attr_dirs)).astype(np.float32)
                        frames = erng.standard_normal(size=(n, dim), dtype=np.float32)
                        frames *= noise
                        frames += center
                        items.append((cid, frames))
                        if len(items) == 64:  # bounded memory at realistic sizes
                            writer.write(items)
                            items = []
                    if items:
                        writer.write(items)
    return layout
