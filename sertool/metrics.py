"""The challenge's metrics, computed the official way, and their names.

Official scoring (the organisers' code, msplabresearch/MSP-Podcast_Challenge*): Task 1 is sklearn's
`f1_score(y_true, y_pred, average="macro")` over the clips whose consensus is one of the 8 classes, so
the label set is the classes present in truth or prediction; Task 2 is the CCC of each attribute with
population moments, computed through Pearson's r (a constant series, or a single clip, gives NaN as
theirs does), over every clip rated on it, X (no class plurality) included. `score` applies both rules
to a split; training, ensembles and `sertool score` all call it. Two companions are logged beside
them under their own names, being useful on small or derived dev sets: macro-F1 over all 8 classes
(`f1_macro_8`: an absent class counts 0) and the CCC without X clips (`ccc_<attribute>_no_x`).

The names are an interface: the tracker logs them per epoch as `dev_<name>` and for the selected
checkpoint as `best_dev_<name>`; ensembles choose members by them; users sort and filter runs by them.
One table of short names (`f1`, `ccc`, `valence`, ...) serves `--select`, `--sort` and the runs table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .labels import ATTRIBUTES, CLASSES

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .labels import Targets

F1 = "f1_macro"
CCC: dict[str, str] = {a: f"ccc_{a}" for a in ATTRIBUTES} | {"mean": "ccc_mean"}
"""Attribute (or `mean`) -> metric name: ccc_arousal, ccc_valence, ccc_dominance, ccc_mean."""
METRIC_NAMES: tuple[str, ...] = (F1, *CCC.values())
"""The official figures: f1_macro, ccc_arousal, ccc_valence, ccc_dominance, ccc_mean."""
F1_8 = "f1_macro_8"
CCC_NO_X: dict[str, str] = {a: f"ccc_{a}_no_x" for a in ATTRIBUTES} | {"mean": "ccc_mean_no_x"}
COMPANION_NAMES: tuple[str, ...] = (F1_8, *CCC_NO_X.values())
"""Logged beside the official figures: macro-F1 over all 8 classes, CCC without X clips."""

ALIASES: dict[str, str] = {
    "f1": F1, "ccc": CCC["mean"], **{a: CCC[a] for a in ATTRIBUTES}, **{m: m for m in METRIC_NAMES},
}
"""Short names users type -> metric name (every metric name is also accepted as itself)."""

SELECT_CHOICES: tuple[str, ...] = ("f1", "ccc", *(CCC[a] for a in ATTRIBUTES))
"""What `--select` offers: the dev metric that keeps a run's checkpoint."""

RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("F1", F1), ("Aro", CCC["arousal"]), ("Val", CCC["valence"]), ("Dom", CCC["dominance"]),
    ("CCC mean", CCC["mean"]),
)
"""(column title, metric) of the runs table, in display order."""

DEV_PREFIX = "dev_"
BEST_PREFIX = "best_dev_"


def metric_name(alias: str) -> str:
    """The metric an alias names (`ccc_valence`, `valence`, `f1`); unknown names raise ValueError."""
    try:
        return ALIASES[alias]
    except KeyError:
        raise ValueError(f"unknown metric {alias!r} (known: {', '.join(ALIASES)})") from None


def dev(metric: str) -> str:
    """Per-epoch name: `dev_ccc_mean`."""
    return DEV_PREFIX + metric


def best(metric: str) -> str:
    """Name of the selected checkpoint's figure: `best_dev_ccc_mean`."""
    return BEST_PREFIX + metric


BEST_METRICS: tuple[str, ...] = tuple(best(m) for m in METRIC_NAMES)


def tracked_name(name: str) -> str:
    """What `--sort` means: an alias of a metric (`ccc_valence`, `f1`) names its `best_dev_` figure;
    anything else is taken as a tracked metric name as it is."""
    return best(ALIASES[name]) if name in ALIASES else name


def ccc(y_true: "ArrayLike", y_pred: "ArrayLike") -> float:
    """Concordance correlation coefficient as the official code computes it: population moments,
    `2 r s_t s_p / (var_t + var_p + (mean_t - mean_p)^2)` with Pearson's r, so that a constant series
    (truth or prediction), a single clip or no clip at all gives NaN, as theirs does."""
    import numpy as np

    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"ccc needs two series of equal length, got {t.size} and {p.size}")
    if t.size == 0:
        return float("nan")
    dt, dp = t - t.mean(), p - p.mean()
    spread = np.sqrt(np.sum(dt**2)) * np.sqrt(np.sum(dp**2))
    if spread == 0:
        return float("nan")
    r = np.sum(dt * dp) / spread
    return float(2 * r * t.std() * p.std() / (t.var() + p.var() + (t.mean() - p.mean()) ** 2))


