"""Which process this is: torchrun's RANK / WORLD_SIZE / LOCAL_RANK, read in one place, and this
process's identity (host, pid, start time) as other processes can check on it.

Training (DDP ranks), embedding in parts (one part per rank) and tracking (only rank 0 writes) ask
here; a plain run is rank 0 of 1. Runs record `identity()` so that a later `sertool` can tell a run
whose process was killed (kill -9, a lost node) from one still training.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Launch:
    """The rank layout torchrun gave this process (rank 0 of 1 when run plainly)."""
    return Launch(
        rank=int(os.environ.get("RANK", "0")),
        world=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


# -- this process, as other processes can check on it ------------------------------------------------

def _start_ticks(pid: int) -> str | None:
    """When the process started (clock ticks since boot, from /proc): tells a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat, counting after the command name


def identity() -> dict[str, str]:
    """Host, pid and start time of this process: what a run records so that a later process can tell
    whether the one that started it is still alive."""
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "pid_start": _start_ticks(os.getpid()) or ""}


def alive(host: str, pid: str, pid_start: str = "") -> bool | None:
    """Whether the process `identity()` described is still running; None when it ran on another host."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    start = _start_ticks(int(pid))
    return not (pid_start and start is not None and start != pid_start)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's or `kill`'s polite stop) ends the work like Ctrl-C does, so whatever the
    work holds (a tracked run: marked KILLED) is closed properly. Only the main thread can install it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        stop_once()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:  # the work inside has closed what it held by now: the caller's handler comes back
        signal.signal(signal.SIGTERM, previous)


def stop_once() -> None:
    """Ignore any further SIGTERM: the first one started the cleanup (a run marked KILLED), and a second
    (a scheduler's repeat; a sweep child gets its parent-death signal and may get another) must not
    interrupt that cleanup halfway, leaving the run RUNNING. Main thread only."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
