"""A recipe's `[search]` table, checked: the options a search varies (ranges or choices) and the study's
settings (see `train.search` for the table's form and what runs it). Each entry is checked when the
recipe is read, with its file and line, as a grid's are: a typo must not surface after hours of trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..metrics import METRIC_NAMES

STUDY_KEYS = ("objective", "trials", "seed", "startup_trials", "prune_warmup", "pruner")
PRUNERS = ("median", "none")
MINIMUM = {"trials": 1, "prune_warmup": 1}


@dataclass(frozen=True)
class Param:
    """One searched option: a number range, or a list of choices."""

    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices is not None:
            return CategoricalDistribution(list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float):
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]" + (" (log)" if self.log else "")


@dataclass
class SearchSpec:
    """A recipe's `[search]` table: the space and the study's settings."""

    params: list[Param]
    objective: str | None = None
    trials: int | None = None
    seed: int = 0
    startup_trials: int = 5
    prune_warmup: int = 1
    pruner: str = "median"

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]


def parse_search(path: Path, text: str, table: Any) -> SearchSpec:
    """Check a recipe's `[search]` table; a bad entry is `BadInput` naming the file, line and key."""
    from .recipes import _field_types, _line_of, _norm, coerce
    from .config import ConfigError

    def bad(key: str, message: str) -> BadInput:
        return BadInput(path, message, row=_line_of(text, key.rsplit(".", 1)[-1]), field=f"search.{key}")

    if not isinstance(table, dict):
        raise BadInput(path, "must be a table", row=_line_of(text, "search"), field="search")
    study = table.get("study", {})
    if not isinstance(study, dict):
        raise bad("study", "must be a table of the search's settings")
    spec = SearchSpec(params=[])
    for key, value in study.items():
        if key not in STUDY_KEYS:
            raise bad(f"study.{key}", f"unknown setting (known: {', '.join(STUDY_KEYS)})")
        ok = {"objective": value in METRIC_NAMES, "pruner": value in PRUNERS}.get(
            key, isinstance(value, int) and not isinstance(value, bool) and value >= MINIMUM.get(key, 0))
        if not ok:
            want = {"objective": f"one of {', '.join(METRIC_NAMES)}", "pruner": f"one of {', '.join(PRUNERS)}"}.get(
                key, f"an integer >= {MINIMUM.get(key, 0)}")
            raise bad(f"study.{key}", f"expected {want}, got {value!r}")
        setattr(spec, key, value)
    types_ = _field_types()
    for key, value in table.items():
        if key == "study":
            continue
        name = _norm(key)
        if name not in types_:
            raise bad(key, "unknown option (a [search] entry names a `sertool train` option)")
        if not isinstance(value, dict):
            raise bad(key, "expected { low = ., high = . [, log = true] } or { choices = [...] }")
        try:
            spec.params.append(_param(name, value, types_[name], coerce))
            _alone(spec.params[-1])
        except ConfigError as e:
            raise bad(key, e.message) from None
        except ValueError as e:
            raise bad(key, str(e)) from None
    if not spec.params:
        raise BadInput(path, "names no option to search", row=_line_of(text, "search"), field="search")
    return spec


def _alone(param: Param) -> None:
    """Each choice (and each end of a range) must be a value the option takes on its own: a config with
    it alone is built, and only an error about this option is raised (not one of their combinations)."""
    from .config import ConfigError, TrainConfig

    for value in param.choices if param.choices is not None else (param.low, param.high):
        try:
            TrainConfig(**{param.name: value})
        except ConfigError as e:
            if e.field == param.name:
                raise


def _param(name: str, value: dict[str, Any], hint: Any, coerce: Any) -> Param:
    unknown = sorted(set(value) - {"low", "high", "log", "step", "choices"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (a range has low, high, log, step; a list has choices)")
    if "choices" in value:
        choices = value["choices"]
        if set(value) != {"choices"} or not isinstance(choices, list) or not choices:
            raise ValueError("choices is a non-empty list, alone")
        values = tuple(coerce(name, c) for c in choices)
        if any(isinstance(v, tuple) for v in values):  # encoders: optuna takes plain values only
            values = tuple(",".join(v) if isinstance(v, tuple) else v for v in values)
        return Param(name, choices=values)
    if "low" not in value or "high" not in value:
        raise ValueError("a range needs low and high (or give choices = [...])")
    number = hint if hint in (int, float) else next((a for a in getattr(hint, "__args__", ()) if a in (int, float)), None)
    if number is None:
        raise ValueError("not a number option: give choices = [...]")
    low, high = coerce(name, value["low"]), coerce(name, value["high"])
    if not low < high:
        raise ValueError(f"low ({low}) must be below high ({high})")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ValueError("log is true or false")
    if log and low <= 0:
        raise ValueError("a log range needs low > 0")
    step = coerce(name, value["step"]) if "step" in value else None
    if step is not None and (log or step <= 0):
        raise ValueError("step is > 0, and not with log")
    return Param(name, low, high, log, step)
