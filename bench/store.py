"""Embedding store read benchmark: the store vs per-clip .npy files vs a flat np.memmap per encoder.

Writes N clips of ragged fp16 embeddings for three encoders at paper dims (whisper 1280, wavlm
1024 at 50 frames/s, lognormal lengths with a 5 s median; roberta 1024 at ~3 tokens/s) into
  * the feature store (EmbeddingStore: Zarr v3 shards + DuckDB catalog),
  * per-clip fp32 .npy files (what "saving embeddings to disk" usually means),
  * one flat fp16 np.memmap per encoder plus an offsets array (the warm-read limit),
then reads the training access pattern from each: random batches of 128 clips, all three encoders,
as the padded float16 batch + lengths training reads (the headline figures; the model upcasts
exactly), and as a padded float32 batch (the same padding code on all three sides).
One process, one thread each; warm page cache (every batch is read once untimed first); best of
--repeats timings per batch, interleaved batch by batch so machine noise hits all three alike. Also
timed: "frames only", each clip's frames as an array of its own without padding (where the
formats differ most: building the padded float32 batch costs the same on all three sides).

usage: python bench/store.py [--clips 3000] [--batches 4] [--repeats 2] [--dir DIR] [--cold]
(--cold: cold reads, random vs blocked order against the disk's sequential bandwidth: bench/cold.py)
The fp16 batch is the same output from all three sides (the .npy files' fp32 converted on the copy).
Ends with one JSON line: read_speedup (store's fp16 batch / the .npy files' faster padded batch,
fp32 or fp16), limit_fraction (store / memmap,
fp16 batch), disk_ratio (store / npy bytes), files_per_100_clips (store), the fp32_* and frames_*
ratios, clips.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sertool.store.catalog import Catalog  # noqa: E402
from sertool.store.embeddings import EmbeddingStore  # noqa: E402
from sertool.store.reader import pad_batch  # noqa: E402
from sertool.store.layout import StoreLayout  # noqa: E402
from sertool.store.records import EncoderRecord  # noqa: E402

ENCODERS = {"whisper": 1280, "wavlm": 1024, "roberta": 1024}
FPS = 50


def make_lengths(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Speech-like clip lengths: lognormal seconds (median 5 s), 50 frames/s audio, ~3 tokens/s text."""
    seconds = np.clip(rng.lognormal(np.log(5.0), 0.45, n), 1.0, 30.0)
    audio = np.round(seconds * FPS).astype(np.int64)
    tokens = np.maximum(1, np.round(seconds * 3 + 2 + rng.normal(0, 2, n))).astype(np.int64)
    return {"whisper": audio, "wavlm": audio, "roberta": tokens}


def clip_frames(pool: np.ndarray, i: int, n: int) -> np.ndarray:
    """A clip's fp16 frames: a slice of a random pool (content does not change uncompressed speed)."""
    start = (i * 7919) % (len(pool) - n)
    return pool[start : start + n]


def disk_usage(paths: list[Path]) -> tuple[int, int]:
    """(allocated bytes, file count) under the paths."""
    size = files = 0
    for root in paths:
        for p in [root] if root.is_file() else root.rglob("*"):
            if p.is_file():
                size += p.stat().st_blocks * 512
                files += 1
    return size, files


def write_all(work: Path, ids: list[str], lengths: dict[str, np.ndarray], write_batch: int,
              baseline_ids: list[int]) -> dict:
    """All clips into the store; the clips the timed batches read (`baseline_ids`) into .npy and memmap.

    The baselines hold only what is read: their read speed per clip does not depend on the clips
    never touched, and writing 7 GB of fp32 files this machine would take minutes.
    """
    from rich.progress import Progress

    rng = np.random.default_rng(1)
    pools = {e: rng.standard_normal((int(lengths[e].max()) * 64, d), dtype=np.float32).astype(np.float16)
             for e, d in ENCODERS.items()}
    layout = StoreLayout.at(work / "store")
    store = EmbeddingStore(layout)
    npy_dir = work / "npy"
    mm_dir = work / "memmap"
    npy_dir.mkdir()
    mm_dir.mkdir()
    times = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("writing", total=len(ENCODERS) * (len(ids) + 2 * len(baseline_ids)))
        t = time.perf_counter()
        with Catalog(layout.catalog) as cat:
            for enc, dim in ENCODERS.items():
                rec = EncoderRecord(enc, enc, f"bench/{enc}", None, None, dim,
                                    None if enc == "roberta" else float(FPS), "float16", "bench")
                with store.open_writer(cat, rec, "clean") as w:
                    for s in range(0, len(ids), write_batch):
                        w.write([(ids[i], clip_frames(pools[enc], i, int(lengths[enc][i])))
                                 for i in range(s, min(s + write_batch, len(ids)))])
                        progress.advance(task, min(write_batch, len(ids) - s))
        times["store"] = time.perf_counter() - t
        t = time.perf_counter()
        for enc in ENCODERS:
            (npy_dir / enc).mkdir()
            for i in baseline_ids:
                cid = ids[i]
                np.save(npy_dir / enc / f"{cid}.npy", clip_frames(pools[enc], i, int(lengths[enc][i])).astype(np.float32))
                progress.advance(task)
        times["npy"] = time.perf_counter() - t
        t = time.perf_counter()
        for enc, dim in ENCODERS.items():
            n = lengths[enc][baseline_ids]
            offsets = np.concatenate([[0], np.cumsum(n)])
            mm = np.lib.format.open_memmap(mm_dir / f"{enc}.npy", mode="w+", dtype=np.float16,
                                           shape=(int(offsets[-1]), dim))
            for k, i in enumerate(baseline_ids):
                mm[offsets[k] : offsets[k + 1]] = clip_frames(pools[enc], i, int(n[k]))
                progress.advance(task)
            mm.flush()
            del mm
            np.save(mm_dir / f"{enc}.offsets.npy", offsets)
        times["memmap"] = time.perf_counter() - t
    return {"layout": layout, "npy": npy_dir, "memmap": mm_dir, "write_s": times}


