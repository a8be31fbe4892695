"""Where a sweep's children run: this process, a pool of local processes pinned to device slots, or
submitit jobs (Slurm, or submitit's local executor). Engines that exist do the work; this module only
fills their slots and says when a child has ended.

Every launcher answers the same four calls, so the sweep's loop (and a search's ask/tell) is one loop:
`start(job)` when `free()` says a slot is open, `poll()` for the children that ended, `stop_all()` on
Ctrl-C. How a child ended is read from its status file and exit code; what it logged is in the tracker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidOption
from .child import EXIT_STOPPED, PARENT_ENV, STOP_GRACE_S, ChildJob, Ended, one_line, read_status, run_child
from .cluster import SlurmOptions, Submitit

if TYPE_CHECKING:
    from rich.console import Console

LAUNCHERS = ("pool", "local", "slurm")


@dataclass
class LaunchOptions:
    """How the children run: `launcher` pool (this machine), local (submitit's local executor) or slurm;
    up to `parallel` at once (None: one at a time, in the sweep's own process, with its progress bars)."""

    launcher: str = "pool"
    parallel: int | None = None
    devices: str | None = None
    """`cpu`, `cuda` (every GPU here) or `cuda:0,cuda:1,...`; default: the children's `device`, else every GPU."""
    per_device: int | None = None
    """Children sharing one device (default: 1 per GPU; every child may share the CPU)."""
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    @property
    def inline(self) -> bool:
        return self.launcher == "pool" and self.parallel is None


def device_slots(opts: LaunchOptions, config_device: str | None) -> list[str]:
    """The device slots children are pinned to, one child per slot at a time: each device `per_device`
    times, up to `parallel` slots. Asking more children at once than slots is refused."""
    parallel = opts.parallel or 1
    spec = opts.devices or config_device
    if spec is None:
        spec = "cuda" if _gpus() else "cpu"
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if items == ["cpu"]:
        per = opts.per_device or parallel
        devices = ["cpu"]
    else:
        bad = [] if items == ["cuda"] else [s for s in items if not re.fullmatch(r"cuda:\d+", s)]
        if bad or not items:
            raise InvalidOption("devices", f"{(bad or [spec])[0]!r}: use cpu, cuda, or cuda:0,cuda:1,...")
        n = _gpus()
        if n == 0:
            raise InvalidOption("devices", f"{spec}: no CUDA GPU on this machine (use --devices cpu)")
        if items == ["cuda"]:
            items = [f"cuda:{i}" for i in range(n)]
        missing = [s for s in items if int(s.split(":")[1]) >= n]
        if missing:
            have = f"cuda:0..cuda:{n - 1}" if n else "none"
            raise InvalidOption("devices", f"{missing[0]}: this machine has {n} GPU(s) ({have})")
        if len(set(items)) != len(items):
            raise InvalidOption("devices", "a device is named twice (use --per-device to share one)")
        per = opts.per_device or 1
        devices = items
    if per < 1:
        raise InvalidOption("per_device", "must be >= 1")
    slots = [d for _ in range(per) for d in devices]
    if parallel > len(slots):
        raise InvalidOption("parallel", f"{parallel} children at once need {parallel} device slots; "
                            f"{','.join(devices)} x --per-device {per} gives {len(slots)}")
    return slots[:parallel]


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


class Inline:
    """One child at a time, in this process (the progress bars of `sertool train`)."""

    name = "inline"

    def __init__(self, console: "Console | None") -> None:
        self.console = console
        self._ended: list[Ended] = []

    def free(self) -> int:
        return 0 if self._ended else 1  # the loop records each child before it starts the next

    def start(self, job: ChildJob) -> None:
        try:
            result = run_child(job, self.console)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a child's failure is recorded; the others go on
            self._ended.append(Ended(job, "failed", one_line(e)))
            return
        self._ended.append(Ended(job, "pruned" if result.pruned else "finished"))

    def poll(self) -> list[Ended]:
        out, self._ended = self._ended, []
        return out

    def running(self) -> list[ChildJob]:
        return []

    def stop_all(self) -> list[Ended]:
        return []


class Pool:
    """Local child processes (`python -m sertool.train.child`), each pinned to a device slot; they die
    with this process (see `train.child`)."""

    name = "pool"

    def __init__(self, slots: list[str], workdir: Path) -> None:
        self.slots = slots
        self.workdir = workdir
        self._free = list(range(len(slots)))
        self._procs: dict[str, tuple[ChildJob, subprocess.Popen, int]] = {}
        cpu_slots = sum(1 for s in slots if s == "cpu")
        self._threads = max(1, (os.cpu_count() or 1) // cpu_slots) if cpu_slots else None

    def free(self) -> int:
        return len(self._free)

    def start(self, job: ChildJob) -> None:
        slot = self._free.pop(0)
        device = self.slots[slot]
        job.slot, job.launcher, job.log = device, self.name, str(self.workdir / f"{job.key}.log")
        spec = self.workdir / f"{job.key}.job.json"
        job.save(spec)
        env = {**os.environ, PARENT_ENV: str(os.getpid()),
               "CUDA_VISIBLE_DEVICES": "" if device == "cpu" else device.split(":")[1]}
        if device == "cpu" and self._threads and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(self._threads)  # children sharing the CPU share its cores
        with open(job.log, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "sertool.train.child", str(spec)], stdin=subprocess.PIPE,
                                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._procs[job.key] = (job, proc, slot)

    def poll(self) -> list[Ended]:
        out = []
        for key, (job, proc, slot) in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._procs[key]
            self._free.append(slot)
            if proc.stdin is not None:
                proc.stdin.close()
            out.append(_ended(job, code))
        return out

    def running(self) -> list[ChildJob]:
        return [job for job, _, _ in self._procs.values()]

    def stop_all(self) -> list[Ended]:
        """SIGTERM every child (each marks its run KILLED), then kill what is left after the grace."""
        for _, proc, _ in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(p.poll() is None for _, p, _ in self._procs.values()):
            time.sleep(0.1)
        for _, proc, _ in self._procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return self.poll()


def _ended(job: ChildJob, code: int) -> Ended:
    status = read_status(job)
    state = status.get("state")
    if state in ("finished", "pruned", "killed", "failed"):
        return Ended(job, state, status.get("error"))
    if code == 0:
        return Ended(job, "finished")
    if code == EXIT_STOPPED or code < 0:
        return Ended(job, "killed", f"stopped (exit {code})")
    return Ended(job, "failed", f"exit code {code}; see {job.log}")


def plan_slots(opts: LaunchOptions, config_device: str | None) -> list[str] | None:
    """The device slots the launcher will fill (None: inline, or Slurm's own placement); checked before
    any run starts."""
    if opts.launcher not in LAUNCHERS:
        raise InvalidOption("launcher", f"{opts.launcher!r} is not one of {', '.join(LAUNCHERS)}")
    if opts.parallel is not None and opts.parallel < 1:
        raise InvalidOption("parallel", "must be >= 1")
    if opts.inline or opts.launcher == "slurm":
        if opts.inline and (opts.devices or opts.per_device):
            raise InvalidOption("devices" if opts.devices else "per_device", "places parallel children: add --parallel N")
        return None
    return device_slots(opts, config_device)


Launcher = Inline | Pool | Submitit


def make_launcher(opts: LaunchOptions, slots: list[str] | None, workdir: Path, console: "Console | None") -> Launcher:
    """The launcher `opts` asks for; `slots` from `plan_slots`."""
    if opts.inline:
        return Inline(console)
    if opts.launcher == "slurm":
        return Submitit("slurm", workdir / "submitit", opts, None)
    if opts.launcher == "local":
        return Submitit("local", workdir / "submitit", opts, slots)
    return Pool(slots or ["cpu"], workdir)
