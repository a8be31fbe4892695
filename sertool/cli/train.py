"""`sertool train` and `sertool sweep`: parse options, resolve the config, call `sertool.train`.

Every option defaults to None here, meaning "not given": the library fills stage defaults, then the
recipe's values, then the flags the user typed (see `sertool.train.recipes`). Help texts show the
stage defaults from the library's own table, so they are written once.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..train.config import stage_defaults_text as _d
from ._common import err, out, state
from ._options import (
    AttributeTargets, Batching, ClipUse, Device, ExperimentOpt, Objective, OutputFormat, OVotes, Pooling, Precision,
    ReadOrder, SearchKind, Select, SoftLoss, Stage, TargetKind,
)
from ._options import Launcher as LauncherKind

if TYPE_CHECKING:
    from ..train.loop import TrainResult

_LOSS = "Loss"
_OPT = "Optimisation"
_MODEL = "Model"
_DATA = "Data"
_RUN = "Run"
_LEVERS = "Levers (every annotator's vote; off by default)"


def _opt(*names: str, help: str, panel: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False, **kw)


def train(
    ctx: typer.Context,
    recipe: Annotated[Optional[Path], _opt("--recipe", help="TOML recipe; flags given here override it.", panel=_RUN)] = None,
    resume: Annotated[Optional[str], _opt("--resume", help="Go on with a killed run (id, id prefix or name) from its last finished epoch, in the same run; other options are the run's own.", panel=_RUN)] = None,
    stage: Annotated[Optional[Stage], _opt("--stage", help="pretrain (multi-task), task1 (classification fine-tune) or task2 (regression fine-tune: MSE or Gaussian MSE). (default: pretrain)", panel=_RUN)] = None,
    alpha: Annotated[Optional[float], _opt("--alpha", help=f"Weight of the attribute regression loss. (default: {_d('alpha')})", panel=_LOSS)] = None,
    beta: Annotated[Optional[float], _opt("--beta", help=f"Weight of the classification loss. (default: {_d('beta')})", panel=_LOSS)] = None,
    class_weights: Annotated[Optional[bool], _opt("--class-weights/--no-class-weights", help=f"Class-weighted CE (N / (8 n_c) on Train) or plain CE. (default: {_d('class_weights')})", panel=_LOSS)] = None,
    gaussian_sigma: Annotated[Optional[float], _opt("--gaussian-sigma", help="Gaussian-penalty MSE with this sigma (paper: 3, 5, 7). (default: plain MSE)", panel=_LOSS)] = None,
    lr: Annotated[Optional[float], _opt("--lr", help=f"Peak learning rate. (default: {_d('lr')})", panel=_OPT)] = None,
    min_lr: Annotated[Optional[float], _opt("--min-lr", help="Cosine schedule floor. (default: 1e-7)", panel=_OPT)] = None,
    warmup_epochs: Annotated[Optional[float], _opt("--warmup-epochs", help="Linear warm-up epochs. (default: 3)", panel=_OPT)] = None,
    epochs: Annotated[Optional[int], _opt("--epochs", help=f"Epochs. (default: {_d('epochs')})", panel=_OPT)] = None,
    samples_per_epoch: Annotated[Optional[int], _opt("--samples-per-epoch", help="Training clips drawn per epoch (the whole split if smaller). (default: 32000)", panel=_OPT)] = None,
    batch_size: Annotated[Optional[int], _opt("--batch-size", help="Clips per step (split across DDP ranks). (default: 128)", panel=_OPT)] = None,
    seed: Annotated[Optional[int], _opt("--seed", help="Seed of init, sampling and augmentation draws. (default: 0)", panel=_OPT)] = None,
    proj_dim: Annotated[Optional[int], _opt("--proj-dim", help="Projection width per encoder. (default: 1028)", panel=_MODEL)] = None,
    lstm_hidden: Annotated[Optional[int], _opt("--lstm-hidden", help="LSTM hidden size. (default: 2048)", panel=_MODEL)] = None,
    pooling: Annotated[Optional[Pooling], _opt("--pooling", help="Frame pooling: attentive statistics, mean (the paper's average pooling) or mean+std. (default: asp)", panel=_MODEL)] = None,
    pooled_norm: Annotated[Optional[bool], _opt("--pooled-norm/--no-pooled-norm", help="Standardise pooled encoder statistics across clips (not in the paper; helps random-weight tiny encoders). (default: off)", panel=_MODEL)] = None,
    encoders: Annotated[Optional[str], _opt("--encoders", help="Comma-separated store encoder names, in model order. (default: whisper,wavlm,roberta)", panel=_DATA)] = None,
    splits: Annotated[Optional[str], _opt("--splits", help="Split scheme: Train trains, Development selects, the rest are test splits. (default: corpus)", panel=_DATA)] = None,
    text: Annotated[Optional[str], _opt("--text", help="Transcript the text encoders' frames come from: preferred (corpus, else ASR: the paper's), corpus or asr; per split with SPLIT=CHOICE items, e.g. asr,Train=corpus (train on corpus text, evaluate on ASR text). Reads the matching `embed --text` variant. (default: preferred)", panel=_DATA)] = None,
    augment: Annotated[Optional[bool], _opt("--augment/--no-augment", help="Sample the store's augmented variants. (default: augment)", panel=_DATA)] = None,
    o_clips: Annotated[Optional[ClipUse], _opt("--o-clips", help=f"O (other) clips: train the attributes with them, or leave them out. (default: {_d('o_clips')})", panel=_DATA)] = None,
    x_clips: Annotated[Optional[ClipUse], _opt("--x-clips", help="X (no agreement) clips: leave them out (the paper) or train the attributes with them. (default: exclude)", panel=_DATA)] = None,
    select: Annotated[Optional[Select], _opt("--select", help="Dev metric that picks the kept checkpoint. (default: f1 for task1, else ccc)", panel=_RUN)] = None,
    init_from: Annotated[Optional[str], _opt("--init-from", help="Start from this run's checkpoint: run id, id prefix, name, or best:METRIC (best pre-training run).", panel=_RUN)] = None,
    experiment: ExperimentOpt = None,
    run_name: Annotated[Optional[str], _opt("--run-name", help="MLflow run name.", panel=_RUN)] = None,
    device: Annotated[Optional[Device], _opt("--device", help="cpu or cuda (AMP). (default: cuda if available)", panel=_RUN)] = None,
    num_workers: Annotated[Optional[int], _opt("--num-workers", help="Data loader worker processes. (default: 2 on CPU; on CUDA one per free core, up to 8)", panel=_RUN)] = None,
    batching: Annotated[Optional[Batching], _opt("--batching", help="random, or bucketed: batches of clips of similar length (less padding, the same epoch sample). (default: random)", panel=_DATA)] = None,
    read_order: Annotated[Optional[ReadOrder], _opt("--read-order", help="random, or blocked: each batch from a few runs of store-neighbouring clips (stores larger than the page cache). (default: random)", panel=_DATA)] = None,
    precision: Annotated[Optional[Precision], _opt("--precision", help="auto (bf16/fp16 autocast on CUDA, fp32 on CPU), fp32, or bf16 (CPU too). (default: auto)", panel=_RUN)] = None,
    compile_: Annotated[Optional[bool], _opt("--compile/--no-compile", help="torch.compile the fusion model. (default: off)", panel=_RUN)] = None,
    view: Annotated[Optional[str], _opt("--view", help="Train from this packed view (`sertool store pack`), held in memory: no loader processes.", panel=_DATA)] = None,
    resident: Annotated[Optional[Device], _opt("--resident", help="Where the view lives: cpu (pinned) or cuda. (default: the training device)", panel=_DATA)] = None,
    resident_budget_gb: Annotated[Optional[float], _opt("--resident-budget-gb", help="Most memory the view may take. (default: 90% of the free memory there)", panel=_DATA)] = None,
    targets: Annotated[Optional[TargetKind], _opt("--targets", help="Class targets: the consensus class, or the share of the annotators' votes per class (X clips then train the classifier). (default: hard)", panel=_LEVERS)] = None,
    soft_loss: Annotated[Optional[SoftLoss], _opt("--soft-loss", help="Loss on soft targets: cross-entropy or KL divergence. (default: ce)", panel=_LEVERS)] = None,
    o_votes: Annotated[Optional[OVotes], _opt("--o-votes", help="Other votes in soft targets: drop and renormalise, or spread evenly. (default: drop)", panel=_LEVERS)] = None,
    label_smoothing: Annotated[Optional[float], _opt("--label-smoothing", help="Mix this much of a uniform distribution into the class targets. (default: 0)", panel=_LEVERS)] = None,
    annotator_dropout: Annotated[Optional[float], _opt("--annotator-dropout", help="Each epoch drop each vote with this probability (one kept) before soft targets / vote means. (default: 0)", panel=_LEVERS)] = None,
    attribute_targets: Annotated[Optional[AttributeTargets], _opt("--attribute-targets", help="Attribute targets: consensus ratings or the mean of the (kept) votes. (default: consensus)", panel=_LEVERS)] = None,
    class_weight_power: Annotated[Optional[float], _opt("--class-weight-power", help="Class weights (N / (8 n_c)) ** P: 1 the paper's, 0.5 MEDUSA's. (default: 1)", panel=_LEVERS)] = None,
    sampler: Annotated[Optional[str], _opt("--sampler", help="natural, or balanced[:FROM_EPOCH[:XO_SHARE]]: a fresh undersample to the rarest class each epoch plus a share of X/O clips. (default: natural; balanced = balanced:4:0.11)", panel=_LEVERS)] = None,
    aux: Annotated[Optional[list[str]], _opt("--aux", help="Auxiliary head NAME[:WEIGHT] (gender, secondary; weight 0.1 if not given), repeatable.", panel=_LEVERS)] = None,
    early_stop: Annotated[Optional[int], _opt("--early-stop", help="Stop after this many epochs without a better dev figure.", panel=_LEVERS)] = None,
    refit: Annotated[Optional[tuple[str, int]], _opt("--refit", help="train+dev EPOCHS: after selection, retrain on Train and Development for EPOCHS epochs, as a child run.", panel=_LEVERS)] = None,
    set_: Annotated[Optional[list[str]], _opt("--set", help="Any other config field, KEY=VALUE (repeatable), e.g. --set grad_clip=1.0.", panel=_RUN)] = None,
) -> None:
    """Train the fusion model on the store's embeddings; one MLflow run with metrics, checkpoint and predictions."""
    given = _given(locals(), skip=("resume",))  # first: only the parameters are local yet
    from ..train.recipes import load_recipe, parse_set, resolve_config
    from ..train.runs import init_resolver, resume as resume_run, train as run_training

    st = state(ctx)
    layout = st.layout
    if resume is not None:
        extra = sorted(k for k in given if k != "experiment") + (["recipe"] if recipe else []) + (["set"] if set_ else [])
        if extra:
            from ..errors import InvalidOption

            raise InvalidOption("resume", f"a resumed run keeps its own config; drop --{extra[0].replace('_', '-')}")
        tracker = st.tracker(experiment)
        _print_result(resume_run(resume, layout, tracker, experiment=experiment, console=err), tracker)
        return
    overrides = {**parse_set(set_), **given}
    rec = load_recipe(recipe) if recipe is not None else None
    if rec is not None and rec.children:
        err.print(f"[yellow]note:[/] {recipe} has a \\[sweep] table; `sertool train` uses only its base options "
                  "(run the grid with `sertool sweep`)")
    exp = overrides.get("experiment") or (rec.base.get("experiment") if rec else None)
    tracker = st.tracker(exp)
    config = resolve_config(rec, overrides, resolve_init=init_resolver(tracker, exp))
    from ..train.recipes import ensure_scheme

    if made := ensure_scheme(rec, layout.catalog):
        err.print(f"made split scheme {made!r} as the recipe's [scheme] says", highlight=False)
    result = run_training(config, layout, tracker, console=err)
    if result.run_id:
        _print_result(result, tracker)


