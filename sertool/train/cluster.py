"""Sweeps on a cluster: children as submitit jobs on Slurm (or on submitit's local executor, which runs
real subprocesses: how the tests take this path without a cluster), and what such a sweep needs.

A Slurm child runs on another node: the tracking store must be a server it can reach (a SQLite file on
the submitting machine is refused before anything is submitted), and the store, the project directory
(resume states, the sweep's folder of job logs) and the study's journal must be on a shared filesystem.
Each job's log is linked from its run (`sertool.log`), and its job id too (`sertool.job_id`), which lets
a resumed sweep ask Slurm whether a child left RUNNING is gone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOption, SertoolError
from .child import STOP_GRACE_S, ChildJob, Ended, one_line, read_status

if TYPE_CHECKING:
    from .launchers import LaunchOptions


@dataclass
class SlurmOptions:
    partition: str | None = None
    gpus_per_task: int | None = None
    time: str | None = None
    """`MINUTES`, `H:MM:SS` or `D-HH:MM:SS` (sbatch's forms); a local job's time limit too."""
    options: dict[str, str] = field(default_factory=dict)
    """Any other sbatch option, `KEY=VALUE` (`mem=64G`, `account=x`, `qos=high`)."""


def minutes(text: str) -> float:
    """sbatch's time forms as minutes: `240`, `4:00:00`, `30:00`, `1-12:00:00`."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise InvalidOption("time", f"{text!r}: use MINUTES, H:MM:SS or D-HH:MM:SS")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if b is None:  # MINUTES (or D-HH)
        total = a * 60 if days is not None else a
    elif c is None:  # MM:SS (or D-HH:MM)
        total = a * 60 + b if days is not None else a + b / 60
    else:  # H:MM:SS
        total = a * 60 + b + c / 60
    return total + (days or 0) * 24 * 60


class Submitit:
    """submitit jobs: on Slurm, or as local processes (its LocalExecutor: how tests take this path)."""

    def __init__(self, kind: str, folder: Path, opts: LaunchOptions, slots: list[str] | None) -> None:
        import submitit

        self.name = kind
        self.slots = slots
        self._free = list(range(len(slots))) if slots else []
        self._capacity = opts.parallel
        self._jobs: dict[str, tuple[ChildJob, Any, int | None]] = {}
        timeout = minutes(opts.slurm.time) if opts.slurm.time else 24 * 60.0
        if kind == "local":
            self.executor = submitit.LocalExecutor(folder=str(folder))
            self.executor.update_parameters(timeout_min=timeout, stderr_to_stdout=True)
        else:
            self.executor = submitit.SlurmExecutor(folder=str(folder))
            self.executor.update_parameters(**slurm_parameters(opts.slurm, timeout))

    def free(self) -> int:
        if self.slots:
            return len(self._free)
        return (self._capacity or 10**6) - len(self._jobs)

    def start(self, job: ChildJob) -> None:
        slot = self._free.pop(0) if self.slots else None
        job.launcher = self.name
        if slot is not None:
            device = self.slots[slot]
            job.slot = device
            self.executor.update_parameters(visible_gpus=() if device == "cpu" else (int(device.split(":")[1]),),
                                            gpus_per_node=0 if device == "cpu" else 1)
        self._jobs[job.key] = (job, self.executor.submit(_run_job, job), slot)

    def poll(self) -> list[Ended]:
        out = []
        for key, (job, sub, slot) in list(self._jobs.items()):
            if not sub.done():
                continue
            del self._jobs[key]
            if slot is not None:
                self._free.append(slot)
            try:
                sub.result()
                state, error = ("pruned" if read_status(job).get("state") == "pruned" else "finished"), None
            except Exception as e:  # submitit re-raises the job's failure with its traceback
                status = read_status(job)
                state = status.get("state") if status.get("state") in ("killed", "failed") else "failed"
                error = status.get("error") or one_line(e)
            out.append(Ended(job, state, error))
        return out

    def running(self) -> list[ChildJob]:
        return [job for job, _, _ in self._jobs.values()]

    def stop_all(self) -> list[Ended]:
        for _, sub, _ in self._jobs.values():
            sub.cancel(check=False)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and not all(sub.done() for _, sub, _ in self._jobs.values()):
            time.sleep(0.2)
        return self.poll()


def _run_job(job: ChildJob) -> dict[str, Any]:
    from .child import run_job

    return run_job(job)


def slurm_parameters(opts: SlurmOptions, timeout_min: float) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters: the named ones, then each `--slurm-option` as its own
    parameter where submitit has one (`mem`, `account`, `qos`, `constraint`...), else as a raw sbatch
    line (`additional_parameters`)."""
    import submitit

    valid = submitit.SlurmExecutor._valid_parameters()
    params: dict[str, Any] = {"time": max(1, round(timeout_min)), "ntasks_per_node": 1, "nodes": 1,
                              "stderr_to_stdout": True, "job_name": "sertool-sweep"}
    if opts.partition:
        params["partition"] = opts.partition
    if opts.gpus_per_task is not None:
        params["gpus_per_task"] = opts.gpus_per_task
    extra: dict[str, Any] = {}
    for key, value in opts.options.items():
        name = key.strip().lstrip("-").replace("-", "_")
        (params if name in valid else extra)[name] = value
    if extra:
        params["additional_parameters"] = extra
    return params


def slurm_job_gone(job_id: str) -> bool | None:
    """Whether Slurm no longer has the job pending or running (None: no `squeue` here to ask). A child
    on another node cannot be checked by pid, as `Tracker.reap_orphans` does for this host's."""
    if shutil.which("squeue") is None:
        return None
    try:
        res = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return True if "invalid job id" in res.stderr.lower() else None
    return res.stdout.strip() == ""


def parse_options(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidOption("slurm_option", f"{item!r}: expected KEY=VALUE (an sbatch option)")
        out[key.strip()] = value.strip()
    return out


def check_cluster(opts: "LaunchOptions", tracking_uri: str, shown_uri: str) -> None:
    """What a Slurm sweep needs, checked before anything is submitted: jobs on other nodes must reach the
    tracking store (a server, not a file on this machine) and must be submittable."""
    from ..tracking.uri import is_remote, sqlite_path

    if opts.launcher != "slurm":
        for name, value in (("partition", opts.slurm.partition), ("gpus_per_task", opts.slurm.gpus_per_task),
                            ("slurm_option", opts.slurm.options)):
            if value:
                raise InvalidOption(name, "only with --launcher slurm")
        if opts.slurm.time and opts.launcher != "local":
            raise InvalidOption("time", "a job's time limit: only with --launcher slurm or local")
        if opts.slurm.time:
            minutes(opts.slurm.time)
        return
    if opts.slurm.time:
        minutes(opts.slurm.time)
    if sqlite_path(tracking_uri) is not None or tracking_uri.startswith("file:") or "://" not in tracking_uri:
        raise SertoolError(
            f"--launcher slurm: the tracking URI {shown_uri} is a file on this machine, which jobs on other nodes "
            "cannot share; track to a server (--tracking-uri http://HOST:5000: README, Team setup)")
    if not is_remote(tracking_uri) and not tracking_uri.split(":")[0].startswith(("postgresql", "mysql", "mssql")):
        raise SertoolError(f"--launcher slurm: {shown_uri} is not a tracking server the jobs can reach")
    if opts.devices:
        raise InvalidOption("devices", "Slurm places each job on its GPUs: use --gpus-per-task")
    if shutil.which("sbatch") is None:
        raise SertoolError("--launcher slurm: no `sbatch` on this machine; submit from a Slurm login node")
