"""`bench/device_check.py --smoke`: the GPU check's own code at tiny sizes on CPU, so that the first
time a GPU is at hand the prepared command runs (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_device_check_runs_at_tiny_sizes_and_answers_in_one_json_line():
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["device"] == "cpu" and out["smoke"] is True
    for key in ("embed_clips_per_s", "train_samples_per_s", "data_wait_share", "peak_memory_gb", "msp_podcast_hours"):
        assert key in out, key
    assert {"whisper_padded", "whisper_trimmed", "wavlm", "roberta"} <= set(out["embed_clips_per_s"])
    assert all(v > 0 for v in out["embed_clips_per_s"]["wavlm"].values())
    assert out["asr_clips_per_s"] > 0 and out["train_samples_per_s"] > 0
    assert set(out["train"]) == {"random_w0", "random_w1", "bucketed_w0", "bucketed_w1", "bucketed_resident"}
    assert out["train_samples_per_s_resident"] == out["train"]["bucketed_resident"]["samples_per_s"] > 0
    assert out["train"]["bucketed_resident"]["data_wait_share"] < 1
    assert out["train"]["bucketed_w0"]["padded_share"] < out["train"]["random_w0"]["padded_share"]
    hours = out["msp_podcast_hours"]
    assert hours["table1_sweep"] == pytest.approx(24 * hours["train_one_run"], rel=0.05)