_LAUNCH = "Launch"
_SLURM = "Slurm (--launcher slurm)"
_SEARCH = "Search (--search optuna)"


def sweep(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(help="TOML recipe with a \\[sweep] table (a grid), or a \\[search] table "
                                           "(ranges for --search optuna).", show_default=False)],
    epochs: Annotated[Optional[int], _opt("--epochs", help="Override the recipe's epochs for every child.", panel=_RUN)] = None,
    samples_per_epoch: Annotated[Optional[int], _opt("--samples-per-epoch", help="Override for every child.", panel=_RUN)] = None,
    experiment: ExperimentOpt = None,
    device: Annotated[Optional[Device], _opt("--device", help="cpu or cuda (AMP).", panel=_RUN)] = None,
    num_workers: Annotated[Optional[int], _opt("--num-workers", help="Data loader worker processes.", panel=_RUN)] = None,
    set_: Annotated[Optional[list[str]], _opt("--set", help="Override any config field for every child, KEY=VALUE (repeatable).", panel=_RUN)] = None,
    resume: Annotated[Optional[str], _opt("--resume", help="Go on with this sweep (parent run id, id prefix or name): finished children are skipped, failed or killed ones go on in their own runs, none is trained twice.", panel=_RUN)] = None,
    dry_run: Annotated[bool, _opt("--dry-run", help="Print every child's resolved config (a search: its ranges) and train nothing.", panel=_RUN)] = False,
    fmt: Annotated[OutputFormat, _opt("--format", help="--dry-run output: a table or a JSON list.", panel=_RUN)] = OutputFormat.table,
    parallel: Annotated[Optional[int], _opt("--parallel", help="Run up to N children at once, each in its own process pinned to a device slot, with a live table. (default: one at a time, in this process)", panel=_LAUNCH)] = None,
    devices: Annotated[Optional[str], _opt("--devices", help="Devices the parallel children are pinned to: cpu, cuda (every GPU) or cuda:0,cuda:1,... (default: the children's --device, else every GPU)", panel=_LAUNCH)] = None,
    per_device: Annotated[Optional[int], _opt("--per-device", help="Children sharing one device at a time. (default: 1 per GPU; any number on cpu)", panel=_LAUNCH)] = None,
    launcher: Annotated[Optional[LauncherKind], _opt("--launcher", help="pool: processes on this machine; local: submitit's local executor; slurm: submitit jobs on a Slurm cluster (needs a tracking server and a store on a shared filesystem). (default: pool)", panel=_LAUNCH)] = None,
    partition: Annotated[Optional[str], _opt("--partition", help="Slurm partition.", panel=_SLURM)] = None,
    gpus_per_task: Annotated[Optional[int], _opt("--gpus-per-task", help="GPUs per child job.", panel=_SLURM)] = None,
    time: Annotated[Optional[str], _opt("--time", help="Each job's time limit: MINUTES, H:MM:SS or D-HH:MM:SS (also --launcher local). (default: 24 hours)", panel=_SLURM)] = None,
    slurm_option: Annotated[Optional[list[str]], _opt("--slurm-option", help="Any other sbatch option, KEY=VALUE (repeatable), e.g. --slurm-option mem=64G.", panel=_SLURM)] = None,
    search: Annotated[Optional[SearchKind], _opt("--search", help="Search the recipe's \\[search] ranges with an Optuna study (TPE sampler, median pruning) instead of running a grid.", panel=_SEARCH)] = None,
    trials: Annotated[Optional[int], _opt("--trials", help="Trials of the search (a resumed search runs up to this many in all).", panel=_SEARCH)] = None,
    objective: Annotated[Optional[Objective], _opt("--objective", help="Dev figure the search maximises; each trial keeps its checkpoint by it. (default: the recipe's, else ccc_mean; f1_macro for task1)", panel=_SEARCH)] = None,
    study_storage: Annotated[Optional[str], _opt("--study-storage", help="Optuna storage: a database URL or a journal file. (default: optuna.journal beside the tracking store)", panel=_SEARCH)] = None,
) -> None:
    """Run a recipe's grid, or search its ranges, as child runs of one parent run; then print a summary table."""
    given = _given(locals(), skip=("dry_run", "fmt", "resume", "parallel", "devices", "per_device", "launcher", "partition",
                                   "gpus_per_task", "time", "slurm_option", "search", "trials", "objective",
                                   "study_storage"))  # first: only the parameters are local yet
    from ..train.cluster import SlurmOptions, parse_options
    from ..train.launchers import LaunchOptions
    from ..train.recipes import load_recipe, parse_set
    from ..train.sweep import plan_sweep, run_sweep
    from ..train.sweep_search import SearchOptions

    overrides = {**parse_set(set_), **given}
    rec = load_recipe(recipe)
    slurm = SlurmOptions(partition, gpus_per_task, time, parse_options(slurm_option))
    launch = LaunchOptions(launcher.value if launcher else "pool", parallel, devices, per_device, slurm)
    searching = SearchOptions(objective.value if objective else None, trials, study_storage) if search else None
    if search is None and (trials or objective or study_storage):
        from ..errors import InvalidOption

        raise InvalidOption("trials" if trials else "objective" if objective else "study_storage", "only with --search optuna")
    if dry_run:  # nothing is looked up: `init_from` stays as written (e.g. best:f1), the scheme unmade
        if searching is not None:
            _print_space(rec)
        else:
            _print_plan(rec, plan_sweep(rec, overrides), fmt)
        return
    st = state(ctx)
    tracker = st.tracker(overrides.get("experiment") or rec.base.get("experiment"))
    result = run_sweep(rec, st.layout, tracker, overrides=overrides, console=err, launch=launch, search=searching,
                       resume=resume)
    if result.parent_run_id is None:
        return
    _print_sweep(result, recipe)


