"""Paper-scale projection: store size and embedding time for MSP-Podcast with the paper's three encoders.

Corpus (challenge release, by its README): ~119,000 clips, 324 hours, so a 9.80 s mean clip.

Store size (fp16, uncompressed: the store's default) per encoder =
    frames per clip x clips x dim x 2 bytes,
  frames per clip from the encoders' own frame functions at the mean clip length: Whisper keeps the
  50/s frames that cover real audio, WavLM's conv front end makes ~50/s, RoBERTa stores one frame per
  token (content tokens + <s> + </s>). Tokens per second of speech are measured on the synthetic
  corpus's transcripts (rendered at their own durations, tokenised by the tiny byte-level BPE trained
  on them); `--tokens-per-s` overrides (conversational English is ~2.5-3 words/s). Augmented variants
  (noise, reverb, gain) multiply the audio encoders' size by 4 (clean + 3); text has `clean` only.

Embedding time per clip, measured on the tiny preset and scaled by FLOPs to the paper preset:
    paper_s = pre_s + model_s_tiny x F_paper / F_tiny
  - pre_s: feature extraction / tokenisation, the part of `encoder.embed` outside the model (the same
    code at either size), measured;
  - model_s_tiny: time inside the tiny model's forward (hooks on the model), measured per clip with
    the pipeline's CPU batching (batches of `--batch-seconds` padded seconds);
  - F: forward FLOPs of one mean clip, counted by `torch.utils.flop_counter.FlopCounterMode` on the
    tiny and paper architectures built on the meta device (no weights, no download). Whisper always
    processes a whole 30 s window (3000 mel frames), whatever the clip length.
  Tiny matmuls run at a lower FLOP rate than the paper's big ones, so the CPU projection is an
  upper bound for this machine. The GPU column is an *assumption*, not a measurement: total FLOPs at
  `--gpu-tflops` effective (default 200 TFLOP/s, ~20% of an H100's dense bf16 peak).

usage: python bench/projection.py [--clips 119000] [--hours 324] [--threads 1] [--repeats 3]
Prints the table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 16_000
ENCODERS = ("whisper", "wavlm", "roberta")
AUDIO = ("whisper", "wavlm")
N_AUGMENT = 3  # noise, reverb, gain


def synthetic_transcripts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Transcripts as the synthetic corpus renders them, at durations drawn like its clips (1.5-6 s)."""
    from sertool.corpus.synthetic_speech import render_transcript
    from sertool.labels import CLASSES

    rng = np.random.default_rng(seed)
    durations = rng.uniform(1.5, 6.0, size=n)
    texts = [render_transcript(rng, float(rng.uniform(1, 7)), CLASSES[rng.integers(len(CLASSES))], float(d))
             for d in durations]
    return texts, durations


