"""`--device cuda` on a machine without a GPU (hardening issue, defect 9): one line, exit 2, for every
command that loads encoders (embed, transcribe, predict) or trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .test_embed import snapshot


def test_cuda_without_a_gpu_is_one_line_for_embed_transcribe_predict_and_train(layout, tmp_path):
    """`--device cuda` where torch sees no GPU (CUDA_VISIBLE_DEVICES="" hides any): one line naming
    --device, exit 2, nothing touched; it used to be a traceback from the model's .to("cuda")."""
    code = (
        "import json, sys\nfrom typer.testing import CliRunner\nfrom sertool.cli import app\n"
        "for args in (['embed'], ['transcribe'], ['predict', 'some-run', 'x.wav'], ['train']):\n"
        "    r = CliRunner().invoke(app, ['--store', sys.argv[1], *args, '--device', 'cuda'])\n"
        "    print(json.dumps([args[0], r.exit_code, r.stderr]))\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    before = snapshot(layout)
    res = subprocess.run([sys.executable, "-c", code, str(layout.root)], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    results = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [r[0] for r in results] == ["embed", "transcribe", "predict", "train"]
    for command, code_, stderr in results:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert code_ == 2 and len(lines) == 1, (command, code_, stderr)
        assert lines[0].startswith("error: --device: cuda: no CUDA GPU is available on this machine"), (command, stderr)
    assert snapshot(layout) == before and not layout.embeddings.exists()
