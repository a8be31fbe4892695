"""One command that answers the GPU questions in minutes: `python bench/device_check.py` on a CUDA
machine (the `device` tool, when lent, or a user's), `--smoke` anywhere (tiny sizes on CPU, < 1 min; a
test runs it).

It measures, with random weights at the paper's sizes (the `paper-random` preset: no download needed):
  * embedding clips/s per encoder (Whisper padded and, where available, trimmed; WavLM; RoBERTa) at two
    batch budgets, with the peak GPU memory of each;
  * ASR clips/s (Whisper-large-v3 generate);
  * training samples/s at paper dims (1028 / 2048, batch 128) from a store it writes, with the
    data-wait share for 0/4/8 loader workers, random vs bucketed batching, and from a packed fp16 view
    resident on the device (`train --view`; its rate is reported, not projected: MSP-Podcast's fp16
    view of 195 GB does not fit one GPU);
and projects the hours MSP-Podcast would take from those rates (119,421 clips, a 9.8 s mean, clean +
3 augmentations of Train; 3,200 Test3 clips to transcribe; one paper run = 50 x 32,000 samples; Table
1 = 24 runs). Ends with one JSON line: device, embed_clips_per_s, train_samples_per_s,
data_wait_share, train_samples_per_s_resident, peak_memory_gb, msp_podcast_hours (and more).

usage: python bench/device_check.py [--smoke] [--device cuda] [--minutes 8]
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

MSP = {"clips": 119_421, "train": 84_260, "mean_s": 9.8, "augmentations": 3, "test3": 3_200,
       "run_samples": 50 * 32_000, "table1_runs": 24}
"""MSP-Podcast's challenge release (DESIGN.md section 1) and the paper's schedule."""
PAPER_DIMS = {"whisper": 1280, "wavlm": 1024, "roberta": 1024}
WORDS = "well i do not know what you mean by that but it sounds like a good idea to me".split()


def _clips(n: int, mean_s: float, rng: np.random.Generator) -> tuple[list[np.ndarray], list[str]]:
    """Speech-like noise clips (lognormal lengths around `mean_s`) and transcripts of ~2.5 words/s."""
    seconds = np.clip(rng.lognormal(np.log(mean_s * 0.9), 0.45, n), 1.0, 30.0)
    waves = [(rng.standard_normal(int(s * 16_000)) * 0.1).astype(np.float32) for s in seconds]
    texts = [" ".join(rng.choice(WORDS, max(2, int(s * 2.5)))) for s in seconds]
    return waves, texts


class Peak:
    """Peak GPU memory of a block (0 on CPU)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.gb = 0.0

    def __enter__(self) -> "Peak":
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.gb = torch.cuda.max_memory_allocated() / 2**30


def embed_rates(preset: str, models: Path, device: str, waves, texts, budgets: tuple[int, int]) -> dict:
    """clips/s and peak memory per encoder (and Whisper window), at two batch sizes (clips per call)."""
    from sertool.encoders.registry import load_encoder

    out: dict[str, dict] = {}
    for kind in ("whisper", "wavlm", "roberta"):
        windows = ("padded", "trimmed") if kind == "whisper" else (None,)
        for window in windows:
            options = {"window": window} if window else None
            enc = load_encoder(kind, preset, models_dir=models, device=device, texts=texts, options=options)
            data = texts if enc.modality == "text" else waves
            name = kind if window is None else f"{kind}_{window}"
            out[name] = {}
            enc.embed(data[:2])  # warm-up: kernels, allocator
            for b in budgets:
                with Peak(device) as peak:
                    t = time.perf_counter()
                    for k in range(0, len(data), b):
                        enc.embed(data[k : k + b])
                    s = time.perf_counter() - t
                out[name][f"batch{b}"] = {"clips_per_s": round(len(data) / s, 2), "peak_memory_gb": round(peak.gb, 2)}
            del enc
    return out


def asr_rate(preset: str, models: Path, device: str, waves, texts) -> float:
    from sertool.encoders.asr import load_asr

    asr = load_asr(preset, models_dir=models, device=device, texts=texts)
    asr.transcribe(waves[:1])
    t = time.perf_counter()
    asr.transcribe(waves)
    return len(waves) / (time.perf_counter() - t)


