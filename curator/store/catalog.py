"""The named-query catalogue: the `.sql` files under `sql/`, with their headers parsed.

Every file opens with a header of `-- key: value` lines::

    -- name: shift/distinct_n
    -- description: what it computes, with the formula (may continue on following `--` lines)
    -- param generation INTEGER: the generation measured
    -- param baseline INTEGER = 0: the reference generation
    -- tables: ngram_totals
    -- columns: n, baseline_value, value

Parameters are DuckDB named parameters (`$generation`), passed as values, never formatted into the text.
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

_PARAM = re.compile(r"--\s*param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+?))?\s*:\s*(.*)$")
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
class NamedQuery:
    name: str
    path: Path
    description: str
    params: tuple[Param, ...]
    tables: tuple[str, ...]
    columns: tuple[str, ...]
    sql: str

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
    for line in header:
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
    split = lambda s: tuple(x.strip() for x in s.split(",") if x.strip())  # noqa: E731
    return NamedQuery(rel, path, fields.get("description", ""), tuple(params), split(fields.get("tables", "")),
                      split(fields.get("columns", "")), text)


@cache
def catalogue() -> dict[str, NamedQuery]:
    return {q.name: q for q in (parse(p) for p in sorted(sql_dir().rglob("*.sql")))}


def get(name: str) -> NamedQuery:
    queries = catalogue()
    if name not in queries:
        raise UsageError(f"no named query '{name}'; available: {', '.join(sorted(queries))}")
    return queries[name]
