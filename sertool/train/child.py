"""One child of a sweep, wherever it runs: in the sweep's process, a process of its pool, or a submitit job.

A `ChildJob` is plain values (a JSON file for the pool, a pickle for submitit): the config to train, the
parent run, the tracking store, the store, and where it reports. `run_child` trains it, or goes on with
its earlier run when the sweep found one (`resume_run_id`): a child is trained once, whatever kills it.
Every epoch it rewrites a small status file the sweep's live table reads; it never talks to the sweep
process directly, so the same child runs the same way on a Slurm node.

`python -m sertool.train.child JOB.json` is the pool's child. It dies with the sweep: Linux delivers it
SIGTERM when its parent dies (`PR_SET_PDEATHSIG`), and a thread watching its stdin (a pipe only the sweep
holds) sees the end of it elsewhere too; SIGTERM ends the run like Ctrl-C (KILLED, resumable), and one
that will not end within `GRACE_S` is cut short. Exit codes: 0 done (or pruned), 130 stopped, 2 a
`SertoolError` (its one line on stderr), 1 a bug (its traceback in the log).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import launch
from ..errors import SertoolError
from ..metrics import METRIC_NAMES
from ..tracking.names import JOB_ID_TAG, LAUNCHER_TAG, LOG_TAG, SWEEP_KEY_TAG, TRIAL_TAG
from .search import TrialRef

if TYPE_CHECKING:
    from rich.console import Console

    from .loop import EpochStats, TrainResult

PARENT_ENV = "SERTOOL_SWEEP_PARENT_PID"
URI_ENV = "SERTOOL_SWEEP_TRACKING_URI"
"""A tracking URI with a password reaches children through their environment, never a job file."""
GRACE_S = 60.0
"""How long a child whose sweep died may take to mark its run KILLED before it exits regardless."""
EXIT_STOPPED = 130
STOP_GRACE_S = 60.0
"""How long stopped children may take to mark their runs KILLED before they are killed outright."""


@dataclass
class ChildJob:
    """Everything a child needs, as plain values."""

    key: str
    """`TrainConfig.digest()`: the child's identity within its sweep."""
    label: str
    config: dict[str, Any]
    parent_run_id: str
    tracking_uri: str | None
    """None when the URI holds a password: the child reads it from `URI_ENV` (see `secret_uri`)."""
    experiment: str
    store_root: str
    catalog_file: str | None = None
    embeddings_url: str | None = None
    workdir: str | None = None
    """Where the status file (and a pool child's log) goes; None: no status file (inline)."""
    launcher: str = "inline"
    resume_run_id: str | None = None
    """The child's earlier run (FAILED or KILLED) to go on with, instead of a new run."""
    slot: str | None = None
    """`cpu` or `cuda:N`, when the launcher pins the child to a device."""
    trial: TrialRef | None = None
    log: str | None = None
    job_id: str | None = None

    @property
    def status_path(self) -> Path | None:
        return Path(self.workdir) / f"{self.key}.status.json" if self.workdir else None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "ChildJob":
        data = json.loads(Path(path).read_text())
        trial = data.pop("trial", None)
        return cls(**data, trial=TrialRef(**trial) if trial else None)


@dataclass
class Ended:
    """A child that stopped running: how (`finished`, `pruned`, `failed`, `killed`) and why."""

    job: ChildJob
    state: str
    error: str | None = None


def secret_uri(uri: str) -> bool:
    """Whether the URI carries a password (`postgresql://user:secret@host/db`): it must not be written
    into job files or pickles on disk."""
    from urllib.parse import urlparse

    return urlparse(uri).password is not None


def read_status(job: ChildJob) -> dict[str, Any]:
    """The child's last status ({} before it wrote one, or when it is unreadable mid-replace)."""
    path = job.status_path
    try:
        return json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}


class _Status:
    def __init__(self, job: ChildJob) -> None:
        self.path = job.status_path
        self.data: dict[str, Any] = {"state": "starting", "pid": os.getpid(), "host": socket.gethostname(),
                                     "slot": job.slot, "epochs": job.config.get("epochs"), "log": job.log}
        self.write()

    def write(self, **values: Any) -> None:
        self.data.update(values)
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}")
        tmp.write_text(json.dumps(self.data, default=float))
        os.replace(tmp, self.path)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__) if isinstance(e, SertoolError) else \
        f"{type(e).__name__}: {text[0] if text else ''}"


