"""Training from a packed view held in memory (`sertool train --view NAME [--resident cpu|cuda]`).

The view is loaded once; each batch is a gather of its clips' rows on the device holding the view,
padded and dequantized there, with no loader processes: the sample, the variants and the targets are
exactly those the store loader would give (the same `PlanSampler`, the same `assemble`), so a seed
samples the same clips whichever way the frames arrive.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SertoolError
from ..store.quantize import decode_torch
from ..store.views import CLEAN, ViewInfo
from .batches import Batch, Item, PlanSampler, assemble
from .data import SplitData

if TYPE_CHECKING:
    import torch

    from .targets import TargetMaker

HEADROOM = 0.9
"""Share of the free memory a view may take (the model, its activations and the optimizer need the rest)."""


def free_bytes(device: str) -> int:
    """Memory free on the device that would hold the view."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(info: ViewInfo, device: str, budget_gb: float | None) -> None:
    """Refuse, before any work, a view bigger than the memory it would live in; say what would fit."""
    budget = budget_gb * 1e9 if budget_gb is not None else free_bytes(device) * HEADROOM
    need = info.bytes
    if need <= budget:
        return
    gb = lambda b: f"{b / 1e9:.2f} GB"  # noqa: E731
    options = [f"int8: {gb(info.frame_bytes('int8'))}", f"int8 at 25/s: {gb(info.frame_bytes('int8', 25))}",
               f"fp16 at 25/s: {gb(info.frame_bytes('fp16', 25))}"]
    raise SertoolError(f"view {info.spec.name!r} needs {gb(need)} on {device} but {gb(budget)} is available "
                       f"({'--resident-budget-gb' if budget_gb is not None else f'{HEADROOM:.0%} of the free memory'}); "
                       f"packed otherwise it would need {', '.join(options)}, or fewer splits (--splits Train)")