def _print_sweep(result: Any, recipe: Path) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    df = result.summary()
    table = Table(title=f"sweep {recipe.stem}  (parent run {result.parent_run_id})", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for col in df.columns:
        table.add_column(col.replace("best_dev_", ""), justify="right" if df[col].dtype.kind in "fi" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[escape(_fmt(v)) for v in row])
    out.print(table)
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False)
    if result.best is not None:
        b = result.best
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in b["params"].items())
        out.print(f"best: trial {b['trial']} (run {b['run_id']}): {b['objective']} {b['value']:.4f}; {values}",
                  highlight=False)
    if result.failed:
        for label, why in result.failed:
            err.print(f"[bold red]failed:[/] {escape(label)}: {escape(why)}", highlight=False)
        err.print(f"{len(result.failed)} child run(s) did not finish; `sertool sweep {escape(str(recipe))} --resume "
                  f"{result.parent_run_id[:8]}` goes on with them", highlight=False)
        raise typer.Exit(1)


def _print_space(rec: Any) -> None:
    if rec.search is None:
        from ..errors import InvalidOption

        raise InvalidOption("search", f"{rec.path} has no [search] table to search")
    from rich.markup import escape
    from rich.table import Table

    spec = rec.search
    table = Table(title=f"{rec.sweep_name}: search (dry run)", title_justify="left")
    table.add_column("option")
    table.add_column("values")
    for p in spec.params:
        table.add_row(p.name, escape(p.describe().split(" in ", 1)[1]))
    out.print(table)
    out.print(f"TPE sampler seed {spec.seed}; pruner {spec.pruner} (after {spec.startup_trials} finished trials, "
              f"after epoch {spec.prune_warmup} at the earliest)", highlight=False)