def train_rates(work: Path, device: str, smoke: bool, workers: tuple[int, ...]) -> dict:
    from sertool.tracking.tracker import Tracker
    from sertool.train.config import TrainConfig
    from sertool.train.runs import train
    from sertool.train.synthetic import FrameSpec, write_frame_store

    n = 48 if smoke else 1024
    spec = FrameSpec(splits={"Train": n, "Development": 32}, speech_lengths=True, seed=0,
                     encoders={k: 16 for k in PAPER_DIMS} if smoke else PAPER_DIMS)
    layout = write_frame_store(work / "store", spec)
    dims = dict(proj_dim=16, lstm_hidden=16) if smoke else dict(proj_dim=1028, lstm_hidden=2048)
    tracker = Tracker(f"sqlite:///{work / 'mlflow.db'}", experiment="device-check")
    out: dict[str, dict] = {}
    for batching in ("random", "bucketed"):
        for w in workers:
            config = TrainConfig(epochs=2, warmup_epochs=0, batch_size=16 if smoke else 128, samples_per_epoch=n,
                                 lr=1e-4, device=device, num_workers=w, batching=batching, **dims,
                                 run_name=f"check-{batching}-w{w}")
            with Peak(device) as peak:
                res = train(config, layout, tracker=tracker)
            out[f"{batching}_w{w}"] = _rates(res, peak)
    # The same runs from a packed fp16 view held where training runs (issue 15): batches gathered in
    # memory, no loader processes.
    from sertool.store.catalog import Catalog
    from sertool.store.views import ViewSpec, pack_view

    with Catalog(layout.catalog) as cat:
        pack_view(cat, layout, ViewSpec("device-check", tuple(PAPER_DIMS)))
    config = TrainConfig(epochs=2, warmup_epochs=0, batch_size=16 if smoke else 128, samples_per_epoch=n, lr=1e-4,
                         device=device, num_workers=0, batching="bucketed", view="device-check", **dims,
                         run_name="check-resident")
    with Peak(device) as peak:
        res = train(config, layout, tracker=tracker)
    out["bucketed_resident"] = _rates(res, peak)
    return out


def _rates(res, peak: Peak) -> dict[str, float]:
    """Samples/s, data-wait share and padding of a run's epochs after the first (warm-up), and its peak memory."""
    hist = res.history[1:] or res.history
    seconds = sum(e.seconds for e in hist)
    return {
        "samples_per_s": round(sum(e.samples for e in hist) / seconds, 1),
        "data_wait_share": round(sum(e.data_wait_s for e in hist) / seconds, 4),
        "padded_share": round(hist[-1].padded_share, 4), "peak_memory_gb": round(peak.gb, 2),
    }


def project(embed: dict, asr: float, train: dict) -> dict[str, float]:
    """Hours for MSP-Podcast at the measured rates (best batch size; Whisper padded, as the paper)."""
    def best(name: str) -> float:
        return max(v["clips_per_s"] for v in embed.get(name, {}).values() if isinstance(v, dict)) if embed.get(name) else float("nan")

    audio_clips = MSP["clips"] + MSP["augmentations"] * MSP["train"]
    embed_h = (audio_clips / best("whisper_padded") + audio_clips / best("wavlm") + MSP["clips"] / best("roberta")) / 3600
    run_h = MSP["run_samples"] / max(v["samples_per_s"] for v in train.values()) / 3600
    return {"embed": round(embed_h, 2), "asr_test3": round(MSP["test3"] / asr / 3600, 3),
            "train_one_run": round(run_h, 2), "table1_sweep": round(run_h * MSP["table1_runs"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny models and sizes on CPU (< 1 min): the same code")
    ap.add_argument("--device", default=None)
    ap.add_argument("--clips", type=int, default=None, help="clips per embedding measurement")
    args = ap.parse_args()

    import torch

    from sertool.encoders.presets import build_tiny

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not args.smoke and not device.startswith("cuda"):
        sys.exit("device_check: no CUDA device here; run with --smoke to check the script on CPU")
    torch.set_num_threads(1 if args.smoke else torch.get_num_threads())
    rng = np.random.default_rng(0)
    n = args.clips or (6 if args.smoke else 64)
    waves, texts = _clips(n, 2.0 if args.smoke else MSP["mean_s"], rng)
    work = Path(tempfile.mkdtemp(prefix="sertool-device-check-"))
    t0 = time.perf_counter()
    try:
        models = work / "models"
        preset = "tiny" if args.smoke else "paper-random"
        if args.smoke:
            build_tiny(models / "tiny", texts)
        embed = embed_rates(preset, models, device, waves, texts, (2, 6) if args.smoke else (16, 64))
        asr = asr_rate(preset, models, device, waves[: (2 if args.smoke else 16)], texts)
        train = train_rates(work, device, args.smoke, (0, 1) if args.smoke else (0, 4, 8))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loader = {k: v for k, v in train.items() if k != "bucketed_resident"}  # MSP-Podcast's view exceeds one GPU
    best_train = max(loader.values(), key=lambda v: v["samples_per_s"])
    out = {
        "bench": "device_check", "smoke": args.smoke,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "preset": preset,
        "embed_clips_per_s": {k: {b: v[b]["clips_per_s"] for b in v} if "error" not in v else v for k, v in embed.items()},
        "asr_clips_per_s": round(asr, 2),
        "train": train,
        "train_samples_per_s": best_train["samples_per_s"],
        "data_wait_share": best_train["data_wait_share"],
        "train_samples_per_s_resident": train["bucketed_resident"]["samples_per_s"],
        "peak_memory_gb": max([v2["peak_memory_gb"] for v in embed.values() if "error" not in v for v2 in v.values()]
                              + [v["peak_memory_gb"] for v in train.values()]),
        "msp_podcast_hours": project(embed, asr, loader),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
