"""`sertool ensemble`: average the best tracked runs per attribute (Task 2) or by macro-F1 (Task 1), or
stack them under a meta-model cross-fitted on dev (`--method stack`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import err, out, state
from ._options import Alias, ExperimentOpt, Method, names


def ensemble(
    ctx: typer.Context,
    task: Annotated[int, typer.Option("--task", min=1, max=2, help="1: classes by macro-F1; 2: attributes by CCC.")] = 2,
    top: Annotated[Optional[int], typer.Option("--top", "-k", help="Members per target (greedy: the largest start bag tried).", show_default="3 for Task 2 and stack, 1 for Task 1")] = None,
    method: Annotated[
        Method, typer.Option("--method", help="topk, greedy forward selection with replacement (Caruana), or stack: "
                             "a meta-model over the top K (logistic on class log-probabilities / ridge per attribute).")
    ] = Method.topk,
    folds: Annotated[
        int, typer.Option("--folds", help="Stack: K-fold cross-fitting on dev; every dev figure is out of fold.")
    ] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Stack: seed of the fold draw.")] = 0,
    experiment: ExperimentOpt = None,
    filter_string: Annotated[
        str, typer.Option("--filter", help="MLflow filter on the candidate runs, e.g. \"params.pooling = 'asp'\".")
    ] = "",
    stages: Annotated[
        Optional[str], typer.Option("--stages", help="Training stages the candidates come from (comma-separated).",
                                    show_default="the task's own and pretrain")
    ] = None,
    parent: Annotated[Optional[str], typer.Option("--parent", help="Only children of this sweep run.")] = None,
    pins: Annotated[
        Optional[list[str]], typer.Option("--pin", help="Always a member: RUN, or RUN:attribute for one target (repeatable).")
    ] = None,
    baseline: Annotated[
        Optional[Path],
        typer.Option("--with-baseline", help="Challenge-format CSV (FileName,EmoAct,EmoVal,EmoDom) to average in."),
    ] = None,
    baseline_attributes: Annotated[
        str, typer.Option("--baseline-attributes", help="The attributes the baseline joins (the paper: arousal and dominance).")
    ] = "arousal,dominance",
    test_split: Annotated[str, typer.Option("--test-split", help="Split the submission covers.")] = "Test3",
    out_path: Annotated[
        Optional[Path],
        typer.Option("--out", help="Submission file.", show_default="<store>/submissions/<name>_task<T>.csv"),
    ] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default ens-task<T>-<method><K>).")] = None,
    include_ensembles: Annotated[
        bool, typer.Option("--include-ensembles", help="Earlier ensemble runs are candidates too.")
    ] = False,
    allow_mixed_data: Annotated[
        bool, typer.Option("--allow-mixed-data", help="Ensemble runs trained on different data (other digests: "
                           "labels, clips, targets, encoders or audio differ) instead of refusing them.")
    ] = False,
    register: Annotated[
        Optional[str], typer.Option("--register", help="Also export the ensemble as an MLflow pyfunc model and "
                                    "register it as a new version of this registered model.")
    ] = None,
    alias: Annotated[
        Alias, typer.Option("--alias", help="The registry alias the new version gets (with --register).")
    ] = Alias.candidate,
) -> None:
    """Choose members on dev, average their predictions, log the ensemble run, write the submission."""
    from ..ensemble.build import EnsembleConfig, build_ensemble

    cfg = EnsembleConfig(
        task=task, top=top, method=method.value, experiment=experiment, filter_string=filter_string,
        stages=names(stages) or None, parent=parent, baseline=baseline, baseline_attributes=names(baseline_attributes),
        pins=tuple(pins or ()), test_split=test_split, name=name, out=out_path, include_ensembles=include_ensembles,
        folds=folds, seed=seed, allow_mixed_data=allow_mixed_data,
    )
    st = state(ctx)
    tracker = st.tracker(experiment)
    if register is not None:
        from ..jobs.export import check_model_name

        check_model_name(register)  # before any work
    result = build_ensemble(st.layout, cfg, tracker, console=err)
    for note in result.notes:
        err.print(f"note: {note}", highlight=False)
    print_result(result)
    if register is not None and result.run_id:
        from ..jobs.export import register_run

        reg = register_run(st.layout, tracker, result.run_id, register, alias.value, experiment=experiment)
        out.print(f"registered: {reg.name} version {reg.version} (alias @{reg.alias}; logged model {reg.model_id}); "
                  f"load it with mlflow.pyfunc.load_model('models:/{reg.name}@{reg.alias}')", highlight=False)


def print_result(result) -> None:
    """One rich table per target: members (times chosen, own dev score), then the ensemble's dev score
    (a stack's out of fold)."""
    from rich import box
    from rich.table import Table

    for target, rep in result.reports.items():
        title = "classes (macro-F1)" if target == "class" else f"{target} (CCC)"
        table = Table(title=f"{result.name}: {title}", title_justify="left", box=box.SIMPLE_HEAD)
        for col, just in (("member", "left"), ("run", "left"), ("×", "right"), (f"dev {rep.metric}", "right")):
            table.add_column(col, justify=just)
        for m in rep.members:
            table.add_row(m.name, m.member[:8], str(m.count), f"{m.dev:.4f}")
        table.add_section()
        label = f"stack ({result.spec.extra.get('folds')}-fold, out of fold)" if result.stacks else "ensemble"
        table.add_row(f"[bold]{label}[/]", "", str(sum(m.count for m in rep.members)), f"[bold]{rep.ensemble_dev:.4f}[/]")
        table.add_row("best single run", "", "1", f"{rep.best_single_dev:.4f}")
        out.print(table)
    figures = "  ".join(f"{k} {v:.4f}" for k, v in result.dev_metrics.items())
    out.print(f"dev: {figures}", highlight=False)
    out.print(f"run {result.run_id}  ({result.spec.candidates} candidates, {result.spec.method})", highlight=False)
    out.print(f"submission: {result.submission}", highlight=False)
    if result.dev_file is not None:
        out.print(f"Development predictions (challenge format; `sertool score` checks them): {result.dev_file}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.command("ensemble")(ensemble)
