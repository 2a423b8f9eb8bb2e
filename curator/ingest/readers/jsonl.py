"""jsonl: one JSON object per line. A block is parsed whole by ``pyarrow.json.read_json`` and its rows
mapped to line numbers with numpy; only a block that fails that is diagnosed line by line in Python."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json

from .blocks import JSON_WS_LUT, Splitter, line_index, nonblank_lines, utf8_ok
from .documents import ReadContext, Reject, doc_table
from .metadata import encode_metadata, metadata_python
from .values import scalar_str, to_string


class JsonlSplitter(Splitter):
    def __init__(self, ctx: ReadContext) -> None:
        super().__init__(ctx)
        fm = ctx.fields
        self.used = fm.used()
        # The text field must be a string anyway, so declaring it stops Arrow from guessing a timestamp.
        self.base_schema = pa.schema([pa.field(fm.text, pa.string())])

    def first_boundary(self, buf: bytes) -> int:
        pos = buf.find(b"\n")
        return pos + 1 if pos >= 0 else -1

    def record_span(self, buf: bytes) -> tuple[int, int]:
        return 0, len(buf)  # a jsonl carry is one partial line; the limit applies to the raw line

    def process(self, buf: bytes, line0: int, final: bool) -> tuple[pa.Table | None, list[Reject], int]:
        cut = len(buf) if final else buf.rfind(b"\n") + 1
        if cut == 0:
            return None, [], 0
        view = memoryview(buf)[:cut]
        arr = np.frombuffer(view, dtype=np.uint8)
        nl, starts, ends = line_index(arr)
        self.newlines = len(nl)
        if cut and buf[cut - 1] == 10:
            starts, ends = starts[:-1], ends[:-1]  # the empty "line" after the final newline
        keep = nonblank_lines(arr, starts, ends, JSON_WS_LUT)
        starts, ends = starts[keep], ends[keep]
        lines = np.flatnonzero(keep).astype(np.int64) + line0
        if len(lines) == 0:
            return None, [], cut
        table = None
        if int((ends - starts).max()) <= self.ctx.max_doc and utf8_ok(view):
            table = self._vectorised(view, len(lines), lines)
        if table is not None:
            return table, [], cut
        table, rejects = self._diagnose_block(view, starts, ends, lines)
        return table, rejects, cut

    # -- happy path ----------------------------------------------------------------------------------

    def _parse(self, data: Any, expected_rows: int) -> pa.Table | None:
        """read_json over a whole block; None when it fails or its rows do not match the lines."""
        size = len(data) + 64
        opts = pa_json.ReadOptions(use_threads=False, block_size=size)
        try:
            t = pa_json.read_json(pa.BufferReader(pa.py_buffer(data)), read_options=opts,
                                  parse_options=pa_json.ParseOptions(explicit_schema=self.base_schema))
            if any(_has_timestamp(f.type) for f in t.schema):
                # Arrow turns date-like strings into timestamps; parse again with them declared as
                # strings so that values come back exactly as written.
                schema = pa.schema([f.with_type(_no_timestamp(f.type)) for f in t.schema])
                t = pa_json.read_json(pa.BufferReader(pa.py_buffer(data)), read_options=opts,
                                      parse_options=pa_json.ParseOptions(explicit_schema=schema))
        except (pa.ArrowException, ValueError):
            return None
        # A line with two objects gives two rows: the row count is how we know rows map to lines 1:1.
        return t if t.num_rows == expected_rows else None

    def _vectorised(self, data: Any, n: int, lines: np.ndarray) -> pa.Table | None:
        t = self._parse(data, n)
        return None if t is None else self._to_docs(t, lines)

    def _to_docs(self, t: pa.Table, lines: np.ndarray) -> pa.Table | None:
        """Check and convert a parsed block; None if any row is bad (the caller then diagnoses)."""
        fm = self.ctx.fields
        if fm.text not in t.column_names:
            return None
        text = t.column(fm.text)
        if not pa.types.is_string(text.type) or text.null_count:
            return None
        optional: dict[str, pa.Array] = {}
        for out, src in fm.mapped():
            if src not in t.column_names:
                continue
            col = t.column(src)
            try:
                conv = to_string(col)
            except pa.ArrowInvalid:
                return None
            if conv is None:
                return None
            optional[out] = conv
        metadata = None
        if fm.extra:
            metadata = encode_metadata(t, [c for c in t.column_names if c not in self.used])
        return doc_table(self.ctx, text.combine_chunks(), lines, optional, metadata)

    # -- slow path, only after the vectorised one failed -------------------------------------------------

    def _diagnose_line(self, raw: bytes) -> tuple[str | None, Any]:
        """(reason, parsed object) for one line; reason is None when the line is good."""
        if len(raw) > self.ctx.max_doc:
            return self.ctx.too_large(f"the line has {len(raw)} bytes"), None
        bad = _utf8_reason(raw)
        if bad:
            return bad, None
        try:
            obj = json.loads(raw, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as e:
            msg = getattr(e, "msg", str(e))
            col = getattr(e, "colno", None)
            where = f" (column {col})" if col is not None else ""
            return f"malformed json: {msg[:1].lower() + msg[1:]}{where}", None
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            bad = e.object[e.start]
            return f"malformed json: a \\u escape gives a lone surrogate ({bad!r}), not valid unicode", None
        if not isinstance(obj, dict):
            hint = " (jsonl needs one object per line; is this a json array file?)" if isinstance(obj, list) else ""
            return f"expected a json object, got {_json_type(obj)}: {_show(obj)}{hint}", None
        fm = self.ctx.fields
        if fm.text not in obj:
            present = ", ".join(repr(k) for k in list(obj)[:10]) + (", ..." if len(obj) > 10 else "")
            return (f"missing text field {fm.text!r}; the line has {present or 'no fields'} "
                    f"(use --text-field to pick another)"), None
        value = obj[fm.text]
        if value is None:
            return f"text field {fm.text!r} is null, expected a string", None
        if not isinstance(value, str):
            return f"text field {fm.text!r} must be a string, got {_json_type(value)}: {_show(value)}", None
        for out, src in fm.mapped():
            v = obj.get(src)
            if isinstance(v, (list, dict)):
                return (f"field {src!r} ({out}) must be a string or a number, got {_json_type(v)}: "
                        f"{_show(v)}"), None
        return None, obj

    def _diagnose_block(self, view: memoryview, starts: np.ndarray, ends: np.ndarray,
                        lines: np.ndarray) -> tuple[pa.Table | None, list[Reject]]:
        rejects: list[Reject] = []
        good: list[int] = []
        objs: list[dict[str, Any]] = []
        for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
            raw = bytes(view[s:e])
            reason, obj = self._diagnose_line(raw)
            if reason is not None:
                rejects.append(self.ctx.bad(int(lines[i]), reason, raw))  # raises in fail mode
            else:
                good.append(i)
                objs.append(obj)
        if not good:
            return None, rejects
        idx = np.asarray(good, dtype=np.int64)
        good_lines = lines[idx]
        table = None
        if rejects:
            # Bad lines removed, the rest may well parse vectorised again (same output as the happy path).
            data = b"\n".join(bytes(view[s:e]) for s, e in zip(starts[idx].tolist(), ends[idx].tolist()))
            table = self._vectorised(data, len(good), good_lines)
        if table is None:
            # Every line is fine alone but Arrow cannot type the block as a whole (say an id that is a
            # number in one row and a string in the next): build the rows in Python.
            table = self._python_docs(objs, good_lines)
        return table, rejects

    def _python_docs(self, objs: list[dict[str, Any]], lines: np.ndarray) -> pa.Table:
        fm = self.ctx.fields
        text = pa.array([o[fm.text] for o in objs], pa.string())
        optional = {out: pa.array([scalar_str(o.get(src)) for o in objs], pa.string())
                    for out, src in fm.mapped()}
        metadata = None
        if fm.extra:
            metadata = metadata_python([{k: v for k, v in o.items() if k not in self.used} for o in objs])
        return doc_table(self.ctx, text, lines, optional, metadata)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid json")


def _has_timestamp(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t):
        return True
    return any(_has_timestamp(t.field(i).type) for i in range(t.num_fields))


def _no_timestamp(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_no_timestamp(f.type)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_no_timestamp(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_no_timestamp(t.value_type)))
    return t


def _utf8_reason(raw: bytes) -> str | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid utf-8: byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line ({e.reason})"
    return None


def _show(value: Any, limit: int = 60) -> str:
    """A short printable form of an offending value, for messages."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
