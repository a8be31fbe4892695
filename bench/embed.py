"""Embedding throughput: the bucketed, batched `sertool embed` path (Whisper padded and trimmed) vs a
per-clip loop, same clips, one run.

Writes N speech-like clips (default 200, 1.5-8 s, 16 kHz wavs + transcripts) into a fresh store, builds
the tiny preset once and loads its three encoders once, then embeds every clip with all three
  * per clip: `embed_store` with one clip per batch - every clip its own forward call (Whisper padding
    it to 30 s each time, the paper's window) and its own store commit;
  * padded: `embed_store` as `sertool embed` runs it (length bucketing up to --batch-seconds of padded
    audio per forward call, audio decoding prefetched on a thread, one store commit per batch);
  * trimmed: the same with `--whisper-window trimmed` (Whisper on each clip's own length).
Each writes its own store, in that order, `--repeat` times (fresh stores each time), and the speed-ups
are ratios within one repetition: a noisy machine slows all three alike. Batched padded frames are checked
to agree with the per-clip ones; trimmed Whisper frames are compared with padded ones (per-frame cosine:
they are different frames). A compute-only table times `encoder.embed` per clip vs per bucket on audio
already in memory, per encoder, to show where the gain comes from.

usage: python bench/embed.py [--clips 200] [--batch-seconds S] [--threads T] [--repeat R] [--dir DIR]
Ends with one JSON line: speedup_padded, speedup_trimmed (each vs the per-clip loop; medians over the
repetitions, every repetition's in *_runs), per_clip / padded / trimmed clips/s, compute_speedup (per
encoder; whisper_trimmed too), trimmed_cosine (mean, p5, min), max_rel_diff, clips, threads, load_avg.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sertool.jobs.embed import EmbedConfig, bucket_batches, default_batch_seconds, embed_store  # noqa: E402
from sertool.store.catalog import Catalog  # noqa: E402
from sertool.store.embeddings import EmbeddingStore  # noqa: E402
from sertool.store.layout import StoreLayout  # noqa: E402
from sertool.store.records import ClipSource  # noqa: E402

ENCODERS = ("whisper", "wavlm", "roberta")
WORDS = ("i am so happy today this is terrible news what a calm quiet evening why did you do that "
         "we never thought it would rain again but the sun is out and everyone seems glad").split()


def write_corpus(root: Path, n: int, lo: float, hi: float, seed: int) -> list[dict]:
    """Speech-like clips: a pitch contour with syllable-rate amplitude modulation plus a little noise."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        dur = float(rng.uniform(lo, hi))
        t = np.arange(int(dur * 16_000)) / 16_000
        f0 = rng.uniform(90, 260) * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t))
        env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
        x = 0.3 * env * np.sin(2 * np.pi * np.cumsum(f0) / 16_000) + 0.01 * rng.standard_normal(t.size)
        name = f"clip_{i:04d}.wav"
        sf.write(root / name, x.astype(np.float32), 16_000)
        words = rng.choice(WORDS, size=max(2, int(dur * 2.5)))
        rows.append(dict(clip_id=f"clip_{i:04d}", path=name, duration_s=dur, transcript=" ".join(words)))
    return rows


def make_store(root: Path, corpus: Path, rows: list[dict]) -> StoreLayout:
    layout = StoreLayout.at(root)
    with Catalog(layout.catalog) as cat, cat.transaction():
        cat.execute("INSERT INTO corpora VALUES ('bench', ?, 'wav', ?)", [str(corpus), dt.datetime.now()])
        for r in rows:
            cat.execute(
                "INSERT INTO clips (clip_id, corpus, path, split, duration_s, sample_rate, n_channels, transcript, "
                "transcript_source) VALUES (?, 'bench', ?, 'Train', ?, 16000, 1, ?, 'corpus')",
                [r["clip_id"], r["path"], r["duration_s"], r["transcript"]],
            )
    return layout


def timed_embed(layout: StoreLayout, encoders: list, batch_seconds: float,
                window: str = "padded") -> tuple[float, dict[str, float]]:
    """Wall seconds of one full `embed_store`, and seconds per encoder."""
    cfg = EmbedConfig(preset="tiny", encoders=ENCODERS, batch_seconds=batch_seconds, whisper_window=window)
    t0 = time.perf_counter()
    report = embed_store(layout, cfg, encoders=encoders)
    total = time.perf_counter() - t0
    return total, {u.encoder: u.seconds for u in report.units}


