"""Where a feature store keeps its parts.

A store is a directory: the DuckDB catalog (metadata and the index of every embedding) beside a
Zarr v3 group that holds the frames. The CLI picks the root (`--store`, else `SERTOOL_STORE`) and
hands it down; without one it is `./store`, so that every command of one project finds the same store
without being told.

The Zarr arrays may live on any fsspec filesystem (`--store s3://bucket/store`: arrays at
`s3://bucket/store/embeddings.zarr`); the catalog is a DuckDB file and stays on a local or shared disk
(`--catalog PATH` or `SERTOOL_CATALOG`), whose folder then holds the store's local parts (models,
segments).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SERTOOL_STORE"
"""Where the CLI reads the store root from when `--store` is not given."""
CATALOG_ENV = "SERTOOL_CATALOG"
DEFAULT_ROOT = Path("store")


def resolve_root(root: str | Path | None = None) -> Path:
    """The store root the user gave, else ./store."""
    return Path(root) if root is not None and str(root) != "" else DEFAULT_ROOT


def is_url(location: str | Path) -> bool:
    """An fsspec URL of a remote filesystem (`s3://...`, `gs://...`); `file://` and plain paths are local."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


@dataclass(frozen=True)
class StoreLayout:
    """Paths inside one store root."""

    root: Path
    """Local root: the catalog, models and segments live here (for a remote store, the catalog's folder)."""
    catalog_file: Path | None = None
    """The catalog when it is not `<root>/catalog.duckdb` (`--catalog`)."""
    embeddings_url: str | None = None
    """fsspec URL of the Zarr group when the arrays live on a remote filesystem."""

    @classmethod
    def at(cls, root: str | Path | None = None, catalog: str | Path | None = None) -> "StoreLayout":
        """The store at `root` (else ./store); `catalog` puts the catalog elsewhere (required for a URL root)."""
        from ..errors import SertoolError

        text = str(root) if root is not None else ""
        cat = catalog if catalog is not None and str(catalog) != "" else None
        if is_url(text):
            if cat is None:
                raise SertoolError(
                    f"--store {text}: the embedding arrays may live there, the DuckDB catalog cannot; "
                    f"give it a local or shared path with --catalog PATH (or {CATALOG_ENV})"
                )
            cat_path = Path(cat)
            return cls(cat_path.parent, catalog_file=cat_path, embeddings_url=text.rstrip("/") + "/embeddings.zarr")
        if text.startswith("file://"):
            text = text[len("file://") :]
        return cls(resolve_root(text or None), catalog_file=Path(cat) if cat is not None else None)

    @property
    def remote(self) -> bool:
        """True when the arrays are on a remote filesystem (read and written through zarr, not local files)."""
        return self.embeddings_url is not None

    @property
    def catalog(self) -> Path:
        return self.catalog_file if self.catalog_file is not None else self.root / "catalog.duckdb"

    @property
    def embeddings(self) -> Path:
        """The local Zarr group (for a remote store, see `zarr_root`)."""
        return self.root / "embeddings.zarr"

    @property
    def zarr_root(self) -> str | Path:
        """Where the Zarr group is: a local path, or the fsspec URL of a remote store."""
        return self.embeddings_url if self.embeddings_url is not None else self.embeddings

    @property
    def models(self) -> Path:
        """Offline-built checkpoints (the `tiny` preset) live with the store that uses them."""
        return self.root / "models"

    @property
    def views(self) -> Path:
        """Packed training views (`sertool store pack`): local files, loaded whole into memory to train."""
        return self.root / "views"
