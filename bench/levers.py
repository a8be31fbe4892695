"""Which lever helps: `experiments/levers.toml` (the paper's pre-training, each lever alone, all
together, 3 seeds) run at tiny dims on the synthetic corpus (tiny preset encoders), next to the paper
recipe on the same data and seeds (the sweep's `paper` runs are the baseline, in the same run).

Prints, per lever, the dev macro-F1 and mean CCC as mean +- sd over the seeds and the difference to the
paper recipe, and ends with one JSON line {"baseline": {...}, "soft": {...}, ...}.

The synthetic corpus's annotators disagree like MSP-Podcast's do (README "The synthetic corpus"), so
soft targets have something to teach; its labels follow audio and text cues the tiny encoders keep.
A lever that does not help here is reported as such: this corpus is small and its disagreement made.

usage: python bench/levers.py [--clips 600] [--epochs 20] [--seeds 0,1,2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

RECIPE = Path(__file__).resolve().parents[1] / "experiments" / "levers.toml"
TINY = {  # the demo's model and schedule (tiny encoders' features need pooled_norm and a high lr)
    "proj_dim": 32, "lstm_hidden": 32, "batch_size": 16, "lr": 3e-3, "min_lr": 1e-5, "warmup_epochs": 1.0,
    "samples_per_epoch": 2000, "pooled_norm": True, "augment": False, "num_workers": 0, "device": "cpu",
}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=600, help="synthetic corpus size (15%% Test3)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--corpus-seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    args = ap.parse_args()

    import torch

    from sertool.corpus.ingest import ingest_msp_podcast
    from sertool.corpus.synthetic import write_synthetic_corpus
    from sertool.jobs.embed import EmbedConfig, embed_store
    from sertool.metrics import CCC, F1, best
    from sertool.store.layout import StoreLayout
    from sertool.tracking.tracker import Tracker
    from sertool.train.recipes import load_recipe
    from sertool.train.sweep import run_sweep

    torch.set_num_threads(1)  # the machine is shared: one thread keeps runs comparable
    work = args.dir or Path(tempfile.mkdtemp(prefix="sertool-levers-"))
    t0 = time.perf_counter()
    try:
        layout = StoreLayout.at(work / "store")
        root = write_synthetic_corpus(work / "corpus", n_clips=args.clips, seed=args.corpus_seed)
        ingest_msp_podcast(layout.catalog, root, progress=False)
        embed_store(layout, EmbedConfig(preset="tiny", seed=args.corpus_seed))
        t_data = time.perf_counter() - t0
        recipe = load_recipe(RECIPE)
        seeds = [int(s) for s in args.seeds.split(",")]
        recipe.children = [c for c in recipe.children if c.get("seed", 0) in seeds]
        tracker = Tracker(f"sqlite:///{work / 'mlflow.db'}", experiment="levers", store_root=layout.root)
        result = run_sweep(recipe, layout, tracker, overrides={**TINY, "epochs": args.epochs})
        runs = tracker.find_runs(kind="train", parent_run_id=result.parent_run_id)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)

    by: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        f = by.setdefault(r.name, {"f1": [], "ccc": []})
        f["f1"].append(r.metrics[best(F1)])
        f["ccc"].append(r.metrics[best(CCC["mean"])])
    order = [c["run_name"] for c in recipe.children if c.get("seed", seeds[0]) == seeds[0]]
    base_f1, _ = _stats(by["paper"]["f1"])
    base_ccc, _ = _stats(by["paper"]["ccc"])
    print(f"{args.clips} synthetic clips, tiny preset, {args.epochs} epochs, seeds {seeds}; "
          f"data {t_data:.0f} s, {len(runs)} runs in {time.perf_counter() - t0 - t_data:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'lever':<18} {'dev macro-F1':>16} {'vs paper':>9} {'dev mean CCC':>16} {'vs paper':>9}")
    out: dict[str, dict[str, float]] = {}
    for name in order:
        (f1, f1_sd), (ccc, ccc_sd) = _stats(by[name]["f1"]), _stats(by[name]["ccc"])
        key = "baseline" if name == "paper" else name
        out[key] = {"f1_mean": round(f1, 4), "f1_sd": round(f1_sd, 4), "ccc_mean": round(ccc, 4),
                    "ccc_sd": round(ccc_sd, 4), "n": len(by[name]["f1"])}
        print(f"{name:<18} {f1:>8.4f} ± {f1_sd:.4f} {f1 - base_f1:>+9.4f} {ccc:>8.4f} ± {ccc_sd:.4f} {ccc - base_ccc:>+9.4f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
