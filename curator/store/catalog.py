"""The named-query catalogue: the `.sql` files under `sql/`, with their headers parsed.

Every file opens with a header of `-- key: value` lines::

    -- name: shift/distinct_n
    -- description: what it computes, with the formula (may continue on following `--` lines)
    -- param generation INTEGER: the generation measured
    -- param baseline INTEGER = 0: the reference generation
    -- tables: ngram_totals
    -- columns: n, baseline_value, value

Parameters are DuckDB named parameters (`$generation`), passed as values, never formatted into the text.

A query over score tables (`scores_<scorer>`, which exist only once that scorer has run) declares each
one, with the scorer's columns it reads (the key columns sample_id, config_hash, run_id are implied)::

    -- score table scores_perplexity_v1: perplexity DOUBLE
    -- score table $table: correct BOOLEAN

`$table` names a VARCHAR parameter whose value is the table (the query reads it with
`query_table($table)`, so the name too is a value, not text). `tables:` lists only the store's fixed
tables. `NamedQuery.missing_score_tables` says which declared tables or columns a connection lacks,
so callers can skip such a query (the shift report does) or explain what to score first.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..resources import sql_dir
from .schema import table_schema

_PARAM = re.compile(r"--\s*param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+?))?\s*:\s*(.*)$")
_SCORE_TABLE = re.compile(r"--\s*score table\s+(\$?\w+)\s*:\s*(.*)$")
# The key columns every score table starts with (schemas/scores.v<N>.json).
SCORE_KEY_COLUMNS = tuple(table_schema("scores").arrow.names)
_TYPES = {"INTEGER": int, "BIGINT": int, "DOUBLE": float, "VARCHAR": str, "BOOLEAN": None}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    required: bool
    doc: str

    def coerce(self, raw: Any) -> Any:
        if raw is None or not isinstance(raw, str):
            return raw
        try:
            if self.type == "BOOLEAN":
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                return raw.lower() in ("true", "1")
            return _TYPES[self.type](raw)
        except (ValueError, KeyError) as exc:
            raise UsageError(f"parameter '{self.name}' expects {self.type}, got '{raw}'") from exc


@dataclass(frozen=True)
class ScoreTable:
    """A score table a query reads: a fixed name, or `$param` (the table is that parameter's value)."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (column, DuckDB type) beyond the key columns

    def resolve(self, params: dict[str, Any]) -> str:
        return str(params.get(self.name[1:])) if self.name.startswith("$") else self.name


@dataclass(frozen=True)
class NamedQuery:
    name: str
    path: Path
    description: str
    params: tuple[Param, ...]
    tables: tuple[str, ...]
    columns: tuple[str, ...]
    sql: str
    score_tables: tuple[ScoreTable, ...] = ()

    def missing_score_tables(self, con: Any, params: dict[str, Any]) -> list[str]:
        """The declared score tables (`table`) or columns (`table.column`) that `con` lacks, for the
        given (bound) parameters; empty when the query can run."""
        if not self.score_tables:
            return []
        names = sorted({t.resolve(params) for t in self.score_tables})
        found: dict[str, set[str]] = {}
        rows = con.sql("SELECT table_name, column_name FROM information_schema.columns "
                       "WHERE list_contains($names, table_name)", params={"names": names}).fetchall()
        for table, column in rows:
            found.setdefault(table, set()).add(column)
        missing = []
        for t in self.score_tables:
            name = t.resolve(params)
            if name not in found:
                missing.append(name)
                continue
            missing.extend(f"{name}.{c}" for c in (*SCORE_KEY_COLUMNS, *(c for c, _ in t.columns))
                           if c not in found[name])
        return missing

    def bind(self, given: dict[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise UsageError(f"query '{self.name}' has no parameter {', '.join(unknown)}; parameters: {', '.join(known) or 'none'}")
        out = {}
        for p in self.params:
            if p.name in given:
                out[p.name] = p.coerce(given[p.name])
            elif p.required:
                raise UsageError(f"query '{self.name}' needs parameter '{p.name}' ({p.type}): pass -p {p.name} VALUE")
            else:
                out[p.name] = p.default
        # DuckDB rejects named parameters the text does not use; the header test keeps both in step.
        return out


def parse(path: Path) -> NamedQuery:
    text = path.read_text()
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    fields: dict[str, str] = {}
    params: list[Param] = []
    last = None
    score_tables: list[ScoreTable] = []
    for line in header:
        m = _SCORE_TABLE.match(line)
        if m:
            cols = []
            for item in (x.strip() for x in m.group(2).split(",") if x.strip()):
                column, _, typ = item.partition(" ")
                if not typ.strip():
                    raise UsageError(f"{path}: score table '{m.group(1)}': expected 'column TYPE', got '{item}'")
                cols.append((column, typ.strip()))
            score_tables.append(ScoreTable(m.group(1), tuple(cols)))
            last = None
            continue
        m = _PARAM.match(line)
        if m:
            name, typ, default, doc = m.groups()
            if typ not in _TYPES:
                raise UsageError(f"{path}: parameter '{name}' has unknown type {typ} (expected {', '.join(_TYPES)})")
            params.append(Param(name, typ, ast.literal_eval(default) if default else None, default is None, doc))
            last = None
            continue
        m = re.match(r"--\s*(name|description|tables|columns):\s*(.*)$", line)
        if m:
            last = m.group(1)
            fields[last] = m.group(2).strip()
        elif last == "description":
            fields["description"] += " " + line[2:].strip()
    rel = path.relative_to(sql_dir()).with_suffix("").as_posix()
    if fields.get("name") != rel:
        raise UsageError(f"{path}: header name '{fields.get('name')}' does not match its path '{rel}'")
    for t in score_tables:
        if t.name.startswith("$") and not any(p.name == t.name[1:] and p.type == "VARCHAR" for p in params):
            raise UsageError(f"{path}: score table '{t.name}' names no VARCHAR parameter '{t.name[1:]}'")
    split = lambda s: tuple(x.strip() for x in s.split(",") if x.strip())  # noqa: E731
    return NamedQuery(rel, path, fields.get("description", ""), tuple(params), split(fields.get("tables", "")),
                      split(fields.get("columns", "")), text, tuple(score_tables))


@cache
def catalogue() -> dict[str, NamedQuery]:
    return {q.name: q for q in (parse(p) for p in sorted(sql_dir().rglob("*.sql")))}


def get(name: str) -> NamedQuery:
    queries = catalogue()
    if name not in queries:
        raise UsageError(f"no named query '{name}'; available: {', '.join(sorted(queries))}")
    return queries[name]
