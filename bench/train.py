"""Training throughput benchmark: samples/s and the share of step time spent waiting for data.

Writes a store of realistic sizes through the store's writer: paper encoder widths (whisper 1280,
wavlm 1024, roberta 1024), speech-like lengths (lognormal, median 5 s, at 50 frames/s; ~3 tokens/s of
text), a `noise` variant of every training clip (so batches mix variants, as augmented training
does), frames correlated with synthetic labels. Then trains on it with `sertool.train.train` (the
real loop: DataLoader workers reading batches of 128 from the store, AdamW, schedule, per-epoch dev
evaluation) at tiny model dims on CPU, paper dims (1028 / 2048) on CUDA. The baseline, measured in
the same run, reads batches in the training process itself (`--num-workers 0`).

The wait share is (time blocked on the loader) / (training-loop time), epochs after the first (the
first includes starting the workers). Target: <= 10 %. A third run groups the same samples into batches
of similar length (`--batching bucketed`) and reports the share of padded frames of both (target: >= 40%
fewer padded frames).

usage: python bench/train.py [--clips 384] [--epochs 2] [--num-workers 2] [--device cpu|cuda] [--dir DIR]
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from sertool.train.config import TrainConfig  # noqa: E402
from sertool.train.synthetic import FrameSpec, write_frame_store  # noqa: E402

PAPER_DIMS = {"whisper": 1280, "wavlm": 1024, "roberta": 1024}


def steady(result) -> tuple[float, float]:
    """(samples/s, wait share) over the epochs after the first."""
    hist = result.history[1:] or result.history
    seconds = sum(e.seconds for e in hist)
    return sum(e.samples for e in hist) / seconds, sum(e.data_wait_s for e in hist) / seconds


def paper_scale_padding(batch_size: int = 128, n_clips: int = 68_000, samples: int = 32_000) -> dict[str, float]:
    """Padded-frame share of one epoch's batches at MSP-Podcast scale, random vs bucketed, from the same
    length distribution the bench store uses (audio: lognormal, median 5 s, 1-30 s, 50 frames/s, for
    each of the two audio encoders; text: ~3 tokens/s): what `plan_epoch` would feed the model."""
    import numpy as np

    from sertool.labels import Targets
    from sertool.train.batches import plan_epoch
    from sertool.train.data import SplitData

    rng = np.random.default_rng(0)
    seconds = np.clip(rng.lognormal(np.log(5.0), 0.45, n_clips), 1.0, 30.0)
    audio, text = np.round(seconds * 50).astype(int), np.round(seconds * 3 + 2).astype(int)
    split = SplitData("Train", [str(i) for i in range(n_clips)], Targets.from_consensus([None] * n_clips, [(None,) * 3] * n_clips))
    out = {}
    for batching in ("random", "bucketed"):
        batches = plan_epoch(split, samples_per_epoch=samples, batch_size=batch_size, seed=0, epoch=1, augment=False,
                             batching=batching, lengths=audio)
        pad = total = 0
        for lens in (audio, audio, text):  # whisper, wavlm, roberta: each padded to its own longest clip
            for b in batches:
                x = lens[[it.index for it in b]]
                pad, total = pad + len(x) * x.max() - x.sum(), total + len(x) * x.max()
        out[batching] = pad / total
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=384, help="training clips in the store (one epoch = all of them)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    args = ap.parse_args()

    import torch

    from sertool.tracking.tracker import Tracker
    from sertool.train.runs import train

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dims = dict(proj_dim=1028, lstm_hidden=2048) if device == "cuda" else dict(proj_dim=32, lstm_hidden=32)
    work = args.dir or Path(tempfile.mkdtemp(prefix="sertool-bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        spec = FrameSpec(splits={"Train": args.clips, "Development": 64}, encoders=PAPER_DIMS,
                         speech_lengths=True, variants=("noise",), seed=0)
        store = work / f"store-{args.clips}"
        if not (store / "catalog.duckdb").exists():
            shutil.rmtree(store, ignore_errors=True)
            write_frame_store(store, spec)
        from sertool.store.layout import StoreLayout

        layout = StoreLayout.at(store)
        size = sum(f.stat().st_size for f in layout.embeddings.rglob("*") if f.is_file())
        print(f"store: {args.clips} training clips (+ noise variant) and 64 dev clips at paper widths, "
              f"{size / 1e9:.2f} GB, written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        tracker = Tracker(f"sqlite:///{work / 'mlflow.db'}", experiment="bench-train")
        base = dict(epochs=args.epochs, warmup_epochs=1, batch_size=args.batch_size, samples_per_epoch=args.clips,
                    device=device, lr=1e-3, min_lr=1e-5, **dims)
        figures = {}
        for name, workers, batching in (("loader", args.num_workers, "random"), ("baseline", 0, "random"),
                                        ("bucketed", args.num_workers, "bucketed")):
            res = train(TrainConfig(**base, num_workers=workers, batching=batching, run_name=f"bench-{name}"),
                        layout, tracker=tracker)
            sps, wait = steady(res)
            padded = sum(e.padded_share for e in res.history) / len(res.history)
            figures[name] = (sps, wait, res, padded)
            print(f"{name:9} num_workers={workers} batching={batching:8}: {sps:7.1f} samples/s, waiting for data "
                  f"{100 * wait:5.1f}% of step time, padding {100 * padded:4.1f}% of frames "
                  f"({res.n_parameters:,} parameters, {device})", file=sys.stderr)
        scale = paper_scale_padding(args.batch_size)
        print(f"at MSP-Podcast scale (32,000 of 68,000 clips per epoch, batch {args.batch_size}): padding "
              f"{100 * scale['random']:.1f}% of frames random, {100 * scale['bucketed']:.1f}% bucketed", file=sys.stderr)
        sps, wait, res, padded = figures["loader"]
        bsps, bwait, _, _ = figures["baseline"]
        ksps, kwait, _, kpadded = figures["bucketed"]
        out = {
            "bench": "train",
            "device": device if device == "cpu" else torch.cuda.get_device_name(),
            "batch_size": args.batch_size,
            "clips": args.clips,
            "epochs_timed": max(1, args.epochs - 1),
            "proj_dim": dims["proj_dim"],
            "lstm_hidden": dims["lstm_hidden"],
            "parameters": res.n_parameters,
            "num_workers": args.num_workers,
            "samples_per_s": round(sps, 1),
            "data_wait_share": round(wait, 4),
            "baseline_samples_per_s": round(bsps, 1),
            "baseline_data_wait_share": round(bwait, 4),
            "speedup_vs_baseline": round(sps / bsps, 2),
            "target_wait_share": 0.10,
            "meets_target": wait <= 0.10,
            "store_gb": round(size / 1e9, 2),
            "padded_share_random": round(padded, 4),
            "padded_share_bucketed": round(kpadded, 4),
            "padded_reduction": round(1 - kpadded / padded, 3) if padded else None,
            "padded_share_random_paper_scale": round(scale["random"], 4),
            "padded_share_bucketed_paper_scale": round(scale["bucketed"], 4),
            "samples_per_s_random": round(sps, 1),
            "samples_per_s_bucketed": round(ksps, 1),
            "data_wait_share_bucketed": round(kwait, 4),
            "load_average": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(out))
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
