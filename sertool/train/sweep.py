"""`sertool sweep`: a recipe's grid as child runs of one parent run.

Every child's config is resolved (and so validated) before the first one trains: a typo in the last
grid point must not surface after hours of training. The parent run (`sertool.kind=sweep`) holds the
recipe file and, at the end, a summary table of its children.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOption, SertoolError
from ..store.layout import StoreLayout
from ..tracking.names import RECIPE_DIR, RECIPE_TAG, SWEEP_SUMMARY
from .config import TrainConfig
from .recipes import Recipe, resolve_config

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from ..tracking.tracker import Tracker
    from .loop import TrainResult

@dataclass
class SweepResult:
    parent_run_id: str | None
    swept: list[str]
    """The option names the grid varies."""
    children: list[tuple[dict[str, Any], "TrainResult"]] = field(default_factory=list)

    def summary(self) -> "pd.DataFrame":
        """One row per child: its grid values, run id, selected epoch and best dev figures."""
        import pandas as pd

        rows = []
        for values, res in self.children:
            row: dict[str, Any] = {k: values.get(k) for k in self.swept}
            row["run_id"] = res.run_id
            row["best_epoch"] = res.best_epoch
            row.update({f"best_dev_{k}": v for k, v in res.best.items()})
            rows.append(row)
        return pd.DataFrame(rows)


def plan_sweep(recipe: Recipe, overrides: dict[str, Any] | None = None, resolve_init=None) -> list[TrainConfig]:
    """Every child's resolved config, in grid order (raises on the first invalid one)."""
    if not recipe.children:
        raise SertoolError(f"{recipe.path}: has no [sweep] table; run it with `sertool train --recipe`")
    given = {k for k, v in (overrides or {}).items() if v is not None}
    clash = sorted(given & set(recipe.swept_keys))
    if clash:
        raise InvalidOption(clash[0], "the recipe's sweep varies it; edit the grid instead")
    return [resolve_config(recipe, overrides, child, resolve_init) for child in recipe.children]


def run_sweep(
    recipe: Recipe,
    layout: StoreLayout,
    tracker: "Tracker",
    *,
    overrides: dict[str, Any] | None = None,
    console: "Console | None" = None,
) -> SweepResult:
    """Train every grid point of `recipe` as a child run of one parent `sweep` run."""
    from .runs import init_resolver, train

    from .recipes import ensure_scheme

    experiment = (overrides or {}).get("experiment") or recipe.base.get("experiment")
    ensure_scheme(recipe, layout.catalog)
    configs = plan_sweep(recipe, overrides, init_resolver(tracker, experiment))
    result = SweepResult(None, recipe.swept_keys)
    with tracker.start("sweep", experiment=experiment, run_name=recipe.sweep_name,
                       tags={RECIPE_TAG: str(recipe.path) if recipe.path else None}) as parent:
        result.parent_run_id = parent.run_id
        parent.log_params({"sweep.children": len(configs), "sweep.swept": ",".join(recipe.swept_keys),
                           **{f"recipe.{k}": v for k, v in recipe.base.items()}})
        if recipe.path is not None:
            parent.log_artifact(recipe.path, RECIPE_DIR)
        for i, (child, config) in enumerate(zip(recipe.children, configs), start=1):
            if console is not None and parent.run_id is not None:
                shown = ", ".join(f"{k}={v}" for k, v in child.items()) or "base"
                console.print(f"[bold]sweep {recipe.sweep_name}[/]: run {i}/{len(configs)} ({shown})", markup=True)
            res = train(config, layout, tracker, parent_run_id=parent.run_id, console=console)
            result.children.append((child, res))
        if result.children:
            parent.log_table(result.summary(), SWEEP_SUMMARY)
    return result