def max_rel_diff(a: StoreLayout, b: StoreLayout, ids: list[str]) -> float:
    """Largest |a-b| / (max|a| + eps) over every clip and encoder: batching must not change frames."""
    worst = 0.0
    for enc in ENCODERS:
        fa = EmbeddingStore(a).reader([(enc, "clean")]).read(enc, "clean", ids)
        fb = EmbeddingStore(b).reader([(enc, "clean")]).read(enc, "clean", ids)
        for x, y in zip(fa, fb):
            x, y = x.astype(np.float32), y.astype(np.float32)
            worst = max(worst, float(np.abs(x - y).max() / (np.abs(x).max() + 1e-6)))
    return worst


def frame_cosines(a: StoreLayout, b: StoreLayout, ids: list[str], encoder: str = "whisper") -> np.ndarray:
    """Cosine of each frame of `encoder` in store `a` with the same frame in store `b`, all clips."""
    fa = EmbeddingStore(a).reader([(encoder, "clean")]).read(encoder, "clean", ids)
    fb = EmbeddingStore(b).reader([(encoder, "clean")]).read(encoder, "clean", ids)
    out = []
    for x, y in zip(fa, fb):
        x, y = x.astype(np.float32), y.astype(np.float32)
        out.append((x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12))
    return np.concatenate(out)