class NpyReader:
    """Per-clip fp32 .npy files: one np.load per clip and encoder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def frames(self, ids: list[str]) -> dict[str, list[np.ndarray]]:
        return {e: [np.load(self.root / e / f"{c}.npy") for c in ids] for e in ENCODERS}


class MemmapReader:
    """One flat fp16 memmap per encoder plus an offsets array: slicing is all there is."""

    def __init__(self, root: Path, ids: list[str]) -> None:
        self.pos = {c: i for i, c in enumerate(ids)}
        self.mm = {e: np.load(root / f"{e}.npy", mmap_mode="r") for e in ENCODERS}
        self.off = {e: np.load(root / f"{e}.offsets.npy") for e in ENCODERS}

    def frames(self, ids: list[str]) -> dict[str, list[np.ndarray]]:
        rows = [self.pos[c] for c in ids]
        return {e: [self.mm[e][self.off[e][r] : self.off[e][r + 1]] for r in rows] for e in ENCODERS}


class StoreReader:
    """The feature store's reader (what the training loader uses)."""

    def __init__(self, layout: StoreLayout) -> None:
        self.specs = [(e, "clean") for e in ENCODERS]
        self.reader = EmbeddingStore(layout).reader(self.specs)

    def frames(self, ids: list[str]) -> dict[str, list[np.ndarray]]:
        return {e: self.reader.read(e, v, ids) for e, v in self.specs}

    def batch(self, ids: list[str]) -> dict:
        return self.reader.batch(ids, self.specs)


def padded(reader, ids: list[str]) -> dict:
    """The trainer's batch: float32 (B, T_max, D) + lengths per encoder; the same padding code for all."""
    if isinstance(reader, StoreReader):
        return reader.batch(ids)
    return {e: pad_batch(fs, ENCODERS[e]) for e, fs in reader.frames(ids).items()}


def padded_fp16(reader, ids: list[str]) -> dict:
    """The float16 padded batch training reads (the model upcasts exactly), the same output from all
    three: the store and memmap copy their fp16 frames, the fp32 .npy files are converted on the copy."""
    import torch

    if isinstance(reader, StoreReader):
        return reader.reader.batch(ids, reader.specs, dtype=torch.float16)
    return {e: pad_batch(fs, ENCODERS[e], torch.float16) for e, fs in reader.frames(ids).items()}


def owned_frames(reader, ids: list[str]) -> dict:
    """Each clip's frames as an array of its own (memmap views are copied, as a loader must)."""
    out = reader.frames(ids)
    if isinstance(reader, MemmapReader):
        out = {e: [np.array(f) for f in fs] for e, fs in out.items()}
    return out


def best_rates(readers: dict, batches: list[list[str]], fn, repeats: int) -> dict[str, float]:
    """Clips/s of each reader: per batch the best of `repeats` timings, readers interleaved batch by
    batch so that load from other processes hits all three alike (the caller warms the cache first)."""
    best = {name: [float("inf")] * len(batches) for name in readers}
    for _ in range(repeats):
        for j, b in enumerate(batches):
            for name, r in readers.items():
                t = time.perf_counter()
                fn(r, b)
                best[name][j] = min(best[name][j], time.perf_counter() - t)
    n = sum(len(b) for b in batches)
    return {name: n / sum(ts) for name, ts in best.items()}


