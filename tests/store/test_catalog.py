"""Every named query: its header matches its text, and it runs on an empty store."""
from __future__ import annotations

import re

import duckdb
import pytest

from curator.store import Store, catalog
from curator.store.query import connect, run_sql
from curator.store.schema import TABLES

QUERIES = sorted(catalog.catalogue())


def test_catalogue_is_not_empty() -> None:
    assert "shift/distinct_n" in QUERIES


@pytest.mark.parametrize("name", QUERIES)
def test_header_matches_query(name: str) -> None:
    q = catalog.get(name)
    assert q.description, f"{name}: no description"
    body = "\n".join(line for line in q.sql.splitlines() if not line.lstrip().startswith("--"))
    used = set(re.findall(r"\$(\w+)", body))
    declared = {p.name for p in q.params}
    assert used == declared, f"{name}: parameters used {sorted(used)} but declared {sorted(declared)}"
    # get_table_names cannot bind parameters; literals stand in for them while parsing.
    read = {t for t in duckdb.get_table_names(re.sub(r"\$\w+", "1", body)) if t in TABLES}
    assert read == set(q.tables), f"{name}: reads {sorted(read)} but header says {sorted(q.tables)}"
    assert q.columns, f"{name}: no columns line"


@pytest.mark.parametrize("name", QUERIES)
def test_runs_on_an_empty_store(tmp_path, name: str) -> None:
    con = connect(Store(tmp_path / "s", create=True))
    q = catalog.get(name)
    params = {p.name: (p.default if not p.required else {"INTEGER": 1, "BIGINT": 1, "DOUBLE": 0.5,
                                                          "VARCHAR": "x", "BOOLEAN": True}[p.type]) for p in q.params}
    result = run_sql(con, q.sql, q.bind(params))
    assert result.column_names == list(q.columns)
    assert result.num_rows == 0 or name.startswith("store/")
