"""The challenge's prediction files: Task 2 `FileName,EmoAct,EmoVal,EmoDom`, Task 1 `FileName,EmoClass`.

Read for an external baseline (FileName -> clip_id by dropping `.wav`, as ingest names clips), written
for submissions (one row per clip of the test split, FileName with its `.wav`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..labels import ATTRIBUTES
from ..predictions import Predictions

if TYPE_CHECKING:
    import pandas as pd

TASK2_COLUMNS: tuple[str, ...] = ("EmoAct", "EmoVal", "EmoDom")
"""In ATTRIBUTES order: arousal, valence, dominance."""
HEADERS: dict[int, tuple[str, ...]] = {1: ("FileName", "EmoClass"), 2: ("FileName", *TASK2_COLUMNS)}


def clip_id_of(file_name: str) -> str:
    return file_name[: -len(".wav")] if file_name.lower().endswith(".wav") else file_name


def read_task2(path: str | Path) -> "pd.DataFrame":
    """A Task 2 predictions file as a DataFrame (clip_id, arousal, valence, dominance), clip order kept.

    Bad content is `BadInput` naming the file, the line and the column.
    """
    import pandas as pd

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInput(path, f"cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:  # a binary or mis-encoded file: name the line it breaks on
        raise BadInput(path, "not UTF-8 text (a challenge CSV file is expected)", row=data[: e.start].count(b"\n") + 1) from None
    rows: list[tuple[str, float, float, float]] = []
    seen: dict[str, int] = {}
    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in HEADERS[2] if c not in header]
        if missing:
            raise BadInput(path, f"missing column(s) {', '.join(missing)}; expected header "
                           f"{','.join(HEADERS[2])}", row=1, field=missing[0])
        col = {c: header.index(c) for c in HEADERS[2]}
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
            values = []
            for c in TASK2_COLUMNS:
                text = rec[col[c]].strip()
                try:
                    v = float(text)
                except ValueError:
                    raise BadInput(path, f"not a number: {text!r}", row=line, field=c) from None
                if not math.isfinite(v):
                    raise BadInput(path, f"not a finite number: {text!r}", row=line, field=c)
                values.append(v)
            rows.append((clip, *values))
    if not rows:
        raise BadInput(path, "no predictions in the file")
    return pd.DataFrame(rows, columns=["clip_id", *ATTRIBUTES])


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
