"""SQL over a store: every table bound as a read-only DuckDB view at a pinned version.

The Lance datasets are handed to DuckDB as they are (DuckDB scans them through the Arrow dataset
interface, pushing projections and filters down), so a query reads only the columns and rows it needs.
Nothing is copied and nothing can be written back: the views are scans of immutable Lance versions.
"""
from __future__ import annotations

from typing import Any

import duckdb

from .schema import TABLES
from .store import Store


def connect(store: Store, as_of: int | str | None = None, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per table (`samples`, `ngram_totals`, ..., `runs`)."""
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    versions = store.table_versions(as_of)
    for table in TABLES:
        if table == "runs":
            runs = store.runs(as_of)
            con.register("__curator_runs", runs)
        else:
            import lance

            con.register(f"__curator_{table}", lance.dataset(store._uri(table), version=versions[table]))
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM "__curator_{table}"')
    return con


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None):
    """Execute and fully materialise a query as an Arrow table (an unread result would block the connection)."""
    return con.sql(sql, params=params or None).to_arrow_table()
