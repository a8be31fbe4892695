"""`sertool ensemble`: choose members on dev, average, log the ensemble as a run, write the submission.

    candidates (run search) -> checks (fingerprints, clip sets) -> dev truth (catalog)
    -> per target: top-K or greedy on dev -> averaged predictions of every split
    -> MLflow run (kind ensemble, same artifact layout as a training run) + challenge file

Task 2 selects separately for each attribute by dev CCC (the paper's best-per-attribute ensemble);
Task 1 selects by dev macro-F1 on averaged class probabilities. Test splits never influence a choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInput, InvalidOption, NotFound
from ..labels import ATTRIBUTES
from ..metrics import CCC, F1, best, dev
from ..predictions import Predictions
from ..store.catalog import Catalog
from ..store.clips import clip_paths, clips_in_split
from ..store.layout import StoreLayout
from ..store.splits import DEV
from ..tracking.names import ENSEMBLE_SPEC, SPLITS_TAG, SUBMISSION_DIR, TASK_TAG, encoder_tag
from .challenge import read_task2, write_submission
from .members import Candidate, check_clip_sets, check_fingerprints, find_candidates, load_candidates
from .select import Selection, greedy, top_k
from .spec import BASELINE, CLASS, TARGETS, EnsembleSpec, blend
from .truth import Truth, load_truth

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from ..tracking.tracker import Tracker

SUBMISSIONS_DIR = "submissions"


@dataclass(frozen=True)
class EnsembleConfig:
    """Everything `sertool ensemble` was asked to do."""

    task: int = 2
    """1: class probabilities by macro-F1; 2: each attribute by CCC."""
    top: int = 3
    """K: members per target (top-K), or the size of greedy's starting bag."""
    method: str = "topk"
    """`topk` or `greedy` (Caruana forward selection with replacement, from the top-K bag)."""
    experiment: str | None = None
    filter_string: str = ""
    """MLflow search filter on the candidates (tags, params, metrics)."""
    baseline: Path | None = None
    """A Task 2 challenge file (FileName,EmoAct,EmoVal,EmoDom) covering dev and the test split."""
    test_split: str = "Test3"
    """The split the submission file covers."""
    name: str | None = None
    """Run name (default `ens-task<T>-<method><K>`); also names the submission file."""
    out: Path | None = None
    """Submission path (default `<store>/submissions/<name>_task<T>.csv`)."""
    include_ensembles: bool = False
    """Let earlier ensemble runs be candidates too."""
    greedy_steps: int = 25

    def __post_init__(self) -> None:
        if self.task not in TARGETS:
            raise InvalidOption("task", f"must be 1 or 2, got {self.task}")
        if self.method not in ("topk", "greedy"):
            raise InvalidOption("method", f"must be topk or greedy, got {self.method!r}")
        if self.top < 1:
            raise InvalidOption("top", f"must be at least 1, got {self.top}")
        if self.baseline is not None and self.task == 1:
            raise InvalidOption("baseline", "takes a Task 2 file (FileName,EmoAct,EmoVal,EmoDom); "
                               "Task 1 ensembles average class probabilities, which it does not have")

    @property
    def run_name(self) -> str:
        return self.name or f"ens-task{self.task}-{self.method}{self.top}"

    def submission_path(self, layout: StoreLayout) -> Path:
        return self.out or layout.root / SUBMISSIONS_DIR / f"{self.run_name}_task{self.task}.csv"


@dataclass
class MemberScore:
    member: str
    """Run id, or `baseline`."""
    name: str
    count: int
    """Times in the bag (greedy draws with replacement)."""
    dev: float
    """The member's own dev score."""


@dataclass
class TargetReport:
    """One target's choice: its members and scores."""

    target: str
    metric: str
    """`ccc_<attribute>` or `f1_macro`."""
    members: list[MemberScore]
    ensemble_dev: float
    best_single_dev: float
    """The best candidate alone (baseline excluded)."""


@dataclass
class EnsembleResult:
    spec: EnsembleSpec
    name: str
    reports: dict[str, TargetReport]
    dev_metrics: dict[str, float]
    """`f1_macro` (Task 1) or `ccc_<attribute>` and `ccc_mean` (Task 2), of the ensemble on dev."""
    predictions: dict[str, Predictions]
    submission: Path
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)
    """Things the user should know (runs left out, splits dropped, clips missing from the submission)."""


