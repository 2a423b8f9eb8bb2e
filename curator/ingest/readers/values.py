"""How mapped field values (prompt, id, reference, parent) become document strings: numbers and booleans
are cast, other scalars pass, nested values do not. The Arrow cast on the happy path and its Python twin."""
from __future__ import annotations

import json
from typing import Any

import pyarrow as pa


def is_binary_type(t: pa.DataType) -> bool:
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t))


def to_string(col: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """A scalar column as strings (numbers and booleans cast); None when the type is not scalar."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.dictionary_decode()
        t = col.type
    if pa.types.is_string(t):
        return col
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    if (pa.types.is_large_string(t) or pa.types.is_string_view(t) or is_binary_type(t)
            or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t)):
        return col.cast(pa.string())  # raises ArrowInvalid on invalid UTF-8 binary
    return None


def scalar_str(v: Any) -> str | None:
    """Python twin of Arrow's number/boolean -> string cast used on the happy path."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return pa.scalar(v, pa.float64()).cast(pa.string()).as_py()
    return json.dumps(v, ensure_ascii=False)