def compute_only(encoders: dict, jobs: list[ClipSource], waves: dict[str, np.ndarray], batch_seconds: float) -> dict:
    """clips/s of encoder.embed alone (audio in memory, no store): per clip vs bucketed, per encoder
    (`whisper_trimmed`: Whisper on each clip's own length, bucketed by it)."""
    out = {}
    for kind, enc in encoders.items():
        def inp(j: ClipSource):
            return j.transcript if enc.modality == "text" else waves[j.clip_id]

        t0 = time.perf_counter()
        for j in jobs:
            enc.embed([inp(j)])
        per_clip = time.perf_counter() - t0
        t0 = time.perf_counter()
        for batch in bucket_batches(jobs, batch_seconds, enc.padded_seconds):
            enc.embed([inp(j) for j in batch])
        batched = time.perf_counter() - t0
        out[kind] = {"per_clip": len(jobs) / per_clip, "batched": len(jobs) / batched, "speedup": per_clip / batched}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--min-s", type=float, default=1.5)
    ap.add_argument("--max-s", type=float, default=8.0)
    ap.add_argument("--batch-seconds", type=float, default=default_batch_seconds("cpu"))
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="repetitions of the three timings (fresh stores each)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--no-compute-table", action="store_true", help="skip the compute-only breakdown")
    args = ap.parse_args()

    import torch

    from sertool.audio import load_audio
    from sertool.encoders.presets import build_tiny
    from sertool.encoders.registry import load_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.dir or tempfile.mkdtemp(prefix="sertool-bench-embed-"))
    shutil.rmtree(work, ignore_errors=True)
    try:
        rows = write_corpus(work / "corpus", args.clips, args.min_s, args.max_s, args.seed)
        models = work / "models"
        build_tiny(models / "tiny", [r["transcript"] for r in rows])
        encoders = {k: load_encoder(k, "tiny", models_dir=models) for k in ENCODERS}
        enc_list = [encoders[k] for k in ENCODERS]
        trimmed = encoders["whisper"].configured(window="trimmed")
        trimmed_list = [trimmed if k == "whisper" else encoders[k] for k in ENCODERS]

        jobs = [ClipSource(r["clip_id"], work / "corpus" / r["path"], r["duration_s"], r["transcript"]) for r in rows]
        waves = {j.clip_id: load_audio(j.path) for j in jobs}
        for enc in [*enc_list, trimmed]:  # warm-up: first calls allocate and pick kernels
            sample = [j.transcript if enc.modality == "text" else waves[j.clip_id] for j in jobs[:4]]
            enc.embed(sample[:1])
            enc.embed(sample)

        ids = [r["clip_id"] for r in rows]
        load_before = os.getloadavg()[0]
        runs = []  # per repetition: {mode: (total s, {encoder: s})}
        for rep in range(max(1, args.repeat)):
            stores = {m: make_store(work / f"{m}-{rep}", work / "corpus", rows)
                      for m in ("per_clip", "padded", "trimmed")}
            runs.append({
                "per_clip": timed_embed(stores["per_clip"], enc_list, 1e-9),  # one clip per batch, padded
                "padded": timed_embed(stores["padded"], enc_list, args.batch_seconds),
                "trimmed": timed_embed(stores["trimmed"], trimmed_list, args.batch_seconds, "trimmed"),
            })
        load_after = os.getloadavg()[0]
        drift = max_rel_diff(stores["padded"], stores["per_clip"], ids)
        cos = frame_cosines(stores["trimmed"], stores["padded"], ids)
        compute = {} if args.no_compute_table else compute_only(
            {**encoders, "whisper_trimmed": trimmed}, jobs, waves, args.batch_seconds)

        n = len(rows)
        sp_padded = [r["per_clip"][0] / r["padded"][0] for r in runs]
        sp_trimmed = [r["per_clip"][0] / r["trimmed"][0] for r in runs]
        mid = runs[int(np.argsort(sp_trimmed)[len(runs) // 2])]  # the median repetition, for the tables
        result = {
            "speedup_padded": round(float(np.median(sp_padded)), 2),
            "speedup_trimmed": round(float(np.median(sp_trimmed)), 2),
            "speedup_padded_runs": [round(x, 2) for x in sp_padded],
            "speedup_trimmed_runs": [round(x, 2) for x in sp_trimmed],
            **{f"{m}_clips_per_s": round(n / mid[m][0], 2) for m in ("per_clip", "padded", "trimmed")},
            "speedup": round(float(np.median(sp_padded)), 2),  # the padded figure, as earlier lines named it
            "compute_speedup": {k: round(v["speedup"], 2) for k, v in compute.items()},
            "trimmed_cosine": {"mean": round(float(cos.mean()), 4), "p5": round(float(np.percentile(cos, 5)), 4),
                               "min": round(float(cos.min()), 4)},
            "max_rel_diff": float(f"{drift:.2e}"),
            "clips": n,
            "batch_seconds": args.batch_seconds,
            "threads": torch.get_num_threads(),
            "repeat": len(runs),
            "load_avg": [round(load_before, 2), round(load_after, 2)],
        }
        print(f"{n} clips of {args.min_s}-{args.max_s} s, tiny preset, encoders {'+'.join(ENCODERS)}, "
              f"{torch.get_num_threads()} torch thread(s), --batch-seconds {args.batch_seconds:g}, "
              f"{len(runs)} repetition(s), load average {load_before:.1f} -> {load_after:.1f}")
        print(f"{'end to end (store writes)':28} {'per clip':>10} {'padded':>10} {'trimmed':>10} "
              f"{'padded x':>9} {'trimmed x':>9}")
        for k in ENCODERS:
            c, p, t = (mid[m][1][k] for m in ("per_clip", "padded", "trimmed"))
            print(f"  {k:26} {n / c:8.1f}/s {n / p:8.1f}/s {n / t:8.1f}/s {c / p:8.2f}x {c / t:8.2f}x")
        c, p, t = (mid[m][0] for m in ("per_clip", "padded", "trimmed"))
        print(f"  {'all three':26} {n / c:8.1f}/s {n / p:8.1f}/s {n / t:8.1f}/s {c / p:8.2f}x {c / t:8.2f}x")
        if len(runs) > 1:
            print(f"  speed-ups per repetition: padded {sp_padded}, trimmed {sp_trimmed}")
        if compute:
            print(f"{'compute only (embed calls)':28} {'per clip':>10} {'batched':>10} {'speed-up':>9}")
            for k, v in compute.items():
                print(f"  {k:26} {v['per_clip']:8.1f}/s {v['batched']:8.1f}/s {v['speedup']:8.2f}x")
        print(f"batched vs per-clip frames: max relative difference {drift:.1e}")
        print(f"trimmed vs padded whisper frames: cosine mean {cos.mean():.4f}, p5 {np.percentile(cos, 5):.4f}, "
              f"min {cos.min():.4f} ({cos.size} frames)")
        print(json.dumps(result))
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