# -- pieces ------------------------------------------------------------------------------------------

def _align_baseline(path: Path, df: "pd.DataFrame", splits: dict[str, list[str]], required: set[str],
                    notes: list[str]) -> dict[str, "pd.DataFrame"]:
    """The baseline's rows for each split's clips; a required split it does not cover is BadInput."""
    by_id = df.set_index("clip_id")
    out = {}
    for split, ids in splits.items():
        missing = [c for c in ids if c not in by_id.index]
        if missing:
            if split in required:
                raise BadInput(path, f"no prediction for {len(missing)} of the {len(ids)} {split} clips "
                               f"(first: {missing[0]}.wav); the baseline must cover {DEV} and the test split",
                               field="FileName")
            notes.append(f"the baseline does not cover {split}: {split} left out of the ensemble's predictions")
            continue
        out[split] = by_id.loc[ids].reset_index()
    return out


def _target_arrays(task: int, target: str, cands: list[Candidate], baseline: "pd.DataFrame | None") -> np.ndarray:
    """(M, N) attribute predictions or (M, N, 8) class probabilities on dev, one row per candidate
    (the baseline last)."""
    if target == CLASS:
        return np.stack([c.preds[DEV].probs for c in cands])
    j = ATTRIBUTES.index(target)
    rows = [c.preds[DEV].attrs[:, j] for c in cands]
    if baseline is not None:
        rows.append(baseline[target].to_numpy(np.float64))
    return np.stack(rows)


def _select(cfg: EnsembleConfig, arrays: np.ndarray, score, has_baseline: bool) -> Selection:
    always = [len(arrays) - 1] if has_baseline else []
    start = top_k(arrays, score, cfg.top, always=always)
    if cfg.method == "topk":
        return start
    return greedy(arrays, score, start.bag, max_steps=cfg.greedy_steps)


def _tables(cands: list[Candidate], baseline: dict[str, "pd.DataFrame"], split: str):
    """Member -> (N, 8) probabilities and member -> (N, 3) attributes of one split, for `blend`."""
    probs = {c.run_id: c.preds[split].probs for c in cands}
    attrs = {c.run_id: c.preds[split].attrs for c in cands}
    if split in baseline:
        attrs[BASELINE] = baseline[split][list(ATTRIBUTES)].to_numpy(np.float64)
    return probs, attrs


def _dev_metrics(task: int, truth: Truth, probs: np.ndarray, attrs: np.ndarray) -> dict[str, float]:
    if task == 1:
        return {F1: truth.f1_scorer()(probs)}
    m = {CCC[a]: truth.ccc_scorer(a)(attrs[:, j]) for j, a in enumerate(ATTRIBUTES)}
    m[CCC["mean"]] = float(np.mean(list(m.values())))
    return m


def _file_names(layout: StoreLayout, clip_ids: list[str], split: str, notes: list[str]) -> list[str]:
    """Each clip's audio file name (`<clip>.wav` where the catalog has no path); notes catalog clips of
    the split that the members never predicted (the submission would lack them)."""
    with Catalog(layout.catalog, read_only=True) as cat:
        paths = clip_paths(cat)
        in_split = clips_in_split(cat, split)
    lacking = in_split - set(clip_ids)
    if lacking:
        notes.append(f"{len(lacking)} {split} clip(s) of the catalog have no predictions in the runs "
                     f"(e.g. {sorted(lacking)[0]}: no frames?); the submission lacks them")
    return [Path(paths[c]).name if paths.get(c) else f"{c}.wav" for c in clip_ids]


# -- the command ---------------------------------------------------------------------------------------

