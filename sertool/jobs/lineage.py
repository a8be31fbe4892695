"""`sertool runs --stale`: the runs whose figures no longer describe the store's data.

Each training run (and each ensemble, which logs its members' datasets) recorded the digest of the data
it was given (`train.lineage`, `store.lineage`), with the spec that recomputes it. This recomputes every
spec against the store as it is now, once per distinct spec: a label revised by a re-ingest, clips
embedded since, an encoder re-made, audio re-embedded after a change, a split scheme remade or deleted
all make the digest differ, and the run is listed with the dataset that changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..store.catalog import Catalog
from ..store.layout import StoreLayout
from ..store.lineage import DatasetDigest, DatasetSpec, dataset_digest
from ..train.lineage import store_label

if TYPE_CHECKING:
    from ..tracking.records import DatasetRef, RunInfo
    from ..tracking.tracker import Tracker

SPEC_KEY = "sertool_spec"
"""Where a dataset's profile keeps the spec that recomputes its digest (`train.lineage.as_refs`)."""


@dataclass
class StaleRun:
    run: "RunInfo"
    dataset: "DatasetRef"
    """The first of its datasets whose digest no longer matches."""
    now: DatasetDigest
    """What the store holds for that dataset's spec today (`exists` False: the split scheme is gone)."""


@dataclass
class StaleReport:
    stale: list[StaleRun] = field(default_factory=list)
    checked: int = 0
    """Runs with at least one dataset of this store, all recomputed."""
    without_lineage: int = 0
    """Runs that logged no dataset (from before sertool logged them): nothing to compare."""
    other_stores: int = 0
    """Runs whose datasets are all of another store."""


def stale_runs(layout: StoreLayout, tracker: "Tracker", experiment: str | None = None,
               max_runs: int = 50_000) -> StaleReport:
    """Every run of the experiment whose logged data digest differs from the store's data now."""
    report = StaleReport()
    runs = tracker.find_runs(experiment, order_by=["attributes.start_time DESC"], max_results=max_runs)
    here = store_label(layout)
    digests: dict[DatasetSpec, DatasetDigest] = {}
    with Catalog(layout.catalog, read_only=True) as cat:
        for run in runs:
            if not run.datasets:
                report.without_lineage += 1
                continue
            mine = [d for d in run.datasets if d.source == here and SPEC_KEY in d.profile]
            if not mine:
                report.other_stores += 1
                continue
            report.checked += 1
            for d in mine:
                spec = DatasetSpec.from_dict(d.profile[SPEC_KEY])
                if spec not in digests:
                    digests[spec] = dataset_digest(cat, spec)
                if digests[spec].digest != d.digest:
                    report.stale.append(StaleRun(run, d, digests[spec]))
                    break
    return report
