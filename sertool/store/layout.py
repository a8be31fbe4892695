"""Where a feature store keeps its parts.

A store is a directory: the DuckDB catalog (metadata and the index of every embedding) beside a
Zarr v3 group that holds the frames. The root is picked by `--store`, else `SERTOOL_STORE`, else
`./store`, so that every command of one project finds the same store without being told.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SERTOOL_STORE"
DEFAULT_ROOT = Path("store")


def resolve_root(root: str | Path | None = None) -> Path:
    """The store root the user meant: explicit argument, then the environment, then ./store."""
    if root is not None and str(root) != "":
        return Path(root)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_ROOT


@dataclass(frozen=True)
class StoreLayout:
    """Paths inside one store root."""

    root: Path

    @classmethod
    def at(cls, root: str | Path | None = None) -> "StoreLayout":
        return cls(resolve_root(root))

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings.zarr"

    @property
    def models(self) -> Path:
        """Offline-built checkpoints (the `tiny` preset) live with the store that uses them."""
        return self.root / "models"