def f1_macro(y_true: "ArrayLike", y_pred: "ArrayLike") -> float:
    """Official Task 1 macro-F1 of class indices: averaged over the labels present in truth or
    prediction (sklearn's default); NaN without any clip. The caller passes the scored clips only."""
    import numpy as np
    from sklearn.metrics import f1_score

    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.size == 0:
        return float("nan")
    return float(f1_score(t, p, average="macro", zero_division=0))


def f1_macro_8(y_true: "ArrayLike", y_pred: "ArrayLike") -> float:
    """Macro-F1 over all 8 classes: a class never true nor predicted counts as F1 0 (a small dev set
    that misses a class scores lower than officially, but comparably across runs)."""
    import numpy as np
    from sklearn.metrics import f1_score

    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.size == 0:
        return float("nan")
    return float(f1_score(t, p, average="macro", labels=list(range(len(CLASSES))), zero_division=0))


def _mean(values: list[float]) -> float:
    import numpy as np

    return float(np.mean(values))  # NaN when any attribute is NaN, as the mean of the official three


def score(targets: "Targets", class_pred: "ArrayLike", attrs: "ArrayLike") -> dict[str, float]:
    """Every figure of one split: the official ones (`METRIC_NAMES`) and their companions
    (`COMPANION_NAMES`), from predicted class indices (N,) and attributes (N, 3) in the targets' order."""
    import numpy as np

    pred = np.asarray(class_pred).ravel()
    a = np.asarray(attrs, dtype=np.float64).reshape(-1, len(ATTRIBUTES))
    rows = targets.class_rows
    out = {F1: f1_macro(targets.class_target[rows], pred[rows]),
           F1_8: f1_macro_8(targets.class_target[rows], pred[rows])}
    for j, name in enumerate(ATTRIBUTES):
        for names, exclude_x in ((CCC, False), (CCC_NO_X, True)):
            keep = targets.attribute_rows(j, exclude_x=exclude_x)
            out[names[name]] = ccc(targets.attrs[keep, j], a[keep, j])
    out[CCC["mean"]] = _mean([out[CCC[x]] for x in ATTRIBUTES])
    out[CCC_NO_X["mean"]] = _mean([out[CCC_NO_X[x]] for x in ATTRIBUTES])
    return out


# -- ASR quality --------------------------------------------------------------------------------------

ASR_NORMALISATION = ("lower case", "punctuation removed (Unicode P* characters)", "runs of spaces made one",
                     "leading and trailing spaces stripped")
"""What both texts go through before they are compared, in this order (jiwer's `ToLowerCase`,
`RemovePunctuation`, `RemoveMultipleSpaces`, `Strip`): ASR quality is about the words, not the corpus's
casing or punctuation conventions. Words are then split on spaces (WER), or the text read as characters,
spaces included (CER). References empty after normalisation have no words to miss and are left out."""


def _asr_transform(unit: str):
    import jiwer

    steps = [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    last = jiwer.ReduceToListOfListOfWords() if unit == "words" else jiwer.ReduceToListOfListOfChars()
    return jiwer.Compose([*steps, last])


def normalise_transcript(text: str) -> str:
    """A text as ASR quality compares it (`ASR_NORMALISATION`)."""
    import jiwer

    return jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip()])(text)


def error_rates(references: "list[str]", hypotheses: "list[str]") -> dict[str, float]:
    """Corpus-level word and character error rates of `hypotheses` against `references` (jiwer: all
    edits over all reference words / characters, not a mean of per-clip rates), after
    `ASR_NORMALISATION`; pairs whose reference is empty after it are left out (`n_pairs` counts the rest).
    NaN rates when no pair is left."""
    import jiwer

    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if normalise_transcript(r)]
    if not pairs:
        return {"wer": float("nan"), "cer": float("nan"), "n_pairs": 0}
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return {
        "wer": float(jiwer.wer(refs, hyps, reference_transform=_asr_transform("words"),
                               hypothesis_transform=_asr_transform("words"))),
        "cer": float(jiwer.cer(refs, hyps, reference_transform=_asr_transform("chars"),
                               hypothesis_transform=_asr_transform("chars"))),
        "n_pairs": len(pairs),
    }
