"""Ad-hoc SQL on the catalog (`sertool store query`): one statement that reads, and nothing else.

Read-only is the point: users explore the catalog freely without any risk of editing it, or
anything else, by accident. A read-only DuckDB connection alone is not that: `COPY ... TO`,
`EXPORT DATABASE`, `read_text('/etc/shadow')`, `glob('/root/*')` and extension installs all work on
one. So the query runs on a read-only connection whose DuckDB was started with external access
disabled (no file but the catalog itself is read or written, no extension is installed or
loaded), after which the configuration is locked (`SET lock_configuration = true`, DuckDB's own
advice: settings first, the lock last) so the query cannot turn any of it back on. On top of that
only one statement of a reading kind is accepted, so `select 1; copy ...` never reaches DuckDB.

Results are fetched up to a row limit and the connection is closed before anything is printed:
rendering a table of millions of rows takes minutes, and a reader holding the file keeps the
store's writer waiting (`catalog.Catalog`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidOption, SertoolError
from .catalog import Catalog

LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
"""DuckDB settings of the query's database, applied as it starts (none can be re-enabled later)."""

READING = ("SELECT", "EXPLAIN", "PRAGMA", "CALL")
"""Statement kinds a query may be (SELECT covers WITH, DESCRIBE, SHOW, SUMMARIZE and FROM-first)."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool
    """True when the result had more rows than the limit (`rows` holds the first `limit`)."""


def _refuse(kind: str) -> SertoolError:
    kind = "INSTALL/LOAD" if kind == "LOAD" else kind  # DuckDB files INSTALL under LOAD
    return SertoolError(
        f"store query is read-only: {kind} statements are refused (it runs one SELECT, EXPLAIN, PRAGMA or "
        "CALL on the catalog; the catalog changes only through sertool commands)"
    )


def read_only_query(catalog_path: str | Path, sql: str, *, limit: int | None = None) -> QueryResult:
    """Columns and at most `limit` rows (None or 0: all) of one reading statement; anything else, and
    any SQL error, is one `SertoolError` line, with the store untouched."""
    import duckdb

    if limit is not None and limit < 0:
        raise InvalidOption("limit", f"must be 0 (no limit) or positive, got {limit}")
    with Catalog(catalog_path, read_only=True, config=LOCKED_DOWN) as cat:
        con = cat.con
        try:
            con.execute("SET lock_configuration = true")
            statements = con.extract_statements(sql)
            if len(statements) != 1:
                raise SertoolError(
                    f"store query runs exactly one statement, got {len(statements)}"
                    + (" (run them one per command)" if statements else ""))
            kind = statements[0].type.name
            if kind not in READING:
                raise _refuse(kind)
            cur = con.execute(statements[0].query)
            if cur.description is None:
                return QueryResult([], [], False)
            columns = [d[0] for d in cur.description]
            if limit:
                rows = cur.fetchmany(limit + 1)
                return QueryResult(columns, rows[:limit], len(rows) > limit)
            return QueryResult(columns, cur.fetchall(), False)
        except duckdb.Error as e:
            msg = str(e).strip()
            m = re.search(r'Cannot execute statement of type "(\w+)".*read-only', msg)
            if m:
                raise _refuse(m.group(1)) from None
            first = msg.splitlines()[0] if msg else type(e).__name__
            if isinstance(e, duckdb.PermissionException):
                raise SertoolError(f"store query reads the catalog only: {first}") from None
            raise SertoolError(f"query failed: {first}") from None