def _print_plan(rec: Any, configs: list, fmt: OutputFormat) -> None:
    import json

    rows = [c.to_dict() for c in configs]
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.table import Table

    varied = [k for k in rows[0] if any(r[k] != rows[0][k] for r in rows)] or ["stage"]
    table = Table(title=f"{rec.sweep_name}: {len(rows)} runs (dry run; --format json for every field)",
                  title_justify="left")
    for k in varied:
        table.add_column(k)
    for r in rows:
        table.add_row(*(_fmt(r[k]) for k in varied))
    out.print(table)
    if rec.scheme is not None:
        out.print(f"split scheme {rec.base['splits']!r}: {rec.scheme.to_json()} (made when missing)", highlight=False)


def _given(values: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options the user typed (not None), enums as their values, keyed by config field."""
    drop = {"ctx", "recipe", "set_", *skip}
    given = {k.rstrip("_"): (v.value if isinstance(v, Enum) else v) for k, v in values.items()
             if k not in drop and v is not None}
    if "aux" in given:
        given["aux"] = tuple(given["aux"])
    if "refit" in given:
        from ..errors import InvalidOption
        from ..train.config import REFIT_ON

        on, epochs = given.pop("refit")
        if on != REFIT_ON:
            raise InvalidOption("refit", f"{on!r}: the only refit is {REFIT_ON} (then the epochs)")
        given["refit_epochs"] = epochs
    return given


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    return "-" if v is None else str(v)


def _print_result(result: "TrainResult", tracker: Any) -> None:
    from rich import box
    from rich.table import Table

    from ..metrics import METRIC_NAMES

    table = Table(title=f"run {result.run_id}  ({result.config.run_label}, best epoch {result.best_epoch})",
                  title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("split")
    for col in METRIC_NAMES:
        table.add_column(col, justify="right")
    rows = {"Development": result.best, **result.tests}
    for split, m in rows.items():
        table.add_row(split, *[_fmt(m.get(c, math.nan)) for c in METRIC_NAMES])
    out.print(table)
    from rich.markup import escape

    for warning in result.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    if result.stopped_epoch is not None:
        err.print(f"early stop after epoch {result.stopped_epoch}: no better dev figure since epoch {result.best_epoch}",
                  highlight=False)
    if result.refit is not None:
        err.print(f"refit on Train + Development ({result.refit.config.epochs} epochs): run {result.refit.run_id} "
                  "(no dev figures: Development trained it)", highlight=False)
    err.print(f"tracked in {tracker.shown_uri} (experiment {tracker.experiment!r}); browse with `sertool ui`")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("sweep")(sweep)
