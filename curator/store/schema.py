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
    "runs": 1,
}
TABLES = tuple(CURRENT)
META_TABLE = b"curator.table"
META_VERSION = b"curator.schema_version"

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
    version = CURRENT[table] if version is None else version
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