def run_child(job: ChildJob, console: "Console | None" = None) -> "TrainResult":
    """Train the child (or go on with its earlier run), reporting to its status file and its trial."""
    status = _Status(job)  # first: the live table shows the child as starting while torch loads
    from ..store.layout import StoreLayout
    from ..tracking.tracker import Tracker
    from .config import TrainConfig
    from .runs import continue_child, train
    from .search import TrialReporter

    config = TrainConfig.from_dict(job.config)
    if job.slot is not None:  # the pool pinned CUDA_VISIBLE_DEVICES: its one GPU is "cuda" here
        config = replace(config, device="cpu" if job.slot == "cpu" else "cuda")
    reporter = TrialReporter(job.trial) if job.trial is not None else None
    tags = {SWEEP_KEY_TAG: job.key, LAUNCHER_TAG: job.launcher, LOG_TAG: job.log, JOB_ID_TAG: job.job_id,
            TRIAL_TAG: job.trial.number if job.trial is not None else None}

    def on_epoch(run_id: str | None, stats: "EpochStats") -> str | None:
        status.write(state="running", run_id=run_id, epoch=stats.epoch, loss=stats.loss,
                     dev={k: v for k, v in stats.dev.items() if k in METRIC_NAMES})
        return reporter.on_epoch(run_id, stats) if reporter is not None else None

    try:
        tracker = Tracker(job.tracking_uri or os.environ[URI_ENV], experiment=job.experiment)
        layout = StoreLayout(Path(job.store_root), catalog_file=Path(job.catalog_file) if job.catalog_file else None,
                             embeddings_url=job.embeddings_url)
        if job.resume_run_id:
            result = continue_child(job.resume_run_id, config, layout, tracker, tags=tags, on_epoch=on_epoch,
                                    console=console)
        else:
            result = train(config, layout, tracker, parent_run_id=job.parent_run_id, tags=tags, on_epoch=on_epoch,
                           console=console)
    except KeyboardInterrupt:
        if reporter is not None:
            reporter.failed("stopped", interrupted=True)
        status.write(state="killed")
        raise
    except BaseException as e:
        if reporter is not None:
            reporter.failed(one_line(e))
        status.write(state="failed", error=one_line(e))
        raise
    value = reporter.finished(result) if reporter is not None else None
    status.write(state="pruned" if result.pruned else "finished", run_id=result.run_id, value=value,
                 best={k: v for k, v in result.best.items() if k in METRIC_NAMES},
                 epoch=result.history[-1].epoch if result.history else 0)
    return result


def run_job(job: ChildJob) -> dict[str, Any]:
    """A submitit job's function: the child, with its job's id and log path recorded on its run."""
    import submitit

    env = submitit.JobEnvironment()
    job = replace(job, job_id=str(env.job_id), log=str(env.paths.stdout))
    result = run_child(job)
    return {"run_id": result.run_id, "pruned": result.pruned, "best": result.best}


# -- the pool's child process ----------------------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    """End this process when the sweep that started it ends, however it ends (kill -9 included)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0) == 0  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the sweep died before the line above took effect
        os._exit(EXIT_STOPPED)

    def watch() -> None:
        try:  # the raw fd: a buffered reader's lock held at exit would abort the interpreter
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        if not armed:  # the kernel sent nothing: stop as a signal would have
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE_S)
        os._exit(EXIT_STOPPED)

    threading.Thread(target=watch, name="sweep-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv

    def interrupt(signum: int, frame: Any) -> None:
        launch.stop_once()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # before anything: a stop while importing is a stop too
    if PARENT_ENV in os.environ:
        _die_with_parent(int(os.environ[PARENT_ENV]))
    try:
        run_child(ChildJob.load(Path(args[0])))
    except KeyboardInterrupt:
        return EXIT_STOPPED
    except SertoolError as e:
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
