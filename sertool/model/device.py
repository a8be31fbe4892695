"""Whether a `--device` can run here: one check before any work, so that asking for a GPU on a machine
without one is one line naming the option (exit 2), not a traceback from deep inside a model load."""

from __future__ import annotations

from ..errors import InvalidOption


def check_device(device: str) -> str:
    """`device` when torch can run on it here; otherwise `InvalidOption` on `device`.

    `cpu` is always there (and needs no torch import: `--help` and CPU runs stay as fast); `cuda` and
    `cuda:N` need a CUDA build of torch that sees a GPU (CUDA_VISIBLE_DEVICES counts) and, for `:N`, that
    many GPUs.
    """
    if device == "cpu":
        return device
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InvalidOption("device", f"{device!r} is not a device (cpu, cuda or cuda:N)") from None
    if dev.type == "cpu":
        return device
    if dev.type != "cuda":
        raise InvalidOption("device", f"{device}: only cpu and cuda are supported")
    if not torch.cuda.is_available():
        built = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", built without CUDA")
        raise InvalidOption("device", f"{device}: no CUDA GPU is available on this machine ({built}); use cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidOption("device", f"{device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device