class ResidentFrames:
    """A view's arrays on one device; `inputs` builds a batch's padded frames there."""

    def __init__(self, info: ViewInfo, encoders: Sequence[str], device: str, pin: bool = False) -> None:
        import torch

        self.info, self.device, self.dtype = info, device, info.spec.dtype
        self.frames: dict[str, torch.Tensor] = {}  # encoder -> every variant's rows, one tensor
        self.start: dict[str, dict[tuple[str, str], int]] = {}  # encoder -> (variant, clip) -> first row
        self.length: dict[str, dict[tuple[str, str], int]] = {}
        self.affine: dict[str, tuple] = {}
        self._tables: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        for enc in encoders:
            keys = [k for k in info.arrays if k.split("/")[0] == enc]
            if not keys:
                raise SertoolError(f"view {info.spec.name!r} has no frames of encoder {enc!r} "
                                   f"(it holds {', '.join(info.spec.encoders)})")
            parts, base = [], 0
            self.start[enc], self.length[enc] = {}, {}
            for key in keys:
                variant = key.split("/")[1]
                arr = np.load(info.array_path(key, "frames"), mmap_mode="r")
                offsets = np.load(info.array_path(key, "offsets"))
                for c, a, b in zip(info.array_clips(key), offsets[:-1].tolist(), offsets[1:].tolist()):
                    self.start[enc][(variant, c)] = base + a
                    self.length[enc][(variant, c)] = b - a
                parts.append(torch.from_numpy(np.array(arr)))  # read into memory once (a writable copy)
                base += len(arr)
                if self.dtype == "int8" and enc not in self.affine:  # one range per encoder (pack fits it once)
                    scale = np.load(info.array_path(key, "scale"))
                    zero = np.load(info.array_path(key, "zero"))
                    self.affine[enc] = (torch.from_numpy(scale).to(device), torch.from_numpy(zero).to(device))
            t = torch.cat(parts) if len(parts) > 1 else parts[0]
            self.frames[enc] = t.pin_memory() if pin else t.to(device)

    def has(self, clip_ids: Sequence[str]) -> bool:
        enc = next(iter(self.start))
        return all((CLEAN, c) in self.start[enc] for c in clip_ids)

    def table(self, enc: str, variant: str, clip_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(first row, rows) of each clip in `clip_ids` (-1, 0 where the view lacks it), cached per list:
        a batch then looks its clips up by position, with no per-clip Python."""
        key = (enc, variant, id(clip_ids), len(clip_ids))
        if key not in self._tables:
            starts = np.array([self.start[enc].get((variant, c), -1) for c in clip_ids], dtype=np.int64)
            lens = np.array([self.length[enc].get((variant, c), 0) for c in clip_ids], dtype=np.int64)
            self._tables[key] = (starts, lens)
        return self._tables[key]

    def inputs(self, clip_ids: Sequence[str], variants: Sequence[str], text: dict[str, bool],
               positions: np.ndarray | None = None):
        """Padded (B, T, D) float16 frames and lengths (B,) per encoder, built on the view's device.

        `positions`: the clips' places in `clip_ids` (a split's own list): the batch is `clip_ids[positions]`.
        Only the clips' own rows are read and decoded (padding is zeros: on CPU numpy's calloc, free
        until touched).
        """
        import torch

        pos = np.arange(len(clip_ids)) if positions is None else np.asarray(positions)
        out = {}
        for enc, frames in self.frames.items():
            starts = np.empty(len(pos), dtype=np.int64)
            lens = np.empty(len(pos), dtype=np.int64)
            batch_variants = [CLEAN] * len(pos) if text[enc] else [variants[i] for i in range(len(pos))]
            for v in dict.fromkeys(batch_variants):
                sel = np.array([b == v for b in batch_variants])
                s_all, n_all = self.table(enc, v, clip_ids)
                starts[sel], lens[sel] = s_all[pos[sel]], n_all[pos[sel]]
            if (starts < 0).any():
                i = int(np.flatnonzero(starts < 0)[0])
                raise SertoolError(f"view {self.info.spec.name!r} lacks {enc} frames of clip {clip_ids[pos[i]]!r} "
                                   f"(variant {batch_variants[i]}): pack it again with --replace")
            t_max = max(int(lens.max()), 1) if len(lens) else 1
            scale, zero = self.affine.get(enc, (None, None))
            if frames.device.type == "cpu":  # one copy per clip into calloc'd zeros (what the store loader does)
                # numpy's copy, not torch's: torch copies float16 slices on the CPU several times slower
                # (bench/views.py), and fp16 rows need no decoding at all.
                x_np = np.zeros((len(pos), t_max, frames.shape[-1]), dtype=np.float16)
                raw = frames.numpy() if self.dtype == "fp16" else None
                for i, (a, n) in enumerate(zip(starts.tolist(), lens.tolist())):
                    x_np[i, :n] = raw[a : a + n] if raw is not None else \
                        decode_torch(frames[a : a + n], self.dtype, scale, zero).numpy()
                x = torch.from_numpy(x_np)
            else:  # on the GPU: one gather of the clips' rows, decoded and scattered in device memory
                ends = np.cumsum(lens)
                rows = np.repeat(starts - (ends - lens), lens) + np.arange(int(ends[-1]))
                real = decode_torch(frames[torch.from_numpy(rows).to(frames.device)], self.dtype, scale, zero)
                x = torch.zeros((len(pos), t_max, frames.shape[-1]), dtype=real.dtype, device=frames.device)
                x[torch.from_numpy(np.arange(t_max)[None, :] < lens[:, None]).to(x.device)] = real
            out[enc] = (x, torch.from_numpy(lens).to(x.device))
        return out


class ResidentLoader:
    """Stands where the DataLoader stands: yields the sampler's planned batches, built from memory."""

    def __init__(self, frames: ResidentFrames, split: SplitData, sampler: PlanSampler, text: dict[str, bool],
                 targets: "TargetMaker | None" = None) -> None:
        self.frames, self.split, self.sampler, self.text, self.targets = frames, split, sampler, text, targets

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Batch]:
        for items in self.sampler:
            yield self.batch(items)

    def batch(self, items: Sequence[Item]) -> Batch:
        positions = np.array([it.index for it in items], dtype=np.int64)
        inputs = self.frames.inputs(self.split.clip_ids, [it.variant for it in items], self.text, positions)
        return assemble(self.split, self.targets, items, inputs)


def eval_plan(split: SplitData, batch_size: int) -> PlanSampler:
    """Every clip's clean frames once, in split order."""
    plan = [[Item(i, CLEAN) for i in range(k, min(k + batch_size, len(split)))] for k in range(0, len(split), batch_size)]
    return PlanSampler(lambda _epoch: plan)

