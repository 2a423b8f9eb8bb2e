"""The ``metadata`` column: the fields no FieldMap entry takes, as JSON object text per row, nulls left out."""
from __future__ import annotations

import base64
import json
from typing import Any

import polars as pl
import pyarrow as pa

from .values import is_binary_type


def _has_binary(t: pa.DataType) -> bool:
    if is_binary_type(t):
        return True
    if pa.types.is_dictionary(t):
        return _has_binary(t.value_type)
    return any(_has_binary(t.field(i).type) for i in range(t.num_fields))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    return str(value)


def metadata_python(rows: list[dict[str, Any]]) -> pa.Array:
    out = []
    for row in rows:
        kept = {k: v for k, v in row.items() if v is not None}
        out.append(json.dumps(kept, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
                   if kept else None)
    return pa.array(out, pa.string())


def encode_metadata(table: pa.Table, columns: list[str]) -> pa.Array:
    """JSON object text of ``columns`` per row, top-level nulls left out, vectorised with polars."""
    n = table.num_rows
    if not columns or n == 0:
        return pa.nulls(n, pa.string())
    sub = table.select(columns)
    # polars cannot write binary to JSON: top-level binary becomes text (UTF-8) or base64; nested binary
    # takes the slow path below.
    for i, f in enumerate(sub.schema):
        if is_binary_type(f.type):
            try:
                sub = sub.set_column(i, f.name, sub.column(i).cast(pa.string()))
            except pa.ArrowInvalid:
                vals = [None if v is None else _jsonable(v) for v in sub.column(i).to_pylist()]
                sub = sub.set_column(i, f.name, pa.array(vals, pa.string()))
    if any(_has_binary(f.type) for f in sub.schema) or len(set(sub.column_names)) != len(columns):
        return metadata_python(sub.to_pylist())
    try:
        df = pl.from_arrow(sub, rechunk=False)
        assert isinstance(df, pl.DataFrame)
        if all(sub.column(c).null_count == 0 for c in columns):
            # Nothing to leave out: one pass over the whole struct.
            series = df.select(pl.struct(columns).struct.json_encode().alias("m")).to_series()
            return series.to_arrow().cast(pa.string())
        # Otherwise one '"k":v' part per run of null-free columns (kept in input order) and per column
        # with nulls (null where the value is null), joined skipping the nulls.
        runs: list[list[str]] = []
        for name in columns:
            if sub.column(name).null_count == 0 and runs and sub.column(runs[-1][-1]).null_count == 0:
                runs[-1].append(name)
            else:
                runs.append([name])
        parts = []
        for run in runs:
            encoded = pl.struct(run).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")
            parts.append(encoded if sub.column(run[0]).null_count == 0
                         else pl.when(pl.col(run[0]).is_not_null()).then(encoded))
        joined = pl.concat_str(parts, separator=",", ignore_nulls=True)
        expr = pl.when(joined == "").then(None).otherwise(pl.concat_str([pl.lit("{"), joined, pl.lit("}")]))
        series = df.select(expr.alias("m")).to_series()
        return series.to_arrow().cast(pa.string())
    except BaseException as e:  # polars raises a PanicException (a BaseException) on unsupported types
        if isinstance(e, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        return metadata_python(sub.to_pylist())
