"""`sertool ensemble`: choose members on dev, average, log the ensemble as a run, write the challenge files.

    candidates (run search, stage filter, pins) -> checks (fingerprints, clip sets) -> dev truth (catalog)
    -> per target: top-K or greedy on dev -> averaged predictions of every split
                   (stack: top-K -> meta-model, cross-fitted on dev -> its predictions of every split)
    -> MLflow run (kind ensemble, same artifact layout as a training run) + challenge files

Task 2 selects separately for each attribute by dev CCC (the paper's best-per-attribute ensemble);
Task 1 selects by dev macro-F1 on averaged class probabilities. Test splits never influence a choice.
A stacked ensemble's dev figures and Development predictions are out-of-fold (`stack`). Dev figures
are the official scoring's (`metrics.score`), and the Development predictions are also
written in the challenge format, so `sertool score` on that file reproduces them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInput, NotFound
from ..labels import ATTRIBUTES
from ..metrics import CCC, CCC_NO_X, F1, F1_8, best, dev, score
from ..predictions import Predictions
from ..store.catalog import Catalog
from ..store.clips import clip_paths, clips_in_split
from ..store.layout import StoreLayout
from ..store.splits import DEV
from ..tracking.names import DATA_DIGEST_TAG, ENSEMBLE_SPEC, SPLITS_TAG, SUBMISSION_DIR, TASK_TAG, encoder_tag
from .challenge import read_task2, write_submission
from .config import EnsembleConfig, EnsembleResult, MemberScore, TargetReport
from .members import Candidate, check_clip_sets, check_data, check_fingerprints, find_candidates, load_candidates
from .select import Selection, greedy, top_k
from .spec import BASELINE, CLASS, TARGETS, EnsembleSpec
from .stack import StackFit, combine, cross_fit, out_of_fold
from .truth import Truth, load_truth

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from ..tracking.tracker import Tracker

__all__ = ["EnsembleConfig", "EnsembleResult", "build_ensemble"]


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


def _pinned(tracker: "Tracker", cfg: EnsembleConfig, cands: list[Candidate]) -> dict[str, set[str]]:
    """Run id -> the targets it is pinned to (`--pin RUN[:target]`)."""
    ids = {c.run_id for c in cands}
    out: dict[str, set[str]] = {}
    for pin in cfg.pins:
        ref, _, target = pin.partition(":")
        run = tracker.resolve_run(ref, cfg.experiment)
        if run.run_id not in ids:
            raise NotFound(f"--pin {pin}: run {run.name} ({run.run_id[:8]}) is not a candidate (no {DEV} "
                           f"predictions, or another stage, filter or experiment)")
        out.setdefault(run.run_id, set()).update([target] if target else TARGETS[cfg.task])
    return out


def _target_arrays(target: str, cands: list[Candidate], baseline: "pd.DataFrame | None") -> np.ndarray:
    """(M, N) attribute predictions or (M, N, 8) class probabilities on dev, one row per candidate
    (the baseline last, where it joins this target)."""
    if target == CLASS:
        return np.stack([c.preds[DEV].probs for c in cands])
    j = ATTRIBUTES.index(target)
    rows = [c.preds[DEV].attrs[:, j] for c in cands]
    if baseline is not None:
        rows.append(baseline[target].to_numpy(np.float64))
    return np.stack(rows)


def _select(cfg: EnsembleConfig, arrays: np.ndarray, scorer, always: list[int]) -> Selection:
    if cfg.method == "topk":
        return top_k(arrays, scorer, cfg.top, always=always)
    return greedy(arrays, scorer, cfg.top, always=always, max_steps=cfg.greedy_steps)


def _stack(cfg: EnsembleConfig, target: str, arrays: np.ndarray, ids: list[str], scorer, always: list[int],
           truth: Truth) -> tuple[Selection, StackFit]:
    """The top K (and the pinned) as a meta-model's inputs, cross-fitted on the rows the target scores;
    its score is the out-of-fold one."""
    bag = top_k(arrays, scorer, cfg.top, always=always).bag
    t = truth.targets
    if target == CLASS:
        y, rows = t.class_target, t.class_rows
    else:
        j = ATTRIBUTES.index(target)
        y, rows = t.attrs[:, j], t.attribute_rows(j)
    fit = cross_fit(target, [ids[i] for i in bag], arrays[bag], y, rows, cfg.folds, cfg.seed)
    return Selection(bag, scorer(fit.oof)), fit


def _tables(cands: list[Candidate], baseline: dict[str, "pd.DataFrame"], split: str):
    """Member -> (N, 8) probabilities and member -> (N, 3) attributes of one split, for `blend`."""
    probs = {c.run_id: c.preds[split].probs for c in cands}
    attrs = {c.run_id: c.preds[split].attrs for c in cands}
    if split in baseline:
        attrs[BASELINE] = baseline[split][list(ATTRIBUTES)].to_numpy(np.float64)
    return probs, attrs


def _dev_metrics(task: int, truth: Truth, probs: np.ndarray, attrs: np.ndarray) -> dict[str, float]:
    """The task's figures of the ensemble on dev, official and companions (`metrics.score`)."""
    figures = score(truth.targets, probs.argmax(axis=1), attrs)
    names = (F1, F1_8) if task == 1 else (*CCC.values(), *CCC_NO_X.values())
    return {n: figures[n] for n in names}


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
    parent = tracker.resolve_run(cfg.parent, cfg.experiment).run_id if cfg.parent else None
    runs = find_candidates(tracker, task=cfg.task, experiment=cfg.experiment, filter_string=cfg.filter_string,
                           include_ensembles=cfg.include_ensembles, stages=cfg.stages, parent_run_id=parent)
    cands, notes = load_candidates(tracker, runs, require=(DEV, cfg.test_split), console=console)
    if not cands:
        where = f" matching {cfg.filter_string!r}" if cfg.filter_string.strip() else ""
        raise NotFound(
            f"no finished {'/'.join(cfg.stages or ())} runs with {DEV} predictions and a dev {what}{where} in "
            f"experiment {cfg.experiment or tracker.experiment!r} ({tracker.shown_uri}): nothing to ensemble "
            "(train some with `sertool train`; `sertool runs` lists what is there; see --stages)"
        )
    fingerprints = check_fingerprints(cands)
    check_clip_sets(cands)
    check_data(cands, cfg.allow_mixed_data, notes)
    if len(cands) < cfg.top:
        notes.append(f"only {len(cands)} candidate run(s) for --top {cfg.top}: all are used")
    pinned = _pinned(tracker, cfg, cands)

    split_ids = {s: list(p.clip_ids) for s, p in cands[0].preds.items()}
    baseline: dict[str, "pd.DataFrame"] = {}
    if cfg.baseline is not None:
        baseline = _align_baseline(cfg.baseline, read_task2(cfg.baseline), split_ids, {DEV, cfg.test_split}, notes)
    truth = load_truth(layout.catalog, split_ids[DEV])

    names = {c.run_id: c.run.name for c in cands} | {BASELINE: f"baseline {cfg.baseline.name}" if cfg.baseline else ""}
    members: dict[str, list[str]] = {}
    reports: dict[str, TargetReport] = {}
    stacks: dict[str, StackFit] = {}
    for target in TARGETS[cfg.task]:
        scorer = truth.f1_scorer() if target == CLASS else truth.ccc_scorer(target)
        with_baseline = bool(baseline) and target in cfg.baseline_attributes
        ids = [c.run_id for c in cands] + ([BASELINE] if with_baseline else [])
        arrays = _target_arrays(target, cands, baseline.get(DEV) if with_baseline else None)
        always = [i for i, r in enumerate(ids) if target in pinned.get(r, ()) or r == BASELINE]
        if cfg.method == "stack":
            sel, stacks[target] = _stack(cfg, target, arrays, ids, scorer, always, truth)
        else:
            sel = _select(cfg, arrays, scorer, always)
        members[target] = [ids[i] for i in sel.bag]
        singles = [scorer(arrays[i]) for i in range(len(arrays))]
        order = list(dict.fromkeys(sel.bag))
        reports[target] = TargetReport(
            target, F1 if target == CLASS else CCC[target],
            [MemberScore(ids[i], names[ids[i]], sel.bag.count(i), singles[i]) for i in order],
            sel.score, float(np.nanmax(singles[: len(cands)])) if np.isfinite(singles[: len(cands)]).any() else float("nan"),
        )

    spec = EnsembleSpec(cfg.task, cfg.method, cfg.top, members,
                        baseline=str(cfg.baseline) if cfg.baseline else None, test_split=cfg.test_split,
                        candidates=len(cands),
                        extra={"baseline_attributes": list(cfg.baseline_attributes) if cfg.baseline else [],
                               "pins": list(cfg.pins), "stages": list(cfg.stages or ()),
                               **({"folds": cfg.folds, "seed": cfg.seed} if stacks else {})},
                        meta={t: f.model.to_dict() for t, f in stacks.items()})
    used = set(spec.run_ids())
    chosen = [c for c in cands if c.run_id in used]
    predictions: dict[str, Predictions] = {}
    for split, clip_ids in split_ids.items():
        if baseline and split not in baseline:
            continue
        predictions[split] = Predictions(clip_ids, *combine(spec, *_tables(chosen, baseline, split)))
    if stacks:  # dev as scored: every stacked target out of fold
        predictions[DEV] = Predictions(split_ids[DEV], *out_of_fold(predictions[DEV].probs, predictions[DEV].attrs, stacks))
    dev_preds = predictions[DEV]
    dev_metrics = _dev_metrics(cfg.task, truth, dev_preds.probs, dev_preds.attrs)

    test = predictions[cfg.test_split]
    out = write_submission(cfg.submission_path(layout), cfg.task,
                           _file_names(layout, list(test.clip_ids), cfg.test_split, notes), test)
    dev_file = write_submission(cfg.submission_path(layout, DEV), cfg.task,
                                _file_names(layout, list(dev_preds.clip_ids), DEV, []), dev_preds)
    result = EnsembleResult(spec, cfg.run_name, reports, dev_metrics, predictions, out, dev_file, notes=notes,
                            stacks=stacks)
    schemes = {c.run.tags.get(SPLITS_TAG) for c in chosen} - {None}
    digests = {c.data_digest for c in chosen}
    tags = {SPLITS_TAG: schemes.pop()} if len(schemes) == 1 else {}
    if len(digests) == 1 and None not in digests:
        tags[DATA_DIGEST_TAG] = digests.pop()
    datasets = list({(d.name, d.digest): d for c in chosen for d in c.run.datasets}.values())
    result.run_id = log_ensemble(tracker, result, fingerprints, tags, cfg.experiment, datasets)
    return result


