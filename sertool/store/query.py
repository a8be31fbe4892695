"""Ad-hoc SQL on the catalog through a read-only connection (`sertool store query`).

Read-only is the point: users explore the catalog freely without any risk of editing it by accident,
and a running ingest or embed is never blocked by a writer lock from a query.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import SertoolError
from .catalog import Catalog


def read_only_query(catalog_path: str | Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Column names and rows of `sql`; any attempt to write, and any SQL error, is one clear `SertoolError`."""
    import duckdb

    with Catalog(catalog_path, read_only=True) as cat:
        try:
            return cat.query(sql)
        except duckdb.Error as e:
            msg = str(e).strip()
            m = re.search(r'Cannot execute statement of type "(\w+)".*read-only', msg)
            if m:
                raise SertoolError(
                    f"store query is read-only: {m.group(1)} statements are refused "
                    "(the catalog changes only through sertool commands)"
                ) from None
            first = msg.splitlines()[0] if msg else type(e).__name__
            raise SertoolError(f"query failed: {first}") from None
