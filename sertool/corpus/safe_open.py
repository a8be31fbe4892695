"""Opening a file of a corpus folder without trusting it: no symbolic links unless asked, no FIFOs ever.

A corpus folder is user input like a label file. `FileName` cannot climb out of `Audios/` (`..` is
refused), but a symbolic link can point anywhere on the machine, and the reader would then put another
file's header or text into the catalog (and `embed` would read its samples). A FIFO (or a device)
named `x.wav` blocks the reader forever on open. So every file ingest reads (label files, wavs,
transcripts) is opened here: its metadata is checked first (`lstat`; `stat` through a link only with
`--follow-symlinks`) and anything but a regular file is refused without being opened; the open itself
uses `O_NONBLOCK` and `O_NOFOLLOW` (unless following links) and `fstat` checks the open descriptor, so
a file swapped for a FIFO or a link between the check and the open is refused too, never waited on.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


class Refused(Exception):
    """The path exists but is not a regular file ingest may read; `str()` says why, in a few words."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _refusal(path: Path, *, follow_symlinks: bool) -> str | None:
    """Why `path` must not be opened, from its metadata alone (None: a regular file)."""
    st = os.lstat(path)  # FileNotFoundError: nothing there
    if stat.S_ISLNK(st.st_mode):
        if not follow_symlinks:
            return f"symbolic link to {_link_target(path)} (pass --follow-symlinks to read linked files)"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return f"broken symbolic link to {_link_target(path)}"
    return None if stat.S_ISREG(st.st_mode) else f"not a regular file ({_kind(st.st_mode)})"


def open_regular(path: Path, *, follow_symlinks: bool = False) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (a symbolic link to one only with
    `follow_symlinks`); `Refused` otherwise, without opening it; `FileNotFoundError` if nothing is there.

    Metadata first, so a FIFO is never opened (opening one, even without blocking, would wake a process
    waiting to write into it); the open itself then cannot block or follow a link either, and `fstat`
    on the descriptor catches a file swapped between the check and the open.
    """
    why = _refusal(path, follow_symlinks=follow_symlinks)
    if why:
        raise Refused(why)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Refused(f"symbolic link to {_link_target(path)} (pass --follow-symlinks to read linked files)") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise Refused(f"not a regular file ({_kind(mode)})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def present(path: Path) -> bool:
    """Whether anything is at `path`, a broken link included (`Path.exists` follows links, so a link to
    nothing would look absent and be silently ignored)."""
    return os.path.lexists(path)
