"""SQL over a store: every table bound as a read-only DuckDB view at a pinned version.

The Lance datasets are handed to DuckDB as they are (DuckDB scans them through the Arrow dataset
interface, pushing projections and filters down), so a query reads only the columns and rows it needs.
Nothing is copied and nothing can be written back: the views are scans of immutable Lance versions.
"""
from __future__ import annotations

from typing import Any

import duckdb
import lance
import pyarrow as pa

from .schema import SCORES_PREFIX, TABLES, arrow_schema, table_schema
from .store import Store

KEY_COLUMNS = tuple(table_schema("scores").arrow.names)


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
        elif table not in versions:  # not created yet in this store (made before the table existed)
            con.register(f"__curator_{table}", arrow_schema(table).empty_table())
        else:
            con.register(f"__curator_{table}", lance.dataset(store._uri(table), version=versions[table]))
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM "__curator_{table}"')
    score_schemas = {}
    for table in store.score_tables(as_of):
        ds = lance.dataset(store._uri(table), version=versions[table])
        con.register(f"__curator_{table}", ds)
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM "__curator_{table}"')
        score_schemas[table] = ds.schema
    con.execute(_long_scores_view(score_schemas))
    return con


def _is_metric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)


def _long_scores_view(schemas: dict[str, pa.Schema]) -> str:
    """`scores(sample_id, scorer, config_hash, run_id, metric, value)`: every numeric or boolean score column
    of every score table as one row per (sample, metric), so generic queries need no knowledge of each
    scorer. Booleans become 0/1; strings, lists and vectors (embeddings, token probabilities) are left
    out; read them from `scores_<scorer>`."""
    parts = []
    for table, schema in schemas.items():
        scorer = table.removeprefix(SCORES_PREFIX)
        for f in schema:
            if f.name in KEY_COLUMNS or not _is_metric(f.type):
                continue
            parts.append(
                f"SELECT sample_id, '{scorer}' AS scorer, config_hash, run_id, '{f.name}' AS metric, "
                f'CAST("{f.name}" AS DOUBLE) AS value FROM "{table}"'
            )
    if not parts:
        parts.append("SELECT NULL::VARCHAR AS sample_id, NULL::VARCHAR AS scorer, NULL::VARCHAR AS config_hash, "
                     "NULL::VARCHAR AS run_id, NULL::VARCHAR AS metric, NULL::DOUBLE AS value WHERE false")
    return "CREATE VIEW scores AS " + "\nUNION ALL ".join(parts)


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None):
    """Execute and fully materialise a query as an Arrow table (an unread result would block the connection)."""
    return con.sql(sql, params=params or None).to_arrow_table()
