"""The challenge's prediction files: Task 2 `FileName,EmoAct,EmoVal,EmoDom`, Task 1 `FileName,EmoClass`.

Read for an external baseline and for `sertool score` (FileName -> clip_id by dropping `.wav`, as
ingest names clips), checked row by row; written for submissions (one row per clip, FileName with its
`.wav`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInput
from ..labels import ATTRIBUTES, CLASSES, check_attribute
from ..predictions import Predictions

if TYPE_CHECKING:
    import pandas as pd

TASK2_COLUMNS: tuple[str, ...] = ("EmoAct", "EmoVal", "EmoDom")
"""In ATTRIBUTES order: arousal, valence, dominance."""
HEADERS: dict[int, tuple[str, ...]] = {1: ("FileName", "EmoClass"), 2: ("FileName", *TASK2_COLUMNS)}


def clip_id_of(file_name: str) -> str:
    return file_name[: -len(".wav")] if file_name.lower().endswith(".wav") else file_name


@dataclass
class ChallengeFile:
    """A challenge predictions file, checked: one row per clip, values in range."""

    path: Path
    task: int
    clip_ids: list[str]
    lines: list[int]
    """Each row's line in the file (header = line 1), for messages."""
    attrs: np.ndarray | None = None
    """Task 2: (N, 3) arousal, valence, dominance on 1-7."""
    classes: list[str] | None = None
    """Task 1: class codes, one of the 8."""


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInput(path, f"cannot read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:  # a binary or mis-encoded file: name the line it breaks on
        raise BadInput(path, "not UTF-8 text (a challenge CSV file is expected)", row=data[: e.start].count(b"\n") + 1) from None


def read_challenge(path: str | Path, task: int | None = None) -> ChallengeFile:
    """A Task 1 or Task 2 file (`task` None: told by its header). Bad content is `BadInput` naming the
    file, the line and the column: a missing column, a clip listed twice, a value that is no rating on
    1-7 or no class code."""
    path = Path(path)
    rows: list[tuple] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    with io.StringIO(_text(path), newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if task is None:
            task = 1 if "EmoClass" in header and not set(TASK2_COLUMNS) & set(header) else 2
        missing = [c for c in HEADERS[task] if c not in header]
        if missing:
            raise BadInput(path, f"missing column(s) {', '.join(missing)}; expected a Task {task} header "
                           f"{','.join(HEADERS[task])}", row=1, field=missing[0])
        col = {c: header.index(c) for c in HEADERS[task]}
        for line, rec in enumerate(reader, start=2):
            if not any(x.strip() for x in rec):
                continue
            if len(rec) < len(header):
                raise BadInput(path, f"{len(rec)} fields, the header has {len(header)}", row=line)
            name = rec[col["FileName"]].strip()
            if not name:
                raise BadInput(path, "empty file name", row=line, field="FileName")
            clip = clip_id_of(name)
            if clip in seen:
                raise BadInput(path, f"{name!r} listed twice (first on line {seen[clip]})", row=line, field="FileName")
            seen[clip] = line
            rows.append((clip, *(_value(path, line, c, rec[col[c]].strip()) for c in HEADERS[task][1:])))
            lines.append(line)
    if not rows:
        raise BadInput(path, "no predictions in the file")
    ids = [r[0] for r in rows]
    if task == 1:
        return ChallengeFile(path, 1, ids, lines, classes=[r[1] for r in rows])
    return ChallengeFile(path, 2, ids, lines, attrs=np.array([r[1:] for r in rows], dtype=np.float64))


def _value(path: Path, line: int, col: str, text: str) -> float | str:
    if col == "EmoClass":
        code = text.strip().upper()
        if code not in CLASSES:
            raise BadInput(path, f"{text!r} is not one of the 8 class codes ({', '.join(CLASSES)})", row=line, field=col)
        return code
    try:
        v = float(text)
    except ValueError:
        raise BadInput(path, f"not a number: {text!r}", row=line, field=col) from None
    if not math.isfinite(v):
        raise BadInput(path, f"not a finite number: {text!r}", row=line, field=col)
    try:
        check_attribute(v)
    except ValueError as e:
        raise BadInput(path, str(e), row=line, field=col) from None
    return v


def read_task2(path: str | Path) -> "pd.DataFrame":
    """A Task 2 predictions file as a DataFrame (clip_id, arousal, valence, dominance), clip order kept."""
    import pandas as pd

    f = read_challenge(path, task=2)
    return pd.DataFrame({"clip_id": f.clip_ids, **{a: f.attrs[:, j] for j, a in enumerate(ATTRIBUTES)}})


def write_submission(path: str | Path, task: int, file_names: list[str], predictions: Predictions) -> Path:
    """Write the challenge file for `task` from an ensemble's predictions (aligned with `file_names`)."""
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if task == 2:
        df = pd.DataFrame({"FileName": file_names, **{c: predictions.attrs[:, j] for j, c in enumerate(TASK2_COLUMNS)}})
    else:
        df = pd.DataFrame({"FileName": file_names, "EmoClass": predictions.pred_class})
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False, float_format="%.6f")
    tmp.replace(path)
    return path
