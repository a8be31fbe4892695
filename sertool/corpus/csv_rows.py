"""Label CSV files read row by row, with 1-based line numbers, and the checks of their cells.

Every problem is a `BadInput` naming the file, the line (header = line 1) and the column, so the user
can go straight to it; nothing here knows which corpus the file belongs to.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import BadInput
from ..labels import UnknownClass, check_attribute, class_code

AUDIO_DIR = "Audios"


class CsvFile:
    """A label CSV read row by row, with 1-based line numbers and column checks that name the file."""

    def __init__(self, path: Path, shown: str) -> None:
        self.path, self.shown = path, shown
        try:
            self._fh = path.open(newline="", encoding="utf-8-sig")
        except OSError as e:
            raise BadInput(shown, f"cannot read: {e.strerror or e}") from None
        self._reader = csv.reader(self._fh)
        try:
            header = next(self._reader, None)
        except UnicodeDecodeError:
            self._fh.close()
            raise BadInput(shown, "not UTF-8 text", row=1) from None
        except csv.Error as e:
            self._fh.close()
            raise BadInput(shown, f"unreadable header: {e}", row=1) from None
        if not header or not any(h.strip() for h in header):
            self._fh.close()
            raise BadInput(shown, "empty file (expected a header line)", row=1)
        self.header = [h.strip() for h in header]
        self.index = {h: i for i, h in enumerate(self.header)}

    def require(self, columns: Sequence[str]) -> None:
        for col in columns:
            if col not in self.index:
                near = difflib.get_close_matches(col, self.header, n=1)
                hint = f" (found {near[0]!r}: misspelled?)" if near else f" (header: {','.join(self.header)})"
                self._fh.close()
                raise BadInput(self.shown, f"missing column{hint}", row=1, field=col)

    def close(self) -> None:
        self._fh.close()

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) for every non-blank data row."""
        try:
            for cells in self._reader:
                if not cells or not any(c.strip() for c in cells):
                    continue
                yield self._reader.line_num, cells
        except UnicodeDecodeError:
            raise BadInput(self.shown, "not UTF-8 text", row=self._reader.line_num + 1) from None
        except csv.Error as e:
            raise BadInput(self.shown, f"malformed CSV: {e}", row=self._reader.line_num) from None
        finally:
            self._fh.close()

    def cell(self, cells: list[str], col: str) -> str:
        i = self.index[col]
        return cells[i].strip() if i < len(cells) else ""


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
