"""Every named query: its header matches its text, and it runs on an empty store."""
from __future__ import annotations

import re

import duckdb
import pytest

from curator.store import Store, catalog
from curator.store.query import connect, run_sql
from curator.store.schema import TABLES

QUERIES = sorted(catalog.catalogue())
# Stand-in values for required parameters, by type.
VALUES = {"INTEGER": 1, "BIGINT": 1, "DOUBLE": 0.5, "VARCHAR": "x", "BOOLEAN": True}
# Literals that replace parameters for get_table_names, which cannot bind them; a VARCHAR one is a
# string so that query_table($table) still parses (as a read of the table named 'x').
LITERALS = {"INTEGER": "1", "BIGINT": "1", "DOUBLE": "0.5", "VARCHAR": "'x'", "BOOLEAN": "TRUE"}


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
    types = {p.name: p.type for p in q.params}
    read_all = duckdb.get_table_names(re.sub(r"\$(\w+)", lambda m: LITERALS[types[m.group(1)]], body))
    read = {t for t in read_all if t in TABLES}
    assert read == set(q.tables), f"{name}: reads {sorted(read)} but header says {sorted(q.tables)}"
    scores = {t for t in read_all if t.startswith("scores_")}
    fixed = {t.name for t in q.score_tables if not t.name.startswith("$")}
    assert scores == fixed, f"{name}: reads score tables {sorted(scores)} but header says {sorted(fixed)}"
    for t in q.score_tables:
        if t.name.startswith("$"):
            assert f"query_table({t.name})" in body, f"{name}: score table {t.name} is not read by query_table"
    assert q.columns, f"{name}: no columns line"


def _params(q: catalog.NamedQuery) -> dict:
    return {p.name: (p.default if not p.required else VALUES[p.type]) for p in q.params}


@pytest.mark.parametrize("name", QUERIES)
def test_runs_on_an_empty_store(tmp_path, name: str) -> None:
    con = connect(Store(tmp_path / "s", create=True))
    q = catalog.get(name)
    params = q.bind(_params(q))
    # An empty store has no score tables (one appears when its scorer first runs): stand in empty ones
    # with the columns the header declares.
    for t in q.score_tables:
        cols = ", ".join(f'"{c}" {typ}' for c, typ in (*((k, "VARCHAR") for k in catalog.SCORE_KEY_COLUMNS),
                                                        *t.columns))
        con.execute(f'CREATE TABLE "{t.resolve(params)}" ({cols})')
    assert q.missing_score_tables(con, params) == []
    result = run_sql(con, q.sql, params)
    assert result.column_names == list(q.columns)
    assert result.num_rows == 0 or name.startswith("store/")


def test_missing_score_tables_are_named(tmp_path) -> None:
    con = connect(Store(tmp_path / "s", create=True))
    q = catalog.get("shift/scores/pass_rate")
    params = q.bind(_params(q) | {"table": "scores_check_v1"})
    assert q.missing_score_tables(con, params) == ["scores_check_v1"]
    con.execute('CREATE TABLE scores_check_v1 (sample_id VARCHAR, config_hash VARCHAR, run_id VARCHAR, ok BOOLEAN)')
    assert q.missing_score_tables(con, params) == ["scores_check_v1.correct"]
    assert catalog.get("shift/distinct_n").missing_score_tables(con, {}) == []