def log_ensemble(tracker: "Tracker", result: EnsembleResult, fingerprints: dict[str, str],
                 tags: dict[str, str], experiment: str | None = None, datasets: list | None = None) -> str | None:
    """The ensemble as its own run: members as params, dev figures under both the `dev_*` and the training
    runs' `best_dev_*` names (so it sorts with them), predictions in the training runs' layout, and its
    members' datasets as its own inputs (what its figures came from)."""
    spec = result.spec
    metrics = {}
    for name, value in result.dev_metrics.items():
        metrics[dev(name)] = metrics[best(name)] = value
    run_tags = {TASK_TAG: spec.task, **{encoder_tag(n): fp for n, fp in fingerprints.items()}, **tags}
    with tracker.start("ensemble", experiment=experiment, run_name=result.name, tags=run_tags) as run:
        run.log_params(spec.params())
        run.log_datasets(datasets or [])
        run.log_dict(spec.to_dict(), ENSEMBLE_SPEC)
        run.log_metrics(metrics)
        for split, preds in result.predictions.items():
            run.log_predictions(split, preds.to_frame())
        run.log_artifact(result.submission, SUBMISSION_DIR)
        if result.dev_file is not None:
            run.log_artifact(result.dev_file, SUBMISSION_DIR)
    return run.run_id
