"""Table schemas, loaded from the versioned JSON files in `schemas/`.

A released schema file (`samples.v1.json`) is never edited; a change is a new file (`samples.v2.json`)
plus a migration. Every Lance dataset carries its table name and schema version in its Arrow schema
metadata, so a store written by another version is recognised and refused instead of misread.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

import pyarrow as pa

from ..errors import SchemaVersionError, StoreError
from ..resources import schemas_dir

# The schema version of every table this curator writes and reads.
CURRENT = {
    "samples": 1,
    "ngram_totals": 1,
    "ngram_buckets": 1,
    "ngram_top": 1,
    "ngram_sample": 1,
    "rejects": 1,
    "selections": 1,
    "edits": 1,
    "edit_samples": 1,
    "exports": 1,
    "minhash": 1,
    "runs": 1,
}
TABLES = tuple(CURRENT)
META_TABLE = b"curator.table"
META_VERSION = b"curator.schema_version"
META_SCORER = b"curator.scorer"
# Score tables are made at run time, one per scorer (`scores_<versioned scorer name>`): their key columns
# follow `schemas/scores.v<N>.json` (the layout version) and the scorer declares the rest.
SCORES_PREFIX = "scores_"
SCORES_LAYOUT = 1

_SIMPLE = {
    "string": pa.string(),
    "large_string": pa.large_string(),
    "int8": pa.int8(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
}


def parse_type(spec: str) -> pa.DataType:
    """Parse the small type language of the schema files: simple names, `list<T>`, `fixed_size_list<T, N>`."""
    spec = spec.strip()
    if spec in _SIMPLE:
        return _SIMPLE[spec]
    m = re.fullmatch(r"list<(.+)>", spec)
    if m:
        return pa.list_(parse_type(m.group(1)))
    m = re.fullmatch(r"fixed_size_list<(.+),\s*(\d+)>", spec)
    if m:
        return pa.list_(parse_type(m.group(1)), int(m.group(2)))
    raise StoreError(f"unknown column type '{spec}' in a schema file (expected one of {sorted(_SIMPLE)}, list<T>)")


@dataclass(frozen=True)
class TableSchema:
    table: str
    version: int
    description: str
    arrow: pa.Schema
    docs: dict[str, str]


@cache
def table_schema(table: str, version: int | None = None) -> TableSchema:
    """The schema of a fixed table, or of the score-table layout under the name 'scores'."""
    if version is None:
        version = SCORES_LAYOUT if table == "scores" else CURRENT[table]
    path = schemas_dir() / f"{table}.v{version}.json"
    if not path.exists():
        raise StoreError(f"no schema file for table '{table}' version {version} ({path})")
    spec = json.loads(path.read_text())
    fields = [pa.field(c["name"], parse_type(c["type"]), nullable=c["nullable"]) for c in spec["columns"]]
    meta = {META_TABLE: table.encode(), META_VERSION: str(version).encode()}
    return TableSchema(
        table=table,
        version=version,
        description=spec["description"],
        arrow=pa.schema(fields, metadata=meta),
        docs={c["name"]: c["doc"] for c in spec["columns"]},
    )


def arrow_schema(table: str) -> pa.Schema:
    return table_schema(table).arrow


def check_schema(table: str, found: pa.Schema, where: str) -> None:
    """Refuse a dataset written by another schema version, naming both versions."""
    meta = found.metadata or {}
    got = meta.get(META_VERSION)
    want = CURRENT[table]
    if got is None:
        raise SchemaVersionError(f"{where}: table '{table}' carries no curator schema version; it was not written by curator")
    if int(got) != want:
        raise SchemaVersionError(
            f"{where}: table '{table}' has schema version {int(got)}, this curator reads version {want}; "
            f"open it with a curator release that reads version {int(got)}"
        )
    expected = table_schema(table).arrow
    if found.remove_metadata() != expected.remove_metadata():
        raise SchemaVersionError(
            f"{where}: table '{table}' does not match schema v{want}\n  expected: {expected.remove_metadata()}\n"
            f"  received: {found.remove_metadata()}"
        )


def conform(table: str, data: pa.Table) -> pa.Table:
    """Select and cast `data` to the table's schema; a missing or uncastable column is a clear error."""
    schema = arrow_schema(table)
    missing = [f.name for f in schema if f.name not in data.column_names]
    if missing:
        raise StoreError(f"rows for table '{table}' lack columns {missing} (got {data.column_names})")
    try:
        return data.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StoreError(f"rows for table '{table}' do not fit its schema: {exc}") from exc


def is_score_table(table: str) -> bool:
    return table.startswith(SCORES_PREFIX)


def score_table_schema(table: str, scorer: str, columns: pa.Schema) -> pa.Schema:
    """The Arrow schema of a score table: the layout's key columns, then the scorer's columns."""
    keys = table_schema("scores").arrow
    bad = [name for name in columns.names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)]
    if bad:
        raise StoreError(f"scorer {scorer} declares column names {bad}; use letters, digits and '_' (they become SQL columns)")
    clash = [name for name in columns.names if name in keys.names]
    if clash:
        raise StoreError(f"scorer {scorer} declares columns {clash} that are reserved key columns of score tables")
    meta = {META_TABLE: table.encode(), META_VERSION: str(SCORES_LAYOUT).encode(), META_SCORER: scorer.encode()}
    return pa.schema(list(keys.remove_metadata()) + list(columns), metadata=meta)


def check_score_schema(table: str, found: pa.Schema, where: str) -> None:
    """A score table must carry this curator's layout version and its key columns."""
    meta = found.metadata or {}
    got = meta.get(META_VERSION)
    if got is None or meta.get(META_TABLE) != table.encode():
        raise SchemaVersionError(f"{where}: score table '{table}' carries no curator score-table metadata; "
                                 f"it was not written by curator")
    if int(got) != SCORES_LAYOUT:
        raise SchemaVersionError(
            f"{where}: score table '{table}' has layout version {int(got)}, this curator reads version {SCORES_LAYOUT}; "
            f"open it with a curator release that reads version {int(got)}"
        )
    keys = table_schema("scores").arrow.remove_metadata()
    head = pa.schema(list(found.remove_metadata())[: len(keys)])
    if head != keys:
        raise SchemaVersionError(f"{where}: score table '{table}' does not start with the key columns\n"
                                 f"  expected: {keys}\n  received: {head}")
