"""Mixed precision: one rule for every forward pass on a GPU (frozen encoders and the fusion model).

bf16 autocast where the GPU has it (no loss scaling needed), else fp16, which needs a GradScaler when
training; on CPU everything runs in full precision.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any


def autocast(device: str, *, training: bool = False, precision: str = "auto") -> tuple[AbstractContextManager, Any]:
    """(context to run forward passes in, GradScaler or None).

    `precision`: `auto` is the rule above; `fp32` never autocasts; `bf16` autocasts to bfloat16 on any
    device (on CPU: the GPU's autocast path, checkable without a GPU).
    """
    if precision == "fp32":
        return nullcontext(), None
    import torch

    if precision == "bf16":
        return torch.autocast("cuda" if str(device).startswith("cuda") else "cpu", dtype=torch.bfloat16), None
    if not str(device).startswith("cuda"):
        return nullcontext(), None

    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda") if training else None
