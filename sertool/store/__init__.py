"""The feature store: a DuckDB catalog plus Zarr embedding arrays. Knows nothing of models or MLflow."""

from .catalog import CORPUS_SCHEME, Catalog
from .layout import StoreLayout, resolve_root

__all__ = ["CORPUS_SCHEME", "Catalog", "StoreLayout", "resolve_root"]
