"""Ensembles of tracked runs: best-per-attribute (Task 2) and best-F1 (Task 1), top-K or greedy.

`build_ensemble(layout, EnsembleConfig(...))` does the whole command; `EnsembleSpec` is what an
ensemble run records (and what `sertool predict` reads back to average the same members on new audio).
Modules: `members` (run search, checks), `truth` (dev labels, scores), `select` (top-K, greedy),
`spec` (members and weights), `stack` (cross-fitted meta-models), `challenge` (challenge files),
`build` (the command).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "EnsembleConfig": "config",
    "EnsembleResult": "config",
    "build_ensemble": "build",
    "EnsembleSpec": "spec",
    "blend": "spec",
    "combine": "stack",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