def cold_main(args: argparse.Namespace) -> None:
    """`--cold`: write the store only, then bench/cold.py's passes with the page cache evicted."""
    import os

    import cold

    rng = np.random.default_rng(args.seed)
    ids = [f"clip{i:07d}" for i in range(args.clips)]
    work = Path(tempfile.mkdtemp(prefix="sertool-bench-cold-", dir=args.dir))
    try:
        w = write_all(work, ids, make_lengths(args.clips, rng), args.write_batch, [0])
        out = {"bench": "store_cold", "clips": args.clips, "batch": args.batch}
        out |= cold.run(w["layout"], ids, args.batch, args.batches, args.seed)
        out["load_average"] = round(os.getloadavg()[0], 2)
        print(f"disk sequential {out['disk_seq_mb_s']} MB/s over {out['store_gb']} GB of shard files; cold reads, "
              f"random order {out['cold_random_mb_s']} MB/s ({out['cold_random_clips_per_s']} clips/s, "
              f"{out['cold_random_fraction_of_disk']:.2f}x disk), blocked {out['cold_blocked_mb_s']} MB/s "
              f"({out['cold_blocked_clips_per_s']} clips/s, {out['cold_blocked_fraction_of_disk']:.2f}x disk)",
              file=sys.stderr)
        print(json.dumps(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=4, help="random batches per timed pass")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per method (best is kept)")
    ap.add_argument("--write-batch", type=int, default=64, help="clips per store write call")
    ap.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: system temp)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cold", action="store_true",
                    help="cold reads instead (bench/cold.py): random vs blocked order against the disk's bandwidth")
    args = ap.parse_args()
    if args.cold:
        return cold_main(args)

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    ids = [f"clip{i:07d}" for i in range(args.clips)]
    lengths = make_lengths(args.clips, rng)
    picks = [rng.choice(args.clips, size=min(args.batch, args.clips), replace=False) for _ in range(args.batches)]
    batches = [[ids[i] for i in p] for p in picks]
    baseline_ids = sorted({int(i) for p in picks for i in p})
    work = Path(tempfile.mkdtemp(prefix="sertool-bench-", dir=args.dir))
    try:
        w = write_all(work, ids, lengths, args.write_batch, baseline_ids)
        readers = {
            "store": StoreReader(w["layout"]),
            "npy_fp32": NpyReader(w["npy"]),
            "memmap": MemmapReader(w["memmap"], [ids[i] for i in baseline_ids]),
        }
        # Correctness first: all three give the same padded batch.
        ref = padded(readers["memmap"], batches[0])
        for name, r in readers.items():
            got = padded(r, batches[0])
            for e in ENCODERS:
                assert (got[e][0] == ref[e][0]).all() and (got[e][1] == ref[e][1]).all(), (name, e)
        del ref, got
        for r in readers.values():  # warm page cache: every timed batch read once, untimed
            for b in batches:
                owned_frames(r, b)
        rate = best_rates(readers, batches, padded, args.repeats)
        half = best_rates(readers, batches, padded_fp16, args.repeats)
        raw = best_rates(readers, batches, owned_frames, args.repeats)

        store_bytes, store_files = disk_usage([w["layout"].root])
        per_clip = {
            "store": store_bytes / args.clips,
            "npy_fp32": disk_usage([w["npy"]])[0] / len(baseline_ids),
            "memmap": disk_usage([w["memmap"]])[0] / len(baseline_ids),
        }
        frames = sum(int(lengths[e].sum()) for e in ENCODERS)
        print(f"{args.clips} clips ({frames:,} frames, whisper/wavlm/roberta) in the store; "
              f"{len(baseline_ids)} of them (those read) in the baselines; "
              f"{args.batches} random batches of {args.batch}, all three encoders")
        print(f"{'':10} {'padded fp32':>12} {'padded fp16':>12} {'frames only':>12} {'KB/clip':>9} {'write s':>8}")
        for name in readers:
            print(f"{name:10} {rate[name]:8.0f} c/s {half[name]:8.0f} c/s {raw[name]:8.0f} c/s "
                  f"{per_clip[name] / 1e3:9.0f} {w['write_s'][name.split('_')[0]]:8.1f}")
        result = {
            # against the .npy files' faster batch: fp32 as stored, or converted to fp16 on the copy
            "read_speedup": round(half["store"] / max(half["npy_fp32"], rate["npy_fp32"]), 2),
            "limit_fraction": round(half["store"] / half["memmap"], 2),
            "disk_ratio": round(per_clip["store"] / per_clip["npy_fp32"], 3),
            "files_per_100_clips": round(100 * store_files / args.clips, 3),
            "fp32_read_speedup": round(rate["store"] / rate["npy_fp32"], 2),
            "fp32_limit_fraction": round(rate["store"] / rate["memmap"], 2),
            "frames_read_speedup": round(raw["store"] / raw["npy_fp32"], 2),
            "frames_limit_fraction": round(raw["store"] / raw["memmap"], 2),
            "clips": args.clips,
        }
        print(f"store, padded fp16 batches (what training reads): {result['read_speedup']}x per-clip fp32 .npy's faster batch, "
              f"{result['limit_fraction']}x the memmap limit; padded fp32: {result['fp32_read_speedup']}x, "
              f"{result['fp32_limit_fraction']}x; frames only: {result['frames_read_speedup']}x, "
              f"{result['frames_limit_fraction']}x; disk {result['disk_ratio']}x the .npy files; "
              f"{store_files} files = {result['files_per_100_clips']} per 100 clips; "
              f"{time.perf_counter() - t0:.0f} s in all")
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
