"""Errors a user can act on.

Every error that reaches the CLI as a `SertoolError` is printed as one line on stderr and exits with
code 2; anything else is a bug and keeps its traceback. Bad input names the file, row and field so the
user can go straight to it.
"""

from __future__ import annotations

from pathlib import Path


class SertoolError(Exception):
    """An error caused by the user's input or environment, reported as one line (exit code 2)."""

    exit_code: int = 2


class BadInput(SertoolError):
    """A file's content is wrong. Renders as ``FILE:ROW: FIELD: message`` (row 1 is the header line)."""

    def __init__(
        self,
        file: str | Path,
        message: str,
        *,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file)
        self.row = row
        self.field = field
        self.message = message
        where = self.file if row is None else f"{self.file}:{row}"
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class StoreInUse(SertoolError):
    """Another process holds the catalog for writing (DuckDB allows one read-write process)."""


class StoreUnwritable(SertoolError):
    """The store's disk refuses a write: full (ENOSPC, a quota, a file-size limit), read-only, or not ours.
    Raised before anything is committed, so the store stays as it was and a rerun resumes."""


class StoreMismatch(SertoolError):
    """Data of incompatible provenance would be mixed (e.g. two encoder fingerprints under one name)."""


class StoreCorrupt(SertoolError):
    """Stored frames do not match the checksum their catalog row was committed with (a flipped byte, a
    truncated or replaced shard file): they are not what was written. `sertool store verify` says where."""


class ShrinkRefused(SertoolError):
    """A re-ingest would remove a large share of what the catalog holds for a corpus (a label file
    emptied or moved, audio on a disk that is not mounted): refused unless the user allows it.
    `removals` maps each table over the threshold to (rows removed, rows held)."""

    def __init__(self, message: str, removals: dict[str, tuple[int, int]]) -> None:
        self.removals = removals
        super().__init__(message)


class NotFound(SertoolError):
    """A named thing (store, run, split scheme, encoder) does not exist."""


class InvalidOption(SertoolError):
    """An option's value that no run can use. `option` names it as the library knows it
    (`batch_seconds`); the CLI shows it as the flag the user typed (`--batch-seconds`)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")