def build_ensemble(
    layout: StoreLayout,
    cfg: EnsembleConfig,
    tracker: "Tracker",
    *,
    console: "Console | None" = None,
) -> EnsembleResult:
    """Choose, average, log and write one ensemble (see the module docstring)."""
    what = "macro-F1" if cfg.task == 1 else "CCC"
    runs = find_candidates(tracker, task=cfg.task, experiment=cfg.experiment, filter_string=cfg.filter_string,
                           include_ensembles=cfg.include_ensembles)
    cands, notes = load_candidates(tracker, runs, require=(DEV, cfg.test_split), console=console)
    if not cands:
        where = f" matching {cfg.filter_string!r}" if cfg.filter_string.strip() else ""
        raise NotFound(
            f"no finished runs with {DEV} predictions and a dev {what}{where} in experiment "
            f"{cfg.experiment or tracker.experiment!r} ({tracker.shown_uri}): nothing to ensemble "
            "(train some with `sertool train`; `sertool runs` lists what is there)"
        )
    fingerprints = check_fingerprints(cands)
    check_clip_sets(cands)
    if len(cands) < cfg.top:
        notes.append(f"only {len(cands)} candidate run(s) for --top {cfg.top}: all are used")

    split_ids = {s: list(p.clip_ids) for s, p in cands[0].preds.items()}
    baseline: dict[str, "pd.DataFrame"] = {}
    if cfg.baseline is not None:
        baseline = _align_baseline(cfg.baseline, read_task2(cfg.baseline), split_ids, {DEV, cfg.test_split}, notes)
    truth = load_truth(layout.catalog, split_ids[DEV])

    names = {c.run_id: c.run.name for c in cands} | {BASELINE: f"baseline {cfg.baseline.name}" if cfg.baseline else ""}
    ids = [c.run_id for c in cands] + ([BASELINE] if baseline else [])
    members: dict[str, list[str]] = {}
    reports: dict[str, TargetReport] = {}
    for target in TARGETS[cfg.task]:
        score = truth.f1_scorer() if target == CLASS else truth.ccc_scorer(target)
        arrays = _target_arrays(cfg.task, target, cands, baseline.get(DEV))
        sel = _select(cfg, arrays, score, bool(baseline))
        members[target] = [ids[i] for i in sel.bag]
        singles = [score(arrays[i]) for i in range(len(arrays))]
        order = list(dict.fromkeys(sel.bag))
        reports[target] = TargetReport(
            target, F1 if target == CLASS else CCC[target],
            [MemberScore(ids[i], names[ids[i]], sel.bag.count(i), singles[i]) for i in order],
            sel.score, max(singles[: len(cands)]),
        )

    spec = EnsembleSpec(cfg.task, cfg.method, cfg.top, members,
                        baseline=str(cfg.baseline) if cfg.baseline else None, test_split=cfg.test_split,
                        candidates=len(cands))
    weights = spec.all_weights()
    used = set(spec.run_ids())
    chosen = [c for c in cands if c.run_id in used]
    predictions: dict[str, Predictions] = {}
    for split, clip_ids in split_ids.items():
        if baseline and split not in baseline:
            continue
        predictions[split] = Predictions(clip_ids, *blend(weights, *_tables(chosen, baseline, split)))
    dev_preds = predictions[DEV]
    dev_metrics = _dev_metrics(cfg.task, truth, dev_preds.probs, dev_preds.attrs)

    test = predictions[cfg.test_split]
    out = write_submission(cfg.submission_path(layout), cfg.task,
                           _file_names(layout, list(test.clip_ids), cfg.test_split, notes), test)
    result = EnsembleResult(spec, cfg.run_name, reports, dev_metrics, predictions, out, notes=notes)
    schemes = {c.run.tags.get(SPLITS_TAG) for c in chosen} - {None}
    result.run_id = log_ensemble(tracker, result, fingerprints,
                                 {SPLITS_TAG: schemes.pop()} if len(schemes) == 1 else {}, cfg.experiment)
    return result


def log_ensemble(tracker: "Tracker", result: EnsembleResult, fingerprints: dict[str, str],
                 tags: dict[str, str], experiment: str | None = None) -> str | None:
    """The ensemble as its own run: members as params, dev figures under both the `dev_*` and the training
    runs' `best_dev_*` names (so it sorts with them), predictions in the training runs' layout."""
    spec = result.spec
    metrics = {}
    for name, value in result.dev_metrics.items():
        metrics[dev(name)] = metrics[best(name)] = value
    run_tags = {TASK_TAG: spec.task, **{encoder_tag(n): fp for n, fp in fingerprints.items()}, **tags}
    with tracker.start("ensemble", experiment=experiment, run_name=result.name, tags=run_tags) as run:
        run.log_params(spec.params())
        run.log_dict(spec.to_dict(), ENSEMBLE_SPEC)
        run.log_metrics(metrics)
        for split, preds in result.predictions.items():
            run.log_predictions(split, preds.to_frame())
        run.log_artifact(result.submission, SUBMISSION_DIR)
    return run.run_id
