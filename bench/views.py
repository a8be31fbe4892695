"""Packed views: what they cost in bytes, how fast a batch is built from one, and what quantizing or
pooling does to the dev figures.

1. A store of realistic sizes (paper widths: whisper 1280, wavlm 1024, roberta 1024; lognormal speech
   lengths, median 5 s, 50 frames/s; ~3 tokens/s of text) packed as fp16, int8, fp8 and fp16 at 25/s:
   bytes per sample of each.
2. Batch assembly (batches of 128, the same clips): from the resident fp16 view vs the store loader's
   read (`StoreBatches`, in the same process, page cache warm): samples/s and the ratio.
3. On the synthetic corpus with the tiny preset: the same training run from each view, 3 seeds: dev
   macro-F1 and mean CCC, mean +- sd, and each view's difference to fp16.
Ends with one JSON line: bytes_per_sample, assembly_speedup_resident, dev_delta_int8, dev_delta_fp8,
dev_delta_rate25 (and more).

usage: python bench/views.py [--clips 384] [--batches 8] [--corpus-clips 600] [--epochs 20] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

ENCODERS = ("whisper", "wavlm", "roberta")
VIEWS = {"fp16": ("fp16", 50), "int8": ("int8", 50), "fp8": ("fp8", 50), "rate25": ("fp16", 25)}
TINY = {"proj_dim": 32, "lstm_hidden": 32, "batch_size": 16, "lr": 3e-3, "min_lr": 1e-5, "warmup_epochs": 1.0,
        "samples_per_epoch": 2000, "pooled_norm": True, "augment": False, "num_workers": 0, "device": "cpu"}


def pack_all(layout, splits: tuple[str, ...]) -> dict:
    from sertool.store.catalog import Catalog
    from sertool.store.views import ViewSpec, pack_view

    out = {}
    with Catalog(layout.catalog) as cat:
        for name, (dtype, rate) in VIEWS.items():
            out[name] = pack_view(cat, layout, ViewSpec(name, ENCODERS, splits=splits, dtype=dtype, frame_rate=rate))
    return out


def assembly(layout, info, n_batches: int, batch: int) -> dict[str, float]:
    """Samples/s building batches of the same clips: store loader (warm) vs the resident fp16 view."""
    import torch

    from sertool.store.catalog import Catalog
    from sertool.train.batches import Item, StoreBatches, open_reader
    from sertool.train.data import load_training_data
    from sertool.train.resident import ResidentFrames, ResidentLoader, eval_plan

    with Catalog(layout.catalog, read_only=True) as cat:
        data = load_training_data(cat, ENCODERS)
        reader = open_reader(layout, data.encoders, [], catalog=cat)
    rng = np.random.default_rng(0)
    batch = min(batch, len(data.train))
    plans = [[Item(int(i), "clean") for i in rng.choice(len(data.train), batch, replace=False)] for _ in range(n_batches)]
    store = StoreBatches(reader, data.encoders, data.train, torch.float16)
    resident = ResidentLoader(ResidentFrames(info, list(ENCODERS), "cpu"), data.train, eval_plan(data.train, batch),
                              {n: e.text for n, e in data.encoders.items()})
    for p in plans:  # warm: the page cache for the store, nothing for the view
        store.__getitems__(p)
    rates = {}
    for name, build in (("store", store.__getitems__), ("resident", resident.batch)):
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            for p in plans:
                build(p)
            best = min(best, time.perf_counter() - t)
        rates[name] = n_batches * batch / best
    # What a paper-scale run reads: MSP-Podcast's store does not fit in the page cache, so the store
    # loader's reads go to the disk (bench/cold.py): the same batches with the shard files evicted first.
    from cold import evict

    files = sorted(p for p in layout.embeddings.rglob("*") if p.is_file() and p.stat().st_size > 0)
    best = float("inf")
    for _ in range(2):
        evict(files)
        t = time.perf_counter()
        for p in plans:
            store.__getitems__(p)
        best = min(best, time.perf_counter() - t)
    rates["store_cold"] = n_batches * batch / best
    a, b = store.__getitems__(plans[0]), resident.batch(plans[0])
    assert all(torch.equal(a.inputs[e][0], b.inputs[e][0]) for e in ENCODERS)  # the same batch, both ways
    return rates


def dev_figures(work: Path, corpus_clips: int, epochs: int, seeds: list[int]) -> dict[str, dict[str, list[float]]]:
    from sertool.corpus.ingest import ingest_msp_podcast
    from sertool.corpus.synthetic import write_synthetic_corpus
    from sertool.jobs.embed import EmbedConfig, embed_store
    from sertool.metrics import CCC, F1
    from sertool.store.layout import StoreLayout
    from sertool.tracking.tracker import Tracker
    from sertool.train.config import TrainConfig
    from sertool.train.runs import train

    layout = StoreLayout.at(work / "corpus-store")
    ingest_msp_podcast(layout.catalog, write_synthetic_corpus(work / "corpus", n_clips=corpus_clips, seed=0),
                       progress=False)
    embed_store(layout, EmbedConfig(preset="tiny"))
    pack_all(layout, ("Train", "Development", "Test3"))
    tracker = Tracker(f"sqlite:///{work / 'mlflow.db'}", experiment="views", store_root=layout.root)
    out: dict[str, dict[str, list[float]]] = {}
    for name in VIEWS:
        for seed in seeds:
            r = train(TrainConfig(**TINY, epochs=epochs, seed=seed, view=name, run_name=f"{name}-s{seed}"), layout,
                      tracker=tracker)
            f = out.setdefault(name, {"f1": [], "ccc": []})
            f["f1"].append(r.best[F1])
            f["ccc"].append(r.best[CCC["mean"]])
    return out


MSP = {"train": 84_260, "dev": 31_961, "mean_s": 9.8, "tokens": 30, "run_samples": 50 * 32_000, "table1_runs": 24}
"""MSP-Podcast's challenge release (DESIGN.md section 1; 9.8 s mean clip, ~30 RoBERTa tokens) and the paper's schedule."""


def projection(disk_gb_s: float = 3.0, blocked_fraction: float = 0.57, hbm_tb_s: float = 3.35,
               model_s_per_batch: float = 0.005) -> dict:
    """View sizes for MSP-Podcast and one paper run's input time, from the store vs resident (assumptions in
    the arguments: an NVMe disk's bandwidth, the blocked order's measured fraction of it, an H100's HBM
    bandwidth, and the paper model's step on a GPU: ~0.2 TFLOP per batch of 128 at ~40 TFLOP/s effective)."""
    audio_rows, text_rows, audio_dim = MSP["mean_s"] * 50, MSP["tokens"], 1280 + 1024
    sizes = {}
    for dtype, b in (("fp16", 2), ("int8", 1), ("fp8", 1)):
        for rate in (50, 25):
            per_clip = (audio_rows * (rate / 50) * audio_dim + text_rows * 1024) * b
            sizes[f"{dtype}@{rate}"] = {"train_gb": round(MSP["train"] * per_clip / 1e9, 1),
                                        "train_dev_gb": round((MSP["train"] + MSP["dev"]) * per_clip / 1e9, 1)}
    per_sample = (audio_rows * audio_dim + text_rows * 1024) * 2
    read_tb = MSP["run_samples"] * per_sample / 1e12
    store_h = read_tb * 1e12 / (disk_gb_s * blocked_fraction * 1e9) / 3600
    steps = MSP["run_samples"] / 128
    resident_h = (read_tb / hbm_tb_s + steps * model_s_per_batch) / 3600
    return {"sizes": sizes, "run_reads_tb": round(read_tb, 2),
            "run_hours_from_store": round(store_h, 2), "table1_hours_from_store": round(store_h * MSP["table1_runs"], 1),
            "run_hours_resident": round(resident_h, 3), "table1_hours_resident": round(resident_h * MSP["table1_runs"], 2),
            "assumptions": {"disk_gb_s": disk_gb_s, "blocked_fraction": blocked_fraction, "hbm_tb_s": hbm_tb_s,
                            "model_s_per_batch": model_s_per_batch}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=384, help="training clips of the paper-width store")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--corpus-clips", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2", help="'' skips the training runs (bytes and assembly only)")
    ap.add_argument("--project", action="store_true", help="print only the MSP-Podcast projection (no measurement)")
    args = ap.parse_args()
    if args.project:
        print(json.dumps(projection()))
        return

    import torch

    from sertool.train.synthetic import FrameSpec, write_frame_store

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="sertool-bench-views-"))
    try:
        spec = FrameSpec(splits={"Train": args.clips, "Development": 64}, encoders=dict(zip(ENCODERS, (1280, 1024, 1024))),
                         speech_lengths=True, variants=(), seed=0)
        layout = write_frame_store(work / "store", spec)
        infos = pack_all(layout, ("Train", "Development"))
        per_sample = {k: round(v.bytes / len(v.clips)) for k, v in infos.items()}
        rates = assembly(layout, infos["fp16"], args.batches, 128)
        seeds = [int(s) for s in args.seeds.split(",") if s]
        dev = dev_figures(work, args.corpus_clips, args.epochs, seeds) if seeds else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stat = lambda xs: (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)  # noqa: E731
    print(f"bytes per sample (paper widths, {args.clips} + 64 clips): "
          + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in per_sample.items()), file=sys.stderr)
    print(f"batch assembly, 128 clips: store loader {rates['store']:.0f} samples/s, resident view "
          f"{rates['resident']:.0f} samples/s ({rates['resident'] / rates['store']:.1f}x); store loader from the "
          f"disk (page cache evicted) {rates['store_cold']:.0f} samples/s "
          f"({rates['resident'] / rates['store_cold']:.1f}x)", file=sys.stderr)
    out = {"bench": "views", "bytes_per_sample": per_sample,
           "int8_fraction_of_fp16": round(per_sample["int8"] / per_sample["fp16"], 3),
           "assembly_samples_per_s": {k: round(v, 1) for k, v in rates.items()},
           "assembly_speedup_resident": round(rates["resident"] / rates["store"], 2),
           "assembly_speedup_resident_vs_cold": round(rates["resident"] / rates["store_cold"], 2)}
    f16, c16 = (stat(dev["fp16"]["f1"]), stat(dev["fp16"]["ccc"])) if dev else (None, None)
    for name, figs in dev.items():
        f, c = stat(figs["f1"]), stat(figs["ccc"])
        print(f"{name:7} dev macro-F1 {f[0]:.4f} ± {f[1]:.4f} ({f[0] - f16[0]:+.4f})  mean CCC {c[0]:.4f} ± {c[1]:.4f} "
              f"({c[0] - c16[0]:+.4f})", file=sys.stderr)
        out[f"dev_{name}"] = {"f1_mean": round(f[0], 4), "f1_sd": round(f[1], 4), "ccc_mean": round(c[0], 4),
                              "ccc_sd": round(c[1], 4)}
        if name != "fp16":
            out[f"dev_delta_{name}"] = {"f1": round(f[0] - f16[0], 4), "ccc": round(c[0] - c16[0], 4)}
    out["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
