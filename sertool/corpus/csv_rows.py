"""Label CSV files read row by row, with 1-based line numbers, and the checks of their cells.

Every problem is a `BadInput` naming the file, the line (header = line 1) and the column, so the user
can go straight to it; nothing here knows which corpus the file belongs to.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import BadInput
from ..labels import UnknownClass, check_attribute, class_code
from .safe_open import Refused, open_regular

AUDIO_DIR = "Audios"


class CsvFile:
    """A label CSV read row by row, with 1-based line numbers and column checks that name the file."""

    def __init__(self, path: Path, shown: str, *, follow_symlinks: bool = False) -> None:
        self.path, self.shown, self._follow = path, shown, follow_symlinks
        try:
            raw = open_regular(path, follow_symlinks=follow_symlinks)
        except Refused as e:
            raise BadInput(shown, str(e)) from None
        except OSError as e:
            raise BadInput(shown, f"cannot read: {e.strerror or e}") from None
        self._fh = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._fh)
        try:
            header = next(self._reader, None)
        except UnicodeDecodeError:
            self._fh.close()
            raise self._not_utf8() from None
        except csv.Error as e:
            self._fh.close()
            raise BadInput(shown, f"unreadable header: {e}", row=1) from None
        if not header or not any(h.strip() for h in header):
            self._fh.close()
            raise BadInput(shown, "empty file (expected a header line)", row=1)
        self.header = [h.strip() for h in header]
        self.index = {h: i for i, h in enumerate(self.header)}

    def require(self, columns: Sequence[str]) -> None:
        """Every column must be in the header exactly once: a column given twice would silently be
        read from one of its copies."""
        for col in columns:
            if col not in self.index:
                near = difflib.get_close_matches(col, self.header, n=1)
                hint = f" (found {near[0]!r}: misspelled?)" if near else f" (header: {','.join(self.header)})"
                self._fh.close()
                raise BadInput(self.shown, f"missing column{hint}", row=1, field=col)
            where = [i + 1 for i, h in enumerate(self.header) if h == col]
            if len(where) > 1:
                self._fh.close()
                raise BadInput(self.shown, f"column given twice in the header (columns {' and '.join(map(str, where))}): "
                               "keep one", row=1, field=col)

    def _not_utf8(self) -> BadInput:
        """The error for bytes that are not UTF-8, at their real line and column.

        The text stream decodes ahead in chunks of several KB, so the exception surfaces at whatever
        line the reader had reached (often the header), not where the bad bytes are; the file is read
        again as bytes, on this error path only, to find them.
        """
        with open_regular(self.path, follow_symlinks=self._follow) as fh:
            data = fh.read()
        body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            lines = body.split(b"\n")
            line = body.count(b"\n", 0, e.start) + 1
            bad = repr(body[e.start:e.end])[2:-1]
            field = None
            if line > 1:
                header = [h.strip() for h in _cells(lines[0])]
                i = next((i for i, c in enumerate(_cells(lines[line - 1])) if "\ufffd" in c), None)
                field = header[i] if i is not None and i < len(header) else None
            return BadInput(self.shown, f"not UTF-8 text (bytes {bad})", row=line, field=field)
        return BadInput(self.shown, "not UTF-8 text")

    def close(self) -> None:
        self._fh.close()

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) for every non-blank data row. A file with a header and no rows is bad
        input: read as "no labels", it would silently remove every label of the corpus on a re-ingest."""
        n = 0
        try:
            for cells in self._reader:
                if not cells or not any(c.strip() for c in cells):
                    continue
                n += 1
                yield self._reader.line_num, cells
        except UnicodeDecodeError:
            raise self._not_utf8() from None
        except csv.Error as e:
            raise BadInput(self.shown, f"malformed CSV: {e}", row=self._reader.line_num) from None
        finally:
            self._fh.close()
        if n == 0:
            raise BadInput(self.shown, "no data rows below the header (an empty label file would drop every label)", row=1)

    def cell(self, cells: list[str], col: str) -> str:
        i = self.index[col]
        return cells[i].strip() if i < len(cells) else ""


def _cells(line: bytes) -> list[str]:
    """One physical CSV line's cells, undecodable bytes shown as U+FFFD (to find the one holding them)."""
    try:
        return next(csv.reader([line.decode("utf-8", errors="replace")]), [])
    except csv.Error:
        return []


def required_cell(f: CsvFile, line: int, col: str, value: str) -> str:
    if not value:
        raise BadInput(f.shown, "missing value", row=line, field=col)
    return value


def rating_cell(shown: str, line: int, col: str, value: str) -> float | None:
    if not value:
        return None
    try:
        x = float(value)
    except ValueError:
        raise BadInput(shown, f"not a number: {value!r}", row=line, field=col) from None
    try:
        return check_attribute(x)
    except ValueError as e:
        raise BadInput(shown, str(e), row=line, field=col) from None


def emotion_cell(shown: str, line: int, col: str, value: str, *, allow_x: bool) -> str:
    try:
        return class_code(value, allow_x=allow_x)
    except UnknownClass as e:
        raise BadInput(shown, str(e), row=line, field=col) from None


def clip_id_cell(shown: str, line: int, col: str, file_name: str) -> str:
    """clip_id = FileName without `.wav`; the name must stay inside the flat Audios/ folder."""
    if not file_name:
        raise BadInput(shown, "missing value", row=line, field=col)
    if ".." in re.split(r"[\\/]", file_name) or file_name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", file_name):
        raise BadInput(shown, f"{file_name!r} escapes the corpus folder", row=line, field=col)
    if "/" in file_name or "\\" in file_name:
        raise BadInput(shown, f"{file_name!r} must be a file name inside {AUDIO_DIR}/ (a flat folder)", row=line, field=col)
    return file_name[:-4] if file_name.lower().endswith(".wav") else file_name
