"""The runs an ensemble may choose from: found by run search, with their prediction tables, checked.

A candidate is a finished run with dev predictions (`predictions/Development.csv`) and the selected
task's `best_dev_*` metric. Candidates must agree before anything is averaged: one fingerprint per
encoder name (frames of two encoder configurations never mix silently) and the same clips in every
split they share (otherwise they came from other split schemes or other stores). Disagreement is
refused with a message naming the runs and a `--filter` that picks one side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import NotFound, SertoolError, StoreMismatch
from ..labels import ATTRIBUTES
from ..metrics import CCC, F1, best
from ..predictions import BadPredictions, Predictions
from ..progress import progress_bar
from ..store.splits import DEV
from ..tracking.names import DATA_DIGEST_TAG, ENCODER_TAG_PREFIX, PREDICTIONS_DIR, TRAINING

if TYPE_CHECKING:
    from rich.console import Console

    from ..tracking.records import RunInfo
    from ..tracking.tracker import Tracker

@dataclass
class Candidate:
    """One eligible run and its predictions per split (rows sorted by clip_id)."""

    run: "RunInfo"
    preds: dict[str, Predictions]

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def label(self) -> str:
        """How messages name the run: `name (id prefix)`."""
        return f"{self.run.name or '?'} ({self.run.run_id[:8]})"

    @property
    def data_digest(self) -> str | None:
        """The digest of the data it trained on (None for a run from before sertool logged one)."""
        digests = sorted({d.digest for d in self.run.datasets if d.context == TRAINING})
        return ",".join(digests) if digests else self.run.tags.get(DATA_DIGEST_TAG)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {k[len(ENCODER_TAG_PREFIX):]: v for k, v in self.run.tags.items() if k.startswith(ENCODER_TAG_PREFIX)}


def _has_task_metric(run: "RunInfo", task: int) -> bool:
    names = [best(F1)] if task == 1 else [best(CCC[a]) for a in ATTRIBUTES]
    return any(n in run.metrics for n in names)


def find_candidates(
    tracker: "Tracker",
    *,
    task: int,
    experiment: str | None = None,
    filter_string: str = "",
    include_ensembles: bool = False,
    stages: Sequence[str] | None = None,
    parent_run_id: str | None = None,
    max_runs: int = 1000,
) -> list["RunInfo"]:
    """Finished train runs of `stages` (all stages if None), of one parent sweep if given, and earlier
    ensembles if asked, of the experiment, with the task's best dev metric."""
    # MLflow's filter language is a conjunction without parentheses: appending is enough.
    clauses = ["attributes.status = 'FINISHED'"] + ([filter_string] if filter_string.strip() else [])
    query = " and ".join(clauses)
    kinds = ("train", "ensemble") if include_ensembles else ("train",)
    runs = [r for k in kinds for r in tracker.find_runs(experiment, query, ["attributes.start_time ASC"],
                                                           max_runs, kind=k, parent_run_id=parent_run_id)]
    if stages is not None:  # (ensembles have no stage: they stay when asked for)
        runs = [r for r in runs if r.kind == "ensemble" or r.stage in stages]
    return [r for r in runs if _has_task_metric(r, task)]


def load_candidates(
    tracker: "Tracker",
    runs: Sequence["RunInfo"],
    *,
    require: Sequence[str] = (DEV,),
    console: "Console | None" = None,
) -> tuple[list[Candidate], list[str]]:
    """Prediction tables of every split the runs all have (they must all have `require`).

    Returns the candidates and notes on runs left out (no dev predictions).
    """
    listed: list[tuple["RunInfo", set[str]]] = []
    notes: list[str] = []
    for r in runs:
        files = tracker.list_artifacts(r.run_id, PREDICTIONS_DIR)
        splits = {f.rsplit("/", 1)[-1][: -len(".csv")] for f in files if f.endswith(".csv")}
        if DEV not in splits:
            notes.append(f"{r.name} ({r.run_id[:8]}): no {DEV} predictions, left out")
            continue
        listed.append((r, splits))
    if not listed:
        return [], notes
    common = set.intersection(*(s for _, s in listed))
    lacking = [x for x in require if x not in common]
    if lacking:
        have = ", ".join(sorted(common))
        without = [f"{r.name} ({r.run_id[:8]})" for r, s in listed if lacking[0] not in s]
        raise NotFound(
            f"not every run has predictions for {lacking[0]} (missing in {', '.join(without[:5])}"
            f"{' ...' if len(without) > 5 else ''}); splits all runs have: {have} (see --test-split)"
        )
    splits = sorted(common, key=lambda s: (s != DEV, s))
    out: list[Candidate] = []
    with progress_bar(console, transient=True) as progress:
        task = progress.add_task("reading predictions", total=len(listed) * len(splits))
        for r, _ in listed:
            preds = {}
            for split in splits:
                preds[split] = _checked(tracker.load_predictions(r.run_id, split), r, split)
                progress.advance(task)
            out.append(Candidate(r, preds))
    return out, notes


