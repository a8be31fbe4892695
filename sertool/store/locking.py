"""Who may use the catalog when, and what the disk said when it refused a write.

DuckDB lets one process open a file read-write and *any* open (read-only ones included) by another
process blocks that open, so the catalog cannot be held for a whole run if readers are to work
meanwhile. Two advisory locks of our own (flock, beside the catalog) coordinate instead:

* ``<catalog>.lock``, the writer lock: a writer (embed, ingest, transcribe, merge, split, an
  `embed --part` worker on its segment) holds it exclusively for its whole run, so "one writer per
  store" holds even while the writer does not have the DuckDB file open (`WriterLock`);
* ``<catalog>.readers``, the readers' raised hands: a reader holds it shared while it waits for or
  reads the catalog; a long-running writer probes it and lets go of the DuckDB file when a hand is
  up (`ReaderFlag`, `ReadersWatch`; the policy is `catalog.Catalog`'s).

flock belongs to the open file, so a lock dies with its process (a kill -9 frees it) and is never
inherited across exec. The files are never deleted while a store is in use: deleting a lock file
others may have opened lets two processes each lock a different file of the same name.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreInUse, StoreUnwritable

LOCK_SUFFIX = ".lock"
READERS_SUFFIX = ".readers"

_UNWRITABLE = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this filesystem or the process's file-size limit",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
"""errno -> what the user reads: the environment refused a write, nothing is wrong with the data."""

_DUCKDB_UNWRITABLE = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "file too large": errno.EFBIG,
    "read-only file system": errno.EROFS,
    "permission denied": errno.EACCES,
    "operation not permitted": errno.EPERM,
}
"""DuckDB reports the OS error as text inside an IOException; these phrases map back to an errno."""


def unwritable_message(path: str | Path, errno_: int) -> str:
    """One line for a write the environment refused; says that nothing was lost and how to go on."""
    why = _UNWRITABLE[errno_]
    if errno_ in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some space (or raise the limit) and run the command again: it resumes after the last commit"
    else:
        hint = "the store cannot be written here; use a writable copy (reading it works as it is)"
    return f"{path}: {why}; {hint}"


def as_unwritable(e: BaseException, path: str | Path) -> StoreUnwritable | None:
    """`StoreUnwritable` for an OSError or DuckDB IOException that means "the disk refused", else None."""
    if isinstance(e, OSError) and e.errno in _UNWRITABLE:
        return StoreUnwritable(unwritable_message(getattr(e, "filename", None) or path, e.errno))
    text = str(e).lower()
    if type(e).__module__.startswith("duckdb") or type(e).__module__ == "_duckdb":
        for phrase, code in _DUCKDB_UNWRITABLE.items():
            if phrase in text:
                return StoreUnwritable(unwritable_message(path, code))
    return None


def is_lock_conflict(e: BaseException) -> bool:
    """DuckDB's "the file is open elsewhere" errors (their text is the only signal it gives): another
    process has it, or this process has it open in the other mode (a reader beside a writer)."""
    text = str(e)
    return "Could not set lock" in text or "Conflicting lock" in text or "different configuration" in text


class ReaderFlag:
    """A reader's raised hand: a shared flock on ``<catalog>.readers``, held while the reader waits for
    the catalog and while it has it open. A writer that keeps the catalog between commits lets go
    within `catalog.WATCH_S` of seeing a hand (`ReadersWatch`). Where the file is missing no
    long-running writer has run, so there is nobody to ask."""

    def __init__(self, catalog: str | Path) -> None:
        self.path = Path(str(catalog) + READERS_SUFFIX)
        self.fd: int | None = None

    def raise_hand(self) -> bool:
        """True once the hand is up. The writer makes the file; a reader never writes the store, so
        it tries again on each retry instead (a writer that starts meanwhile has made it by then)."""
        if self.fd is None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return False
            fcntl.flock(fd, fcntl.LOCK_SH)  # a writer holds it exclusively only for a probe (microseconds)
            self.fd = fd
        return True

    def lower(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ReadersWatch:
    """The writer's side of `ReaderFlag`: are readers waiting for (or holding) the catalog?"""

    def __init__(self, catalog: str | Path) -> None:
        path = Path(str(catalog) + READERS_SUFFIX)
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise (as_unwritable(OSError(e.errno, e.strerror), catalog) or e) from None

    def readers(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class _Held:
    fd: int
    count: int


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


def lock_path(catalog: str | Path) -> Path:
    return Path(str(catalog) + LOCK_SUFFIX)


class WriterLock:
    """The store's writer lock, taken at once or refused with `StoreInUse` (never waited for: two
    writers of one store would otherwise both run, one after the other, on stale plans).

    Reentrant within a process (an `embed --part` worker holds its segment's lock and then opens the
    segment's catalog, which takes it again), so nesting costs nothing and releases in order.
    """

    def __init__(self, catalog: str | Path, *, what: str | None = None) -> None:
        self.path = lock_path(catalog)
        self._what = what
        self._key: str | None = None

    def acquire(self) -> "WriterLock":
        if self._key is not None:
            raise RuntimeError(f"{self.path}: this WriterLock is already held")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise (as_unwritable(OSError(e.errno, e.strerror), self.path.parent) or e) from None
        key = os.path.realpath(self.path)
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                held.count += 1
                self._key = key
                return self
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:  # named as the catalog: the store is what cannot be written
                raise (as_unwritable(OSError(e.errno, e.strerror), self.path.with_suffix("")) or e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise StoreInUse(self._what or (
                    f"{self.path.with_suffix('')}: store is in use by another sertool process{holder}, which "
                    "writes it (one writer at a time; readers are never refused); wait for it to finish")) from None
            _write_holder(fd)
            _HELD[key] = _Held(fd, 1)
            self._key = key
            return self

    @property
    def held(self) -> bool:
        return self._key is not None

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is None:
                return
            held.count -= 1
            if held.count == 0:
                del _HELD[key]
                os.close(held.fd)  # closing the file drops the flock

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _write_holder(fd: int) -> None:
    """Our pid and command in the lock file, so that a refused writer can say who holds the store."""
    try:
        os.ftruncate(fd, 0)
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
        os.pwrite(fd, f"{os.getpid()} {command[:200]}\n".encode(), 0)
    except OSError:
        pass  # informative only


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    pid, _, cmd = text.partition(" ")
    return f" (pid {pid}: {cmd})" if pid.isdigit() and cmd else (f" (pid {pid})" if pid.isdigit() else "")
