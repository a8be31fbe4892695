"""TOML recipes: every `sertool train` option, written down so a run can be repeated.

A recipe's top-level keys are `TrainConfig` fields (dashes or underscores). An optional `[search]` table
declares ranges for `sertool sweep --search optuna` (see `train.search`). An optional `[scheme]` table
names the split scheme the runs train on and how it is made (`sertool store split` with these values;
`sertool train --recipe` and `sertool sweep` make it when the catalog lacks it), so that a recipe like
the paper's ablation reproduces its data split too. An optional `[sweep]` table turns it into a grid
for `sertool sweep`:

```toml
stage = "pretrain"
epochs = 50
splits = "paper-ablation"

[scheme]                                             # `splits` is made this way when missing
from = "Train"
holdout = 0.1
by = "speaker"
seed = 0

[sweep]
grid = { alpha = [0, 0.5, 1], beta = [0, 0.5, 1] }   # cartesian product
exclude = [{ alpha = 0, beta = 0 }]                   # drop combinations matching all these keys
runs = [{ pooling = "mean" }, {}]                     # explicit variations, crossed with the grid
```

Precedence, lowest first: the stage's defaults, the recipe, then flags given on the command line (and, in
a sweep, each child's grid values over the recipe's). Optional fields take `"none"` to mean None.
"""

from __future__ import annotations

import itertools
import re
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInput, InvalidOption, SertoolError
from .config import ConfigError, TrainConfig, field_names

if TYPE_CHECKING:
    from ..store.splits import SplitParams
    from .search_space import SearchSpec

SWEEP_KEYS = ("grid", "exclude", "runs", "name")
SCHEME_KEYS = ("from", "holdout", "by", "seed")


@dataclass
class Recipe:
    """A parsed recipe: the base options and, for sweeps, the list of per-child variations."""

    path: Path | None
    base: dict[str, Any] = field(default_factory=dict)
    children: list[dict[str, Any]] = field(default_factory=list)
    """One dict of overrides per child run (empty list: not a sweep)."""
    sweep_name: str | None = None
    scheme: "SplitParams | None" = None
    """How the recipe's split scheme (`base["splits"]`) is made, where the recipe says."""
    search: "SearchSpec | None" = None
    """The `[search]` table (`sertool sweep --search optuna`; see `train.search`)."""

    @property
    def swept_keys(self) -> list[str]:
        keys: list[str] = []
        for c in self.children:
            keys += [k for k in c if k not in keys]
        return keys


def _norm(key: str) -> str:
    return key.replace("-", "_")


