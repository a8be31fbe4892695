"""The DuckDB catalog: corpus metadata, labels, votes, split schemes and the embedding index.

The table and column names here are a public interface (users query them with `sertool store query`
and with DuckDB itself); store/README.md documents every column.

Concurrency. DuckDB lets one process open the file read-write, and any other open, read-only or
not, blocks that open, so neither side may keep it while the other needs it:

* every writer first takes the store's writer lock (`locking.WriterLock`), which keeps a second
  writer out for its whole run (`StoreInUse` at once);
* a reader raises its hand (`locking.ReaderFlag`) while it waits for and holds the file, and opens
  it read-only, retrying while a writer has it (up to `READ_WAIT_S`);
* a long-running writer (embed, transcribe, merge: `hold=False`) keeps the file between commits
  only while no hand is up: a watcher thread closes it within `WATCH_S` of seeing one (after the
  commit in progress, if any), and the writer reopens it for its next commit once the readers are
  done (waiting up to `WRITE_WAIT_S`). So nobody reads while nobody asks, and the open/close cost
  (~25 ms each: DuckDB builds a database instance per open) is paid only while someone reads.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import NotFound, SertoolError, StoreInUse
from .locking import ReaderFlag, ReadersWatch, WriterLock, as_unwritable, is_lock_conflict
from .schema import migrate

# The corpus's own splits form this scheme; `splits` holds only derived schemes.
CORPUS_SCHEME = "corpus"


READ_WAIT_S = 30.0
"""How long a reader waits for the file: a writer lets go within `WATCH_S` plus one commit, unless it
is a short-lived one holding it throughout (ingest, store split: seconds)."""
WRITE_WAIT_S = 60.0
"""How long a writer waits for readers to close the file (each holds it for one query)."""
WATCH_S = 0.05
"""How often a `hold=False` writer looks for raised hands while it keeps the file between commits."""


class Catalog:
    """One connection to the catalog. Use as a context manager; writes go through `transaction()`.

    `read_only=False` takes the store's writer lock until `close()` (`StoreInUse` if another
    process has it). `hold=False` (long-running writers) keeps the lock but the DuckDB file only
    while no reader asks for it (see the module docstring). `wait` bounds the retries while another
    process has the file open (default `READ_WAIT_S` / `WRITE_WAIT_S`); `config` goes to DuckDB.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        hold: bool = True,
        wait: float | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.hold = hold
        if read_only and not hold:
            raise ValueError("hold=False is for writers; a reader holds its connection only as long as it is used")
        self._wait = wait if wait is not None else (READ_WAIT_S if read_only else WRITE_WAIT_S)
        self._config = config or {}
        self._con: Any = None
        self._lock: WriterLock | None = None
        self._flag: ReaderFlag | None = None
        self._watch: ReadersWatch | None = None
        self._mutex = threading.RLock()
        self._depth = 0
        self._schema_done = read_only
        self._deferred: BaseException | None = None
        if read_only and not self.path.exists():
            raise NotFound(f"{self.path}: no catalog here (run `sertool ingest` first)")
        try:
            if read_only:
                self._flag = ReaderFlag(self.path)
            else:
                self._lock = WriterLock(self.path).acquire()  # creates the folder; refuses a second writer
                if not hold:
                    self._watch = ReadersWatch(self.path)
            with self._use():
                pass  # open now: a file we cannot open fails here, not mid-run
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------------
    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception:
            pass  # the error that ended the block is the one to report (a failed close often follows it)

    @property
    def con(self) -> Any:
        """The DuckDB connection (for `register`); with `hold=False` only inside `transaction()`."""
        if not self.hold and self._depth == 0:
            raise RuntimeError("Catalog(hold=False): use .con inside transaction(), where the file is open")
        return self._con

    def close(self) -> None:
        with self._mutex:
            try:
                if self._con is not None:
                    self._disconnect()
            finally:
                if self._flag is not None:
                    self._flag.lower()
                    self._flag = None
                if self._watch is not None:
                    self._watch.close()
                    self._watch = None
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None
        if self._deferred is not None:
            e, self._deferred = self._deferred, None
            raise e

    def _connect(self) -> None:
        import duckdb

        deadline = time.monotonic() + self._wait
        pause = 0.002
        while True:
            if self._flag is not None:
                self._flag.raise_hand()  # again each round: the writer may have made the file since
            if self._watch is not None:  # readers at work: wait for their hands to go down, then try
                while self._watch.readers() and time.monotonic() < deadline:
                    time.sleep(0.002)
            try:
                con = duckdb.connect(str(self.path), read_only=self.read_only, config=self._config)
                break
            except duckdb.Error as e:
                if not is_lock_conflict(e):
                    if self.read_only and isinstance(e, duckdb.IOException):  # unreadable, not unwritable
                        raise SertoolError(f"{self.path}: cannot read the catalog: {str(e).splitlines()[0]}") from None
                    raise as_unwritable(e, self.path) or e from None
                if time.monotonic() >= deadline:
                    pid = re.search(r"PID (\d+)", str(e))
                    raise StoreInUse(
                        f"{self.path}: store is in use: another process{f' (pid {pid.group(1)})' if pid else ''} has "
                        f"kept the catalog open for more than {self._wait:g} s; try again when it is done"
                    ) from None
                time.sleep(pause * random.uniform(0.5, 1.5))  # jitter: two waiters do not retry in lockstep
                pause = min(pause * 2, 0.02)
        if not self._schema_done:
            try:
                migrate(con)
            except duckdb.Error as e:
                con.close()
                raise as_unwritable(e, self.path) or e from None
            self._schema_done = True
        self._con = con
        if self._watch is not None:
            threading.Thread(target=self._watch_readers, args=(con,), daemon=True, name="sertool-catalog").start()

    def _disconnect(self) -> None:
        con, self._con = self._con, None
        try:
            con.close()  # a writer's close checkpoints the WAL into the file
        except Exception as e:
            raise as_unwritable(e, self.path) or e from None

    @contextmanager
    def _use(self) -> Iterator[Any]:
        """The open connection for one statement or transaction (opened first if need be)."""
        with self._mutex:
            if self._deferred is not None:
                e, self._deferred = self._deferred, None
                raise e
            if self._con is None:
                self._connect()
            self._depth += 1
            try:
                yield self._con
            except Exception as e:
                mapped = as_unwritable(e, self.path)
                if mapped is None:
                    raise
                raise mapped from None
            finally:
                self._depth -= 1

    def _watch_readers(self, con: Any) -> None:
        """Thread of a `hold=False` catalog while `con` is open: close it when a reader raises its hand."""
        while True:
            time.sleep(WATCH_S)
            with self._mutex:  # a commit in progress holds the mutex: it finishes first
                if self._con is not con:
                    return
                if self._depth or self._watch is None or not self._watch.readers():
                    continue
                try:
                    self._disconnect()
                except BaseException as e:  # e.g. a full disk at the checkpoint: raised at the next use
                    self._deferred = e
                return

    @contextmanager
    def transaction(self) -> Iterator["Catalog"]:
        """All or nothing: a failure anywhere inside leaves the catalog exactly as it was."""
        import duckdb

        with self._use() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield self
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass  # an I/O error already ended (and invalidated) the transaction
                raise
            try:
                con.execute("COMMIT")
            except duckdb.Error:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run one statement and fetch everything (DuckDB 2.0 blocks the connection on an unfinished result)."""
        with self._use() as con:
            cur = con.execute(sql, params) if params is not None else con.execute(sql)
            return cur.fetchall() if cur.description is not None else []

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a query."""
        with self._use() as con:
            cur = con.execute(sql, params) if params is not None else con.execute(sql)
            if cur.description is None:
                return [], []
            cols = [d[0] for d in cur.description]
            return cols, cur.fetchall()

    def df(self, sql: str, params: Sequence[Any] | None = None):
        """A query as a pandas DataFrame."""
        with self._use() as con:
            cur = con.execute(sql, params) if params is not None else con.execute(sql)
            return cur.df()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    def columns(self, table: str) -> set[str]:
        """The table's column names: a reader of a catalog no writer has migrated yet (read-only opens
        never migrate) asks before it reads a column added since (`MIGRATIONS`)."""
        return {r[0] for r in self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])}
