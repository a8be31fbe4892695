"""How far `--whisper-window trimmed` frames are from the paper's `padded` ones, frame by frame.

Writes the synthetic corpus (`sertool ingest synthetic`'s generator, default 120 clips of 1.5-11 s),
embeds every clip with the tiny preset's Whisper twice (padded to 30 s as the paper does; trimmed to
its own length) and reports the per-frame cosine of the two: overall, by where the frame sits (the first
and last 10 frames of a clip vs the rest) and by clip length. `--paper-layers N` adds the paper-random
Whisper (large-v3's widths, N layers, random weights) on the first `--paper-clips` clips.

Both models have random weights: how much a frame moves when the silence after the clip is gone depends
on what attention has learned to do with that silence, which only the real large-v3 can say. These
figures show the mechanism works as designed (same frame count, same frames where nothing changed); they
do not predict the distance for the real checkpoint.

usage: python bench/whisper_window.py [--clips 120] [--paper-layers 0] [--paper-clips 8] [--threads 1]
Ends with one JSON line: per model, cosine mean / p5 / min, edge vs interior means, by length.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EDGE = 10
"""Frames counted as a clip's edge (its first and last 0.2 s)."""


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def compare(padded, trimmed, waves: list[np.ndarray]) -> dict:
    """Per-frame cosine statistics of trimmed vs padded frames over `waves` (embedded one clip a call)."""
    allc, edge, inner, by_len = [], [], [], {"<3s": [], "3-6s": [], ">6s": []}
    for w in waves:
        (p,) = padded.embed([w])
        (t,) = trimmed.embed([w])
        assert p.shape == t.shape
        c = cosines(p, t)
        allc.append(c)
        edge.append(np.r_[c[:EDGE], c[-EDGE:]])
        inner.append(c[EDGE:-EDGE])
        s = len(w) / 16_000
        by_len["<3s" if s < 3 else "3-6s" if s <= 6 else ">6s"].append(c.mean())
    c = np.concatenate(allc)
    return {
        "frames": int(c.size), "mean": round(float(c.mean()), 4), "median": round(float(np.median(c)), 4),
        "p5": round(float(np.percentile(c, 5)), 4), "min": round(float(c.min()), 4),
        "edge_mean": round(float(np.concatenate(edge).mean()), 4),
        "interior_mean": round(float(np.concatenate(inner).mean()), 4),
        "clip_mean_by_length": {k: round(float(np.mean(v)), 4) for k, v in by_len.items() if v},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=120)
    ap.add_argument("--paper-layers", type=int, default=0, help="also paper-random Whisper at this depth (0: no)")
    ap.add_argument("--paper-clips", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from sertool.audio import load_audio
    from sertool.corpus.synthetic import write_synthetic_corpus
    from sertool.encoders.paper import paper_random_encoders
    from sertool.encoders.presets import build_tiny
    from sertool.encoders.registry import load_encoder

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="sertool-bench-window-"))
    try:
        corpus = write_synthetic_corpus(work / "corpus", args.clips, seed=args.seed)
        wavs = sorted((corpus / "Audios").glob("*.wav"))
        waves = [load_audio(p) for p in wavs]
        texts = [p.read_text() for p in sorted((corpus / "Transcripts").glob("*.txt"))]
        build_tiny(work / "models" / "tiny", texts)
        tiny = load_encoder("whisper", "tiny", models_dir=work / "models")
        seconds = [len(w) / 16_000 for w in waves]
        result = {"clips": len(waves), "seconds": [round(min(seconds), 2), round(max(seconds), 2)],
                  "tiny": compare(tiny, tiny.configured(window="trimmed"), waves)}
        if args.paper_layers:
            enc = paper_random_encoders(work / "paper-random", ("whisper",), texts=texts,
                                        layers=args.paper_layers)["whisper"]
            result[f"paper_random_{args.paper_layers}_layers"] = compare(
                enc, enc.configured(window="trimmed"), waves[: args.paper_clips])
        result["load_avg"] = round(os.getloadavg()[0], 2)
        for name, r in result.items():
            if isinstance(r, dict) and "mean" in r:
                print(f"{name:26} {r['frames']:7d} frames  cosine mean {r['mean']:.4f}  median {r['median']:.4f}  "
                      f"p5 {r['p5']:.4f}  min {r['min']:.4f}  edge {r['edge_mean']:.4f}  "
                      f"interior {r['interior_mean']:.4f}  by length {r['clip_mean_by_length']}")
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