def speechlike(seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(90, 260) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def forward_flops(kind: str, config, mean_s: float, n_tokens: int) -> int:
    """FLOPs of one forward pass over one mean clip, on the meta device (shapes only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import RobertaModel, WavLMModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    with torch.device("meta"):
        if kind == "whisper":
            model = WhisperEncoder(config).eval()
            inputs = {"input_features": torch.zeros(1, config.num_mel_bins, 3000)}
        elif kind == "wavlm":
            model = WavLMModel(config).eval()
            inputs = {"input_values": torch.zeros(1, int(mean_s * SR))}
        else:
            model = RobertaModel(config, add_pooling_layer=False).eval()
            inputs = {"input_ids": torch.zeros(1, n_tokens, dtype=torch.long)}
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(**inputs)
    return int(counter.get_total_flops())


def paper_config(kind: str):
    from transformers import RobertaConfig, WavLMConfig, WhisperConfig

    from sertool.encoders.registry import encoder_class

    return {"whisper": WhisperConfig, "wavlm": WavLMConfig, "roberta": RobertaConfig}[kind](**encoder_class(kind).paper_config)


def time_tiny(encoder, inputs: list, batch: int, repeats: int) -> tuple[float, float]:
    """(seconds per clip in total, seconds per clip inside the model), best of `repeats`, batches of `batch`."""
    inside = [0.0]
    started: list[float] = []
    pre = encoder.model.register_forward_pre_hook(lambda *_: started.append(time.perf_counter()))
    post = encoder.model.register_forward_hook(lambda *_: inside.__setitem__(0, inside[0] + time.perf_counter()
                                                                              - started.pop()))
    best = (math.inf, math.inf)
    try:
        encoder.embed(inputs[:batch])  # warm-up
        for _ in range(repeats):
            inside[0] = 0.0
            t0 = time.perf_counter()
            for i in range(0, len(inputs), batch):
                encoder.embed(inputs[i : i + batch])
            total = time.perf_counter() - t0
            best = min(best, (total / len(inputs), inside[0] / len(inputs)))
    finally:
        pre.remove()
        post.remove()
    return best


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=119_000)
    ap.add_argument("--hours", type=float, default=324.0)
    ap.add_argument("--tokens-per-s", type=float, default=None, help="override the measured rate")
    ap.add_argument("--timed-clips", type=int, default=12, help="mean-length clips timed per encoder")
    ap.add_argument("--batch-seconds", type=float, default=None, help="default: the pipeline's CPU default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu-tflops", type=float, default=200.0, help="assumed effective GPU rate (not measured)")
    args = ap.parse_args()

    import torch

    from sertool.encoders.registry import encoder_class
    from sertool.jobs.embed import default_batch_seconds
    from sertool.encoders.presets import build_tiny
    from sertool.encoders.registry import load_encoder
    from sertool.encoders.whisper import frames_for

    torch.set_num_threads(args.threads)
    mean_s = args.hours * 3600 / args.clips
    batch_s = args.batch_seconds or default_batch_seconds("cpu")
    texts, durations = synthetic_transcripts(400)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="sertool-projection-") as tmp:
        models = Path(tmp) / "models"
        build_tiny(models / "tiny", texts)
        enc = {k: load_encoder(k, "tiny", models_dir=models) for k in ENCODERS}
        content = [len(enc["roberta"]._ids(t)) for t in texts]
        measured_tps = sum(content) / float(durations.sum())
        tps = args.tokens_per_s or measured_tps
        n_tokens = round(tps * mean_s) + 2  # + <s> </s>
        # Timed inputs: mean-length clips; transcripts rendered for a mean-length clip (sentences scale with time).
        audio = [speechlike(mean_s, rng) for _ in range(args.timed_clips)]
        long_texts = [" ".join(texts[j] for j in rng.choice(len(texts), size=3)) for _ in range(args.timed_clips)]
        frames = {
            "whisper": frames_for(int(mean_s * SR)),
            "wavlm": enc["wavlm"].n_frames(int(mean_s * SR)),
            "roberta": n_tokens,
        }
        rows, out = [], {}
        for kind in ENCODERS:
            e = enc[kind]
            batch = max(1, int(batch_s // encoder_class(kind).padded_seconds(mean_s))) if kind in AUDIO else 64
            total_s, model_s = time_tiny(e, audio if kind in AUDIO else long_texts, batch, args.repeats)
            f_tiny = forward_flops(kind, e.model.config, mean_s, n_tokens)
            f_paper = forward_flops(kind, paper_config(kind), mean_s, n_tokens)
            pre_s = max(0.0, total_s - model_s)
            paper_s = pre_s + model_s * f_paper / f_tiny
            dim = paper_config(kind).d_model if kind == "whisper" else paper_config(kind).hidden_size
            size = frames[kind] * args.clips * dim * 2
            variants = 1 + (N_AUGMENT if kind in AUDIO else 0)
            out[kind] = {
                "dim": dim, "frames_per_clip": frames[kind], "store_bytes": size, "store_bytes_augmented": size * variants,
                "tiny_gflops_per_clip": f_tiny / 1e9, "paper_gflops_per_clip": f_paper / 1e9,
                "tiny_s_per_clip": total_s, "tiny_model_s_per_clip": model_s, "pre_s_per_clip": pre_s,
                "paper_cpu_s_per_clip": paper_s, "paper_cpu_hours": paper_s * args.clips / 3600,
                "paper_gpu_hours_assumed": f_paper * args.clips / (args.gpu_tflops * 1e12) / 3600,
            }
            rows.append((kind, dim, frames[kind], gib(size), gib(size * variants), f"{f_tiny / 1e9:.3f}",
                         f"{f_paper / 1e9:,.0f}", f"{total_s * 1e3:.1f} ({model_s * 1e3:.1f})",
                         f"{paper_s:.2f}", f"{paper_s * args.clips / 3600:,.0f}",
                         f"{out[kind]['paper_gpu_hours_assumed']:.2f}"))
    # The tiny models' FLOP rates differ a lot (small conv kernels run far below the matmul rate); the paper
    # models are matmul-bound, so the best tiny rate gives a second, less pessimistic CPU figure.
    best_rate = max(o["tiny_gflops_per_clip"] / o["tiny_model_s_per_clip"] for o in out.values())  # GFLOP/s
    for o in out.values():
        o["paper_cpu_s_per_clip_best_rate"] = o["pre_s_per_clip"] + o["paper_gflops_per_clip"] / best_rate
        o["pre_cpu_hours"] = o["pre_s_per_clip"] * args.clips / 3600
    total = {k: sum(o[k] for o in out.values()) for k in ("store_bytes", "store_bytes_augmented", "paper_cpu_hours",
                                                          "paper_gpu_hours_assumed", "pre_cpu_hours")}
    total["paper_cpu_hours_best_rate"] = sum(o["paper_cpu_s_per_clip_best_rate"] for o in out.values()) * args.clips / 3600
    head = ("encoder", "dim", "frames/clip", "store fp16", "+3 aug", "tiny GFLOP", "paper GFLOP",
            "tiny ms/clip (model)", "paper s/clip CPU", "CPU h", f"GPU h @{args.gpu_tflops:g}TF")
    print(f"MSP-Podcast: {args.clips:,} clips, {args.hours:g} h, mean clip {mean_s:.2f} s; "
          f"{tps:.2f} tokens/s ({'measured on synthetic transcripts' if args.tokens_per_s is None else 'given'}); "
          f"{args.threads} CPU thread(s), CPU batches of {batch_s:g} padded s")
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, *rows):
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    print(f"total: store {gib(total['store_bytes'])} clean, {gib(total['store_bytes_augmented'])} with noise/reverb/gain; "
          f"embedding {total['paper_cpu_hours']:,.0f} CPU-thread hours (projected), "
          f"{total['paper_gpu_hours_assumed']:.1f} GPU hours at an assumed {args.gpu_tflops:g} TFLOP/s "
          f"(+ {total['pre_cpu_hours']:.1f} CPU-thread hours of feature extraction)")
    print(f"at the best tiny FLOP rate measured here ({best_rate:.1f} GFLOP/s per thread): "
          f"{total['paper_cpu_hours_best_rate']:,.0f} CPU-thread hours")
    print(json.dumps({"clips": args.clips, "hours": args.hours, "mean_clip_s": round(mean_s, 3),
                      "tokens_per_s": round(tps, 3), "measured_tokens_per_s": round(measured_tps, 3),
                      "threads": args.threads, "best_tiny_gflops_per_s": round(best_rate, 2), "encoders": out, **{f"total_{k}": v for k, v in total.items()}}))


if __name__ == "__main__":
    main()
