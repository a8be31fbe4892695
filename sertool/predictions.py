"""The predictions table every run and ensemble writes, and every reader of predictions reads.

One row per clip: `clip_id`, `p_<class>` for the 8 classes (`CLASSES` order), `pred_class` (the argmax's
code), `arousal`, `valence`, `dominance`. Training runs log one per split, ensembles average them,
challenge files are written from them; this class is the only place that knows the columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .labels import ATTRIBUTES, CLASSES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in CLASSES)
COLUMNS: tuple[str, ...] = ("clip_id", *PROB_COLUMNS, "pred_class", *ATTRIBUTES)


class BadPredictions(ValueError):
    """A table that is not a predictions table (missing columns, a clip listed twice)."""


@dataclass
class Predictions:
    """Class probabilities and attributes of a list of clips (rows aligned with `clip_ids`)."""

    clip_ids: list[str]
    probs: "np.ndarray"  # (N, 8)
    attrs: "np.ndarray"  # (N, 3)

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def pred_class(self) -> list[str]:
        """The predicted class code of each clip (argmax of its probabilities)."""
        return [CLASSES[i] for i in self.probs.argmax(axis=1)]

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd

        df = pd.DataFrame({"clip_id": list(self.clip_ids)})
        for j, col in enumerate(PROB_COLUMNS):
            df[col] = self.probs[:, j]
        df["pred_class"] = self.pred_class
        for j, a in enumerate(ATTRIBUTES):
            df[a] = self.attrs[:, j]
        return df

    @classmethod
    def from_frame(cls, df: "pd.DataFrame") -> "Predictions":
        """A logged table back, rows sorted by clip id; `BadPredictions` says what is wrong with it."""
        import numpy as np

        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise BadPredictions(f"lacks column(s) {', '.join(missing)}")
        if df["clip_id"].duplicated().any():
            raise BadPredictions("lists a clip twice")
        df = df.sort_values("clip_id", kind="stable").reset_index(drop=True)
        return cls(
            [str(c) for c in df["clip_id"]],
            df[list(PROB_COLUMNS)].to_numpy(np.float64),
            df[list(ATTRIBUTES)].to_numpy(np.float64),
        )
