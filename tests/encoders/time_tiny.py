"""Per-clip CPU time of the tiny encoders and ASR (not a test: `python tests/encoders/time_tiny.py`).

One torch thread and process CPU time, so the figure means something on a shared machine; 8 clips of
5 s (transcripts for RoBERTa), best of 3 after a warm-up.
"""

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent))
from encoder_helpers import TEXTS, speechlike  # noqa: E402

from sertool.encoders.asr import load_asr  # noqa: E402
from sertool.encoders.presets import build_tiny  # noqa: E402
from sertool.encoders.registry import load_encoder  # noqa: E402


def cpu_ms_per_clip(f, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        f()
        best = min(best, time.process_time() - t)
    return best / n * 1e3


def main() -> None:
    torch.set_num_threads(1)
    models = Path(tempfile.mkdtemp()) / "models"
    build_tiny(models / "tiny", TEXTS)
    wavs, texts = [speechlike(5.0, i) for i in range(8)], TEXTS[:8]
    for kind in ("whisper", "wavlm", "roberta"):
        enc = load_encoder(kind, "tiny", models_dir=models)
        data = texts if enc.modality == "text" else wavs
        enc.embed(data[:2])
        batched = cpu_ms_per_clip(lambda: enc.embed(data), len(data))
        single = cpu_ms_per_clip(lambda: [enc.embed([x]) for x in data], len(data))
        print(f"{kind}: {batched:.1f} ms CPU/clip batched (8), {single:.1f} one at a time")
    asr = load_asr("tiny", models_dir=models)
    asr.transcribe(wavs[:1])
    print(f"asr: {cpu_ms_per_clip(lambda: asr.transcribe(wavs), len(wavs)):.1f} ms CPU/clip (batch of 8)")


if __name__ == "__main__":
    main()