def _checked(df, run: "RunInfo", split: str) -> Predictions:
    try:
        return Predictions.from_frame(df)
    except BadPredictions as e:
        raise SertoolError(f"run {run.name} ({run.run_id[:8]}): predictions/{split}.csv {e}") from None


def _pick_hint(tag: str, value: str) -> str:
    return f"narrow the runs with --filter \"tags.\\\"{tag}\\\" = '{value}'\""


def check_fingerprints(cands: Sequence[Candidate]) -> dict[str, str]:
    """One fingerprint per encoder name across the candidates; returns name -> fingerprint."""
    seen: dict[str, dict[str, list[Candidate]]] = {}
    for c in cands:
        for name, fp in c.fingerprints.items():
            seen.setdefault(name, {}).setdefault(fp, []).append(c)
    for name, groups in sorted(seen.items()):
        if len(groups) > 1:
            parts = "; ".join(
                f"{fp} in {', '.join(c.label for c in cs[:4])}{' ...' if len(cs) > 4 else ''}"
                for fp, cs in groups.items()
            )
            first = next(iter(groups))
            raise StoreMismatch(
                f"runs were trained on different {name} encoder configurations ({parts}); refusing to mix "
                f"them: {_pick_hint(ENCODER_TAG_PREFIX + name, first)}"
            )
    return {name: next(iter(groups)) for name, groups in sorted(seen.items())}


def check_clip_sets(cands: Sequence[Candidate]) -> None:
    """Every candidate predicts the same clips in every split (they all come from one store and scheme)."""
    if not cands:
        return
    for split in cands[0].preds:
        groups: dict[tuple[str, ...], list[Candidate]] = {}
        for c in cands:
            groups.setdefault(tuple(c.preds[split].clip_ids), []).append(c)
        if len(groups) > 1:
            parts = "; ".join(
                f"{len(ids)} clips in {', '.join(c.label for c in cs[:4])}{' ...' if len(cs) > 4 else ''}"
                for ids, cs in groups.items()
            )
            raise StoreMismatch(
                f"runs disagree on the clips of {split} ({parts}): they were trained on other split schemes "
                "or stores; refusing to mix them: narrow the runs with --filter (e.g. on tags.\"sertool.splits\")"
            )


def check_data(cands: Sequence[Candidate], allow_mixed: bool, notes: list[str]) -> None:
    """Every candidate trained on data of one digest (the same clips, labels and targets, encoders and
    audio: `train.lineage`), unless `allow_mixed`: figures on other data do not compare. Runs that logged
    no digest (from before sertool did) are not compared, and noted."""
    groups: dict[str, list[Candidate]] = {}
    unknown = []
    for c in cands:
        if c.data_digest is None:
            unknown.append(c)
        else:
            groups.setdefault(c.data_digest, []).append(c)
    if unknown:
        notes.append(f"{len(unknown)} candidate run(s) logged no data digest (trained before sertool logged one, "
                     f"e.g. {unknown[0].label}): not compared")
    if len(groups) <= 1:
        return
    parts = "; ".join(f"{d[:8]} in {', '.join(c.label for c in cs[:4])}{' ...' if len(cs) > 4 else ''}"
                      for d, cs in groups.items())
    if allow_mixed:
        notes.append(f"the candidates trained on {len(groups)} versions of the data ({parts}): mixed, as asked")
        return
    latest = {d: max((c.run.start_time for c in cs if c.run.start_time), default=datetime.min) for d, cs in groups.items()}
    newest = max(latest, key=latest.__getitem__)  # the hint picks the data of the most recent runs
    raise StoreMismatch(
        f"runs were trained on different data ({parts}): their dev figures are not comparable; "
        f"{_pick_hint(DATA_DIGEST_TAG, newest)}, or pass --allow-mixed-data (`sertool runs --stale` lists the runs "
        "whose data the store no longer holds)"
    )