def _line_of(text: str, key: str) -> int | None:
    """The 1-based line where `key` is assigned, so errors point into the file."""
    pat = re.compile(rf"^\s*{re.escape(key)}\s*=|[{{,]\s*{re.escape(key)}\s*=")
    for i, line in enumerate(text.splitlines(), start=1):
        if pat.search(line):
            return i
    return None


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def coerce(name: str, value: Any) -> Any:
    """Check and convert one option's value to its field type; raises `ConfigError` naming the option."""
    key = _norm(name)
    types_ = _field_types()
    if key not in types_:
        raise ConfigError(key, f"unknown option (known: {', '.join(field_names())})")
    hint = types_[key]
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        raise ConfigError(key, "may not be none")
    if typing.get_origin(base) is tuple:  # encoders: list or comma-separated string
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"expected a list of names, got {value!r}")
        return tuple(value)
    if base is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(key, f"expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(key, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    return value


def _coerce_table(path: Path, text: str, table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        try:
            out[_norm(k)] = coerce(k, v)
        except ConfigError as e:
            raise BadInput(path, e.message, row=_line_of(text, k), field=k) from None
    return out


def load_recipe(path: str | Path) -> Recipe:
    """Parse and check a recipe file; bad keys or values raise `BadInput` naming the file, line and key."""
    path = Path(path)
    if not path.is_file():
        raise SertoolError(f"{path}: no such recipe file")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise BadInput(path, f"not valid TOML ({e})", row=int(m.group(1)) if m else None) from None
    sweep = data.pop("sweep", None)
    scheme = data.pop("scheme", None)
    search = data.pop("search", None)
    base = _coerce_table(path, text, data)
    recipe = Recipe(path=path, base=base, scheme=_scheme(path, text, scheme, base))
    if search is not None:
        from .search_space import parse_search

        recipe.search = parse_search(path, text, search)
        recipe.sweep_name = path.stem
    if sweep is None:
        return recipe
    if not isinstance(sweep, dict):
        raise BadInput(path, "must be a table", row=_line_of(text, "sweep"), field="sweep")
    unknown = [k for k in sweep if k not in SWEEP_KEYS]
    if unknown:
        raise BadInput(path, f"unknown sweep key (known: {', '.join(SWEEP_KEYS)})", row=_line_of(text, unknown[0]),
                       field=f"sweep.{unknown[0]}")
    grid = sweep.get("grid", {})
    axes: list[tuple[str, list[Any]]] = []
    for k, values in grid.items():
        if not isinstance(values, list) or not values:
            raise BadInput(path, "a grid axis is a non-empty list of values", row=_line_of(text, k), field=f"sweep.grid.{k}")
        coerced = [_coerce_table(path, text, {k: v})[_norm(k)] for v in values]
        axes.append((_norm(k), coerced))
    runs = [_coerce_table(path, text, r) for r in sweep.get("runs", [{}])] or [{}]
    exclude = [_coerce_table(path, text, x) for x in sweep.get("exclude", [])]
    for combo in itertools.product(*[[(k, v) for v in vs] for k, vs in axes]):
        for run in runs:
            child = {**dict(combo), **run}
            if any(all(child.get(k, base.get(k)) == v for k, v in x.items()) for x in exclude):
                continue
            recipe.children.append(child)
    if not recipe.children:
        raise BadInput(path, "the sweep has no runs left after `exclude`", field="sweep")
    recipe.sweep_name = sweep.get("name") or path.stem
    return recipe


def _scheme(path: Path, text: str, table: Any, base: dict[str, Any]) -> "SplitParams | None":
    """The `[scheme]` table as `SplitParams` (checked), or None without one."""
    from ..store.splits import SplitParams

    if table is None:
        return None
    if not isinstance(table, dict):
        raise BadInput(path, "must be a table", row=_line_of(text, "scheme"), field="scheme")
    unknown = [k for k in table if k not in SCHEME_KEYS]
    if unknown:
        raise BadInput(path, f"unknown scheme key (known: {', '.join(SCHEME_KEYS)})", row=_line_of(text, unknown[0]),
                       field=f"scheme.{unknown[0]}")
    if base.get("splits", "corpus") == "corpus":
        raise BadInput(path, "a [scheme] table needs `splits = NAME` (the scheme it makes)", row=_line_of(text, "scheme"),
                       field="splits")
    try:
        return SplitParams(from_split=table.get("from", "Train"), holdout=float(table.get("holdout", 0.1)),
                           by=table.get("by", "speaker"), seed=int(table.get("seed", 0)))
    except InvalidOption as e:
        key = {"from_split": "from"}.get(e.option, e.option)
        raise BadInput(path, e.message, row=_line_of(text, key), field=f"scheme.{key}") from None


def ensure_scheme(recipe: Recipe | None, catalog_path: Path) -> str | None:
    """Make the recipe's split scheme in the catalog when it is missing (as `sertool store split` would);
    refuse one of the same name made another way. Returns the scheme's name when this call made it."""
    if recipe is None or recipe.scheme is None:
        return None
    from ..store.catalog import Catalog
    from ..store.splits import ensure_scheme as ensure

    with Catalog(catalog_path) as cat:
        return ensure(cat, recipe.base["splits"], recipe.scheme)


def resolve_config(
    recipe: Recipe | None = None,
    overrides: dict[str, Any] | None = None,
    child: dict[str, Any] | None = None,
    resolve_init: Callable[[str], tuple[str, dict[str, Any]]] | None = None,
) -> TrainConfig:
    """Build the run's config: stage defaults < recipe < child grid values < command-line overrides.

    `overrides` holds only the options the user actually gave (None values are dropped). Invalid
    combinations raise `BadInput` on the recipe file when the recipe set the offending key.
    `resolve_init(init_from) -> (run_id, architecture)` turns `init_from` into a run id and supplies the
    checkpoint's dims, pooling and encoders as defaults (so a fine-tune needs not repeat them).
    """
    given = {_norm(k): v for k, v in (overrides or {}).items() if v is not None}
    merged: dict[str, Any] = {}
    if recipe is not None:
        merged.update(recipe.base)
    merged.update(child or {})
    for k, v in given.items():
        merged[k] = coerce(k, v)  # a ConfigError names the option; the CLI shows it as its flag
    if merged.get("init_from") and resolve_init is not None:
        run_id, arch = resolve_init(merged["init_from"])
        merged = {**arch, **merged, "init_from": run_id}
    try:
        return TrainConfig(**merged)
    except ConfigError as e:
        if recipe is not None and recipe.path is not None and e.field not in given:
            text = recipe.path.read_text(encoding="utf-8")
            raise BadInput(recipe.path, e.message, row=_line_of(text, e.field), field=e.field) from None
        raise


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs; values are read as TOML (`3`, `1e-5`, `true`, `"asp"`) or else as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidOption("set", f"{item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[_norm(key.strip())] = value
    return out
