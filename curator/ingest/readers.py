"""Streaming, vectorised readers: input files -> Arrow batches of documents, with exact error locations.

Formats (``discover`` picks one from ``--format`` or the file extension)::

    jsonl    .jsonl .ndjson .json   one JSON object per line
    csv      .csv                   header line, then one record per row (quoted fields may span lines)
    tsv      .tsv                   the same, tab-separated
    parquet  .parquet
    text     .txt .text .md         plain text, documents separated by blank lines (or ``text_separator``)

jsonl, csv, tsv and text may carry a trailing ``.gz``, ``.zst`` or ``.bz2``; they are decompressed while
streaming. Folders are walked recursively in sorted order; hidden files and folders (name starting with
``.``) and files of unknown extension inside a folder are skipped.

Every format yields ``DocBatch`` objects whose ``table`` has the columns of ``DOC_SCHEMA``:

    text         the document text (never null)
    prompt       the ``FieldMap.prompt`` field, or null
    external_id  the ``FieldMap.id`` field, or null
    reference    the ``FieldMap.reference`` field (gold answer), or null
    parent_id    the ``FieldMap.parent`` field, or null
    metadata     JSON object text of every other top-level field when ``FieldMap.extra`` is true, else null.
                 Fields whose value is null are left out (Arrow cannot tell a null from a missing field);
                 a row with no other non-null field gets null.
    source_file  the path as given
    source_row   where the document came from:
                   jsonl   1-based physical line number (blank lines are counted, so it matches an editor)
                   text    1-based line number of the document's first (non-blank) line
                   csv/tsv 1-based data record number, the header excluded (a record may span lines)
                   parquet 1-based row number

Value rules. The text field must be a JSON string (csv: any cell; parquet: a string or UTF-8 binary
column): a missing, null or non-string text is a bad row. prompt/id/reference/parent may be strings,
numbers or booleans; numbers and booleans are cast to strings (``7`` -> ``"7"``, ``3.0`` -> ``"3"``,
``true`` -> ``"true"``); arrays and objects there are bad rows. In csv/tsv every cell is read as text
(nothing is type-guessed, so ``007`` stays ``007``) and an empty cell outside the text column is null.
Text documents are stripped of surrounding ASCII whitespace (space, tab, CR, LF, VT, FF); a "blank line"
is a line holding only those; runs of blank lines are one separator; empty documents are dropped. The
size limit ``max_doc_bytes`` applies to the raw jsonl line, the stripped text document, or the csv /
parquet text value. ``text_separator`` is ignored by the other formats.

Errors. ``on_error="fail"`` (default) raises ``InputError(file=..., line=...)`` at the first bad row;
``on_error="skip"`` keeps the good rows and reports each bad one as a ``Reject`` in ``DocBatch.rejects``
(``Reject.line`` uses the same numbering as ``source_row``; for an invalid UTF-8 byte in a text document
it is the line of that byte). Bad rows are: malformed JSON or a non-object line, a missing / null /
non-string text, a nested prompt/id/reference/parent, invalid UTF-8, a document over ``max_doc_bytes``,
a csv record with the wrong number of fields. An empty file (0 bytes or only whitespace; for csv/tsv
also a header without records; for parquet 0 rows) raises "file is empty", or in skip mode yields one
Reject with line 0. Problems with the whole file raise in both modes: unknown format, missing or
unreadable file, a csv/parquet without the text column (or another mapped column), a parquet text column
that is not a string.

Streaming and speed. jsonl and text are read in blocks of ``batch_bytes`` (through
``pyarrow.input_stream(compression="detect")``), cut at the last complete line / separator, with the rest
carried into the next block, so memory stays bounded by about ``max_doc_bytes + 2 * batch_bytes``
whatever the file size. There is no per-line Python on the happy path: a jsonl block is parsed by
``pyarrow.json.read_json`` and its rows are mapped to line numbers with numpy over the block bytes; text
documents are located with numpy (newline positions, blank-line mask) and cut out of the block buffer
with Arrow. Only when the vectorised parse or checks of a block fail is the block diagnosed line by line
in Python, to give the exact line and reason. Two slower cases that are not errors: Arrow turns
date-like strings into timestamps, so a block holding some is parsed a second time with them declared as
strings (values stay verbatim); a block that Arrow cannot type as a whole (a field that is a number in one
row and a string in another) is built in Python, with the same output. csv uses ``pyarrow.csv.open_csv``
(streaming, block size ``batch_bytes``; Arrow needs each record inside one block, so when one is not the
file is read again with a bigger block, skipping the rows already yielded, up to about
``2 * (max_doc_bytes + batch_bytes)``), parquet ``ParquetFile.iter_batches`` (about ``batch_bytes`` per
batch). Arrow reads run with ``use_threads=False``: parallelism belongs to the caller (a file per worker).
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from curator.errors import InputError, UsageError

__all__ = [
    "DOC_SCHEMA",
    "FORMATS",
    "DocBatch",
    "FieldMap",
    "Reject",
    "discover",
    "read_documents",
]

# ---------------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True)
class FieldMap:
    """Which input fields (jsonl keys, csv / parquet columns) feed which document column."""

    text: str = "text"
    prompt: str | None = None  # e.g. "question"
    id: str | None = None  # an external id field
    reference: str | None = None  # gold answer field
    parent: str | None = None  # parent id field
    extra: bool = True  # keep other fields as JSON metadata

    def mapped(self) -> list[tuple[str, str]]:
        """(output column, input field) of the optional fields that are set, in output order."""
        pairs = [("prompt", self.prompt), ("external_id", self.id), ("reference", self.reference),
                 ("parent_id", self.parent)]
        return [(out, src) for out, src in pairs if src is not None]

    def used(self) -> set[str]:
        return {self.text} | {src for _, src in self.mapped()}


@dataclass(frozen=True)
class Reject:
    """One rejected row (on_error="skip")."""

    file: str
    line: int
    reason: str
    snippet: str  # the first 200 characters of the raw row


@dataclass
class DocBatch:
    """A batch of documents (columns of DOC_SCHEMA) plus the rows of the same stretch that were rejected."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)


DOC_SCHEMA = pa.schema([
    pa.field("text", pa.string(), nullable=False),
    pa.field("prompt", pa.string()),
    pa.field("external_id", pa.string()),
    pa.field("reference", pa.string()),
    pa.field("parent_id", pa.string()),
    pa.field("metadata", pa.string()),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),
])

FORMATS = ("jsonl", "csv", "tsv", "parquet", "text")
_FORMAT_ALIASES = {"jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl", "csv": "csv", "tsv": "tsv",
                   "parquet": "parquet", "text": "text", "txt": "text"}
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
               ".csv": "csv", ".tsv": "tsv", ".txt": "text", ".text": "text", ".md": "text"}
_COMPRESSIONS = (".gz", ".zst", ".bz2")
_ON_ERROR = ("fail", "skip")
_SNIPPET = 200

# ---------------------------------------------------------------------------------------------------
# discover


def _known_formats_text() -> str:
    exts = ", ".join(sorted(_EXTENSIONS))
    return (f"known extensions: {exts} (jsonl/csv/tsv/text may end in {', '.join(_COMPRESSIONS)}); "
            f"or name the format with --format ({', '.join(FORMATS)})")


def _normalise_format(fmt: str) -> str:
    name = _FORMAT_ALIASES.get(fmt.strip().lower())
    if name is None:
        raise UsageError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return name


def _format_from_name(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if not suffixes:
        return None
    compressed = suffixes[-1] in _COMPRESSIONS
    if compressed:
        suffixes = suffixes[:-1]
        if not suffixes:
            return None
    fmt = _EXTENSIONS.get(suffixes[-1])
    if fmt == "parquet" and compressed:
        return None  # parquet compresses internally; a .parquet.gz cannot be read in a stream
    return fmt


def discover(paths: Sequence[str | Path], fmt: str | None = None) -> list[tuple[Path, str]]:
    """Expand files and folders into ``[(path, format)]``.

    Folders are walked recursively in sorted order, skipping hidden entries and (without ``fmt``) files of
    unknown extension. A file named directly must have a known extension unless ``fmt`` is given.
    The same file named twice is listed once.
    """
    forced = _normalise_format(fmt) if fmt is not None else None
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(p: Path, f: str) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append((p, f))

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError("no such file or folder", file=str(p))
        if p.is_dir():
            found = 0
            for child in sorted(p.rglob("*")):
                rel = child.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or not child.is_file():
                    continue
                f = forced or _format_from_name(child)
                if f is None:
                    continue
                add(child, f)
                found += 1
            if not found:
                raise InputError(f"folder has no readable files; {_known_formats_text()}", file=str(p))
        elif p.is_file():
            f = forced or _format_from_name(p)
            if f is None:
                raise InputError(f"unknown file extension {''.join(p.suffixes) or '(none)'!r}; "
                                 f"{_known_formats_text()}", file=str(p))
            add(p, f)
        else:
            raise InputError("not a regular file or folder", file=str(p))
    return out


# ---------------------------------------------------------------------------------------------------
# read_documents


@dataclass
class _Ctx:
    """Per-file reading state shared by the format readers."""

    file: str
    fields: FieldMap
    skip: bool
    max_doc: int
    batch_bytes: int

    def bad(self, line: int, reason: str, raw: bytes | str) -> Reject:
        """Fail mode: raise. Skip mode: return the Reject for the caller to collect."""
        if not self.skip:
            raise InputError(reason, file=self.file, line=int(line))
        return Reject(self.file, int(line), reason, _snippet(raw))

    def settle(self, rejects: list[Reject]) -> list[Reject]:
        """Fail mode: raise the first (lowest line) of the collected rejects. Skip mode: them, in order."""
        if rejects:
            rejects = sorted(rejects, key=lambda r: r.line)
            if not self.skip:
                raise InputError(rejects[0].reason, file=self.file, line=rejects[0].line)
        return rejects


def read_documents(path: Path, fmt: str, fields: FieldMap, *, on_error: str = "fail",
                   text_separator: str | None = None, batch_bytes: int = 16 << 20,
                   max_doc_bytes: int = 32 << 20) -> Iterator[DocBatch]:
    """Stream the documents of one file as ``DocBatch``es (see the module docstring for every rule)."""
    if on_error not in _ON_ERROR:
        raise UsageError(f"unknown on_error {on_error!r}: expected one of {', '.join(_ON_ERROR)}")
    fmt = _normalise_format(fmt)
    # text_separator only concerns the text format; other formats ignore it, so that one setting can be
    # passed for a folder of mixed files.
    if text_separator == "":
        raise UsageError("text_separator must not be empty")
    if batch_bytes < 1:
        raise UsageError(f"batch_bytes must be positive, got {batch_bytes}")
    if max_doc_bytes < 1:
        raise UsageError(f"max_doc_bytes must be positive, got {max_doc_bytes}")
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", file=str(path))
    if not path.is_file():
        raise InputError("not a regular file", file=str(path))
    ctx = _Ctx(str(path), fields, on_error == "skip", max_doc_bytes, batch_bytes)
    if fmt == "jsonl":
        return _read_blocks(path, ctx, _JsonlSplitter(ctx))
    if fmt == "text":
        splitter = _SepSplitter(ctx, text_separator) if text_separator is not None else _BlankSplitter(ctx)
        return _read_blocks(path, ctx, splitter)
    if fmt in ("csv", "tsv"):
        return _read_csv(path, ctx, "\t" if fmt == "tsv" else ",")
    return _read_parquet(path, ctx)


# ---------------------------------------------------------------------------------------------------
# Small helpers

_ASCII_WS = b" \t\n\r\x0b\x0c"
_JSON_WS = b" \t\n\r"
_WS_LUT = np.zeros(256, dtype=bool)
_WS_LUT[list(_ASCII_WS)] = True
_JSON_WS_LUT = np.zeros(256, dtype=bool)
_JSON_WS_LUT[list(_JSON_WS)] = True
_NONWS_RE = re.compile(rb"[^ \t\n\r\x0b\x0c]")
_BLANK_LINE_RE = re.compile(rb"\n[ \t\r\x0b\x0c]*\n")
_BOM = b"\xef\xbb\xbf"


def _snippet(raw: bytes | str) -> str:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: _SNIPPET * 4]).decode("utf-8", errors="replace")
    return raw[:_SNIPPET]


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


def _utf8_ok(data: Any) -> bool:
    """Vectorised UTF-8 validation of a whole buffer (Arrow's SIMD validator, GB/s)."""
    buf = pa.py_buffer(data)
    offsets = pa.py_buffer(np.array([0, len(buf)], dtype=np.int64))
    arr = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, buf])
    try:
        arr.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _utf8_reason(raw: bytes) -> str | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid utf-8: byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line ({e.reason})"
    return None


def _spans_to_binary(data: Any, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """Cut [start, end) spans out of one buffer as a binary array, without a Python loop.

    Offsets alternate span/gap (s0, e0, s1, e1, ...) over the shared buffer; taking the even entries
    copies just the spans.
    """
    n = len(starts)
    if n == 0:
        return pa.array([], pa.large_binary())
    offsets = np.empty(2 * n, dtype=np.int64)
    offsets[0::2] = starts
    offsets[1::2] = ends
    both = pa.Array.from_buffers(pa.large_binary(), 2 * n - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return both.take(pa.array(np.arange(0, 2 * n - 1, 2, dtype=np.int64)))


def _line_index(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newline positions, line starts and line ends (newline excluded); the last line may be partial."""
    nl = np.flatnonzero(arr == 10)
    starts = np.empty(len(nl) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl + 1
    ends = np.empty_like(starts)
    ends[:-1] = nl
    ends[-1] = len(arr)
    return nl, starts, ends


def _nonblank_lines(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Mask of lines holding a byte outside ``lut`` (whitespace).

    A line whose first byte is not whitespace is non-blank; only when some line starts with whitespace
    do we pay for a per-byte mask, reduced per line with ``logical_or.reduceat``.
    """
    nonblank = ends > starts
    idx = np.flatnonzero(nonblank)
    if idx.size and lut[arr[starts[idx]]].any():
        nonws = ~lut[arr]
        # Segments run from one non-empty line start to the next: the line itself, its newline and any
        # empty lines between, which are all whitespace, so "any" is exactly "this line is non-blank".
        nonblank[idx] = np.logical_or.reduceat(nonws, starts[idx])
    return nonblank


def _to_string(col: pa.Array | pa.ChunkedArray) -> pa.Array | None:
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
    if (pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t)):
        return col.cast(pa.string())  # raises ArrowInvalid on invalid UTF-8 binary
    return None


def _has_binary(t: pa.DataType) -> bool:
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) \
            or pa.types.is_binary_view(t):
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


def _metadata_python(rows: list[dict[str, Any]]) -> pa.Array:
    out = []
    for row in rows:
        kept = {k: v for k, v in row.items() if v is not None}
        out.append(json.dumps(kept, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
                   if kept else None)
    return pa.array(out, pa.string())


def _encode_metadata(table: pa.Table, columns: list[str]) -> pa.Array:
    """JSON object text of ``columns`` per row, top-level nulls left out, vectorised with polars."""
    n = table.num_rows
    if not columns or n == 0:
        return pa.nulls(n, pa.string())
    sub = table.select(columns)
    # polars cannot write binary to JSON: top-level binary becomes text (UTF-8) or base64; nested binary
    # takes the slow path below.
    for i, f in enumerate(sub.schema):
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) or pa.types.is_binary_view(f.type) \
                or pa.types.is_fixed_size_binary(f.type):
            try:
                sub = sub.set_column(i, f.name, sub.column(i).cast(pa.string()))
            except pa.ArrowInvalid:
                vals = [None if v is None else _jsonable(v) for v in sub.column(i).to_pylist()]
                sub = sub.set_column(i, f.name, pa.array(vals, pa.string()))
    if any(_has_binary(f.type) for f in sub.schema) or len(set(sub.column_names)) != len(columns):
        return _metadata_python(sub.to_pylist())
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
        return _metadata_python(sub.to_pylist())


def _doc_table(ctx: _Ctx, text: pa.Array, rows: np.ndarray, optional: dict[str, pa.Array] | None = None,
               metadata: pa.Array | None = None) -> pa.Table:
    n = len(text)
    optional = optional or {}
    cols = [text]
    for name in ("prompt", "external_id", "reference", "parent_id"):
        cols.append(optional.get(name, pa.nulls(n, pa.string())))
    cols.append(metadata if metadata is not None else pa.nulls(n, pa.string()))
    cols.append(pa.repeat(pa.scalar(ctx.file, pa.string()), n))
    cols.append(pa.array(np.asarray(rows, dtype=np.int64)))
    return pa.Table.from_arrays(cols, schema=DOC_SCHEMA)


def _empty_file(ctx: _Ctx, detail: str = "") -> Iterator[DocBatch]:
    reason = "file is empty" + (f" ({detail})" if detail else "")
    if not ctx.skip:
        raise InputError(reason, file=ctx.file)
    yield DocBatch(DOC_SCHEMA.empty_table(), [Reject(ctx.file, 0, reason, "")])


# ---------------------------------------------------------------------------------------------------
# Block streaming for jsonl and text


class _Splitter:
    """How a byte stream splits into records. ``process`` handles the complete records of a buffer."""

    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx
        self.newlines: int | None = None  # set by process: newlines in the consumed bytes, if it knows

    def process(self, buf: bytes, line0: int, final: bool) -> tuple[pa.Table | None, list[Reject], int]:
        """Parse the complete records at the head of ``buf`` (all of it when ``final``).

        Returns (table or None, rejects, bytes consumed); ``line0`` is the line number of buf's first line.
        """
        raise NotImplementedError

    def record_span(self, buf: bytes) -> tuple[int, int]:
        """[start, end) of the record in progress at the head of ``buf``, surrounding whitespace excluded."""
        m = _NONWS_RE.search(buf)
        if m is None:
            return len(buf), len(buf)
        end = len(buf)
        if end - m.start() > self.ctx.max_doc:  # only then is the exact end worth a copy
            end = len(buf.rstrip(_ASCII_WS))
        return m.start(), end

    def first_boundary(self, buf: bytes) -> int:
        """Offset just past the first record boundary in ``buf``; -1 if none (used to skip a huge record)."""
        raise NotImplementedError

    def keep_tail(self, buf: bytes) -> int:
        """While skipping, the offset from which ``buf`` may still hold the start of a boundary."""
        return len(buf)


def _chunks(path: Path, ctx: _Ctx) -> Iterator[bytes]:
    try:
        stream = pa.input_stream(str(path), compression="detect")
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"cannot open file: {e}", file=ctx.file) from e
    with stream:
        while True:
            try:
                chunk = stream.read(ctx.batch_bytes)
            except (OSError, pa.ArrowException, EOFError) as e:
                raise InputError(f"cannot read file (corrupt or truncated compressed data?): {e}",
                                 file=ctx.file) from e
            if not chunk:
                return
            yield chunk


def _read_blocks(path: Path, ctx: _Ctx, splitter: _Splitter) -> Iterator[DocBatch]:
    carry = b""
    line0 = 1  # line number of carry's first line
    saw_content = False
    started = False
    discarding = False  # skip mode: inside an oversized record, dropping bytes until its end
    for chunk in _chunks(path, ctx):
        buf = carry + chunk if carry else chunk
        if not started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                carry = buf  # too short to tell whether a byte-order mark begins the file
                continue
            started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        if not saw_content:
            saw_content = _NONWS_RE.search(buf) is not None
        if discarding:
            pos = splitter.first_boundary(buf)
            if pos < 0:
                keep = splitter.keep_tail(buf)
                line0 += buf.count(b"\n", 0, keep)
                carry = buf[keep:]
                continue
            line0 += buf.count(b"\n", 0, pos)
            buf = buf[pos:]
            discarding = False
        splitter.newlines = None
        table, rejects, cut = splitter.process(buf, line0, final=False)
        if table is not None or rejects:
            yield DocBatch(table if table is not None else DOC_SCHEMA.empty_table(), rejects)
        line0 += splitter.newlines if splitter.newlines is not None else buf.count(b"\n", 0, cut)
        carry = buf[cut:] if cut else buf
        start, end = splitter.record_span(carry)
        if end - start > ctx.max_doc:
            # The record in progress is already over the limit and has no end in sight: report it now
            # rather than buffering an unbounded amount of data.
            first = line0 + carry.count(b"\n", 0, start)
            reason = (f"document is larger than max_doc_bytes ({ctx.max_doc} bytes): "
                      f"at least {end - start} bytes")
            reject = ctx.bad(first, reason, carry[start:start + 4 * _SNIPPET])
            yield DocBatch(DOC_SCHEMA.empty_table(), [reject])
            discarding = True
            keep = splitter.keep_tail(carry)
            line0 += carry.count(b"\n", 0, keep)
            carry = carry[keep:]
    if not started and carry == _BOM:
        carry = b""  # a file holding just a byte-order mark
    if not discarding and carry:
        if not saw_content:
            saw_content = _NONWS_RE.search(carry) is not None
        table, rejects, _ = splitter.process(carry, line0, final=True)
        if table is not None or rejects:
            yield DocBatch(table if table is not None else DOC_SCHEMA.empty_table(), rejects)
    if not saw_content:
        yield from _empty_file(ctx)


# ---------------------------------------------------------------------------------------------------
# jsonl


class _JsonlSplitter(_Splitter):
    def __init__(self, ctx: _Ctx) -> None:
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
        nl, starts, ends = _line_index(arr)
        self.newlines = len(nl)
        if cut and buf[cut - 1] == 10:
            starts, ends = starts[:-1], ends[:-1]  # the empty "line" after the final newline
        keep = _nonblank_lines(arr, starts, ends, _JSON_WS_LUT)
        starts, ends = starts[keep], ends[keep]
        lines = np.flatnonzero(keep).astype(np.int64) + line0
        if len(lines) == 0:
            return None, [], cut
        table = None
        if int((ends - starts).max()) <= self.ctx.max_doc and _utf8_ok(view):
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
                conv = _to_string(col)
            except pa.ArrowInvalid:
                return None
            if conv is None:
                return None
            optional[out] = conv
        metadata = None
        if fm.extra:
            metadata = _encode_metadata(t, [c for c in t.column_names if c not in self.used])
        return _doc_table(self.ctx, text.combine_chunks(), lines, optional, metadata)

    # -- slow path, only after the vectorised one failed -------------------------------------------------

    def _diagnose_line(self, raw: bytes) -> tuple[str | None, Any]:
        """(reason, parsed object) for one line; reason is None when the line is good."""
        if len(raw) > self.ctx.max_doc:
            return (f"document is larger than max_doc_bytes ({self.ctx.max_doc} bytes): "
                    f"the line has {len(raw)} bytes"), None
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
        optional = {out: pa.array([_scalar_str(o.get(src)) for o in objs], pa.string())
                    for out, src in fm.mapped()}
        metadata = None
        if fm.extra:
            metadata = _metadata_python([{k: v for k, v in o.items() if k not in self.used} for o in objs])
        return _doc_table(self.ctx, text, lines, optional, metadata)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid json")


def _scalar_str(v: Any) -> str | None:
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


# ---------------------------------------------------------------------------------------------------
# text


class _TextSplitter(_Splitter):
    _line0 = 1  # line number of the buffer being processed

    def _docs(self, view: memoryview, starts: np.ndarray, ends: np.ndarray, nl: np.ndarray,
              first_lines: np.ndarray | None = None) -> tuple[pa.Table | None, list[Reject]]:
        """Documents from raw [start, end) spans of ``view``: check UTF-8, strip, drop empties, check size.

        ``nl`` holds the newline offsets of ``view``; without ``first_lines``, a document's line is the one
        of its first non-whitespace byte.
        """
        if len(starts) == 0:
            return None, []
        raw = _spans_to_binary(view, starts, ends)
        rejects: list[Reject] = []
        if not _utf8_ok(view):
            keep = np.ones(len(starts), dtype=bool)
            for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
                piece = bytes(view[s:e])
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as err:
                    keep[i] = False
                    lead = len(piece) - len(piece.lstrip(_ASCII_WS))
                    doc_line = (int(first_lines[i]) if first_lines is not None
                                else int(np.searchsorted(nl, s + lead)) + self._line0)
                    line = int(np.searchsorted(nl, s + err.start)) + self._line0
                    reason = (f"invalid utf-8: byte 0x{piece[err.start]:02x} ({err.reason}) in the document "
                              f"starting at line {doc_line}")
                    rejects.append(Reject(self.ctx.file, line, reason, _snippet(piece[lead:])))
            raw = raw.filter(pa.array(keep))
            starts = starts[keep]
            if first_lines is not None:
                first_lines = first_lines[keep]
        strings = raw.cast(pa.large_string())
        if first_lines is None:
            lead = (pc.binary_length(strings).to_numpy(zero_copy_only=False)
                    - pc.binary_length(pc.ascii_ltrim_whitespace(strings)).to_numpy(zero_copy_only=False))
            first_lines = np.searchsorted(nl, starts + lead).astype(np.int64) + self._line0
        text = pc.ascii_trim_whitespace(strings)
        lengths = pc.binary_length(text).to_numpy(zero_copy_only=False)
        keep = lengths > 0
        over = lengths > self.ctx.max_doc
        if over.any():
            for i in np.flatnonzero(over).tolist():
                reason = (f"document is larger than max_doc_bytes ({self.ctx.max_doc} bytes): "
                          f"{int(lengths[i])} bytes")
                rejects.append(Reject(self.ctx.file, int(first_lines[i]), reason, _snippet(text[i].as_py())))
            keep &= ~over
        rejects = self.ctx.settle(rejects)
        if not keep.all():
            text = text.filter(pa.array(keep))
            first_lines = first_lines[keep]
        if len(text) == 0:
            return None, rejects
        return _doc_table(self.ctx, text.cast(pa.string()), first_lines), rejects


class _BlankSplitter(_TextSplitter):
    """Documents separated by blank lines."""

    def first_boundary(self, buf: bytes) -> int:
        m = _BLANK_LINE_RE.search(buf)
        return m.end() if m else -1

    def keep_tail(self, buf: bytes) -> int:
        # Keep the last newline and the whitespace after it: they may be the first half of a blank line.
        pos = buf.rfind(b"\n")
        if pos >= 0 and _NONWS_RE.search(buf, pos) is None:
            return pos
        return len(buf)

    def process(self, buf: bytes, line0: int, final: bool) -> tuple[pa.Table | None, list[Reject], int]:
        self._line0 = line0
        arr = np.frombuffer(buf, dtype=np.uint8)
        nl, starts, ends = _line_index(arr)
        nonblank = _nonblank_lines(arr, starts, ends, _WS_LUT)
        if final:
            limit, cut = len(starts), len(buf)
        else:
            # Only a complete blank line (newline-terminated) ends the documents before it.
            blank = np.flatnonzero(~nonblank[: len(nl)])
            if blank.size == 0:
                return None, [], 0
            limit = int(blank[-1])
            cut = int(ends[limit]) + 1
            self.newlines = limit + 1
        padded = np.zeros(limit + 2, dtype=np.int8)
        padded[1:-1] = nonblank[:limit]
        step = np.diff(padded)
        first = np.flatnonzero(step == 1)  # line index of each document's first line
        last = np.flatnonzero(step == -1) - 1  # ... and of its last line
        view = memoryview(buf)[:cut]
        table, rejects = self._docs(view, starts[first], ends[last], nl, first.astype(np.int64) + line0)
        return table, rejects, cut


class _SepSplitter(_TextSplitter):
    """Documents separated by a literal string."""

    def __init__(self, ctx: _Ctx, sep: str) -> None:
        super().__init__(ctx)
        self.sep = sep
        self.sep_bytes = sep.encode("utf-8")

    def first_boundary(self, buf: bytes) -> int:
        pos = buf.find(self.sep_bytes)
        return pos + len(self.sep_bytes) if pos >= 0 else -1

    def keep_tail(self, buf: bytes) -> int:
        return max(0, len(buf) - len(self.sep_bytes) + 1)

    def process(self, buf: bytes, line0: int, final: bool) -> tuple[pa.Table | None, list[Reject], int]:
        self._line0 = line0
        whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, len(buf)], np.int64)),
                                                             pa.py_buffer(buf)])
        pieces = pc.split_pattern(whole, self.sep).flatten()  # forward, non-overlapping matches
        lengths = pc.binary_length(pieces).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.zeros(len(lengths), dtype=np.int64)
        starts[1:] = np.cumsum(lengths[:-1] + len(self.sep_bytes))
        ends = starts + lengths
        if final:
            cut = len(buf)
        else:
            if len(starts) < 2:
                return None, [], 0
            cut = int(starts[-1])  # the last piece may still grow: carry it over
            starts, ends = starts[:-1], ends[:-1]
        view = memoryview(buf)[:cut]
        nl = np.flatnonzero(np.frombuffer(view, dtype=np.uint8) == 10)
        self.newlines = len(nl)
        table, rejects = self._docs(view, starts, ends, nl)
        return table, rejects, cut


# ---------------------------------------------------------------------------------------------------
# csv / tsv


def _missing_column(ctx: _Ctx, name: str, role: str, columns: list[str], flag: str) -> InputError:
    shown = ", ".join(repr(c) for c in columns[:20]) + (", ..." if len(columns) > 20 else "")
    return InputError(f"no {role} column {name!r}; the file has columns {shown} (use {flag} to pick one)",
                      file=ctx.file)


_FLAGS = {"text": "--text-field", "prompt": "--prompt-field", "external_id": "--id-field",
          "reference": "--reference-field", "parent_id": "--parent-field"}


def _check_columns(ctx: _Ctx, columns: list[str]) -> None:
    fm = ctx.fields
    if fm.text not in columns:
        raise _missing_column(ctx, fm.text, "text", columns, "--text-field")
    for out, src in fm.mapped():
        if src not in columns:
            raise _missing_column(ctx, src, out.replace("_", " "), columns, _FLAGS[out])


def _has_content(path: Path, ctx: _Ctx) -> bool:
    """Whether the (decompressed) file holds a non-whitespace byte; stops at the first one."""
    for chunk in _chunks(path, ctx):
        if _NONWS_RE.search(chunk.replace(_BOM, b"")):
            return True
    return False


_CSV_BLOCK_TOO_SMALL = ("straddling object", "cannot infer number of columns", "larger than block size")


def _read_csv(path: Path, ctx: _Ctx, delimiter: str) -> Iterator[DocBatch]:
    if not _has_content(path, ctx):
        yield from _empty_file(ctx)
        return
    # Rows the csv parser itself rejects (wrong field count), by data record number. Filled by the
    # parser's callback, which may run a block ahead of the batches we get.
    invalid: dict[int, Reject] = {}
    next_number = 1  # data record number of the next row the parser hands us (or rejects)

    def on_invalid(row: Any) -> str:
        number = row.number - 1 if row.number is not None and row.number > 0 else 0  # the header is row 1
        if number >= next_number or number == 0:  # not one already dealt with before a restart
            reason = f"expected {row.expected_columns} fields, got {row.actual_columns}"
            key = number if number > 0 else -1 - len(invalid)
            invalid[key] = Reject(ctx.file, number, reason, _snippet(row.text or ""))
        return "skip"  # fail mode raises below, at the right place in the stream

    parse = pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid)

    def open_reader(types: dict[str, pa.DataType] | None, block: int) -> pa_csv.CSVStreamingReader:
        read = pa_csv.ReadOptions(use_threads=False, block_size=block)
        convert = pa_csv.ConvertOptions(column_types=types or {}, strings_can_be_null=False,
                                        quoted_strings_can_be_null=False)
        stream = pa.input_stream(str(path), compression="detect")
        return pa_csv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)

    fm = ctx.fields
    columns: list[str] | None = None
    extras: list[str] = []
    # Arrow needs every record (and the header) inside one block: when one is not, read again with a
    # bigger block, dropping the rows already handled. Records are bounded by max_doc_bytes plus the
    # other fields, so this ends; past the cap the record is reported.
    block = ctx.batch_bytes
    cap = 2 * ctx.max_doc + 2 * ctx.batch_bytes + (1 << 20)
    done_rows = 0  # rows the parser handed over that were already turned into documents or rejects
    saw_rows = False
    while True:
        try:
            if columns is None:
                # Learn the header first, then read every column as raw bytes: nothing is type-guessed
                # (ids keep leading zeros) and UTF-8 is checked by us, row by row, with exact locations.
                probe = open_reader(None, max(block, 1 << 20))
                columns = probe.schema.names
                probe.close()
                invalid.clear()
                _check_columns(ctx, columns)
                extras = [c for c in columns if c not in fm.used()] if fm.extra else []
            reader = open_reader({c: pa.binary() for c in columns}, block)
            skip = done_rows
            for batch in reader:
                if skip:
                    k = min(skip, batch.num_rows)
                    batch, skip = batch.slice(k), skip - k
                    if batch.num_rows == 0:
                        continue
                numbers = _assign_numbers(next_number, batch.num_rows, sorted(n for n in invalid if n > 0))
                if batch.num_rows:
                    next_number = int(numbers[-1]) + 1
                due = [r for n, r in invalid.items() if n < next_number]
                invalid = {n: r for n, r in invalid.items() if n >= next_number}
                table, rejects = _csv_batch(ctx, pa.Table.from_batches([batch]), numbers, extras)
                done_rows += batch.num_rows
                rejects = ctx.settle(due + rejects)
                saw_rows = saw_rows or batch.num_rows > 0 or bool(rejects)
                if table is not None or rejects:
                    yield DocBatch(table if table is not None else DOC_SCHEMA.empty_table(), rejects)
            break
        except pa.ArrowInvalid as e:
            if any(m in str(e) for m in _CSV_BLOCK_TOO_SMALL):
                if block < cap:
                    block = min(block * 4, cap)
                    continue
                raise InputError(f"a csv record from about record {next_number} on is larger than {cap} bytes "
                                 f"(max_doc_bytes is {ctx.max_doc}): {e}", file=ctx.file, line=next_number) from e
            raise InputError(f"cannot read csv: {e}", file=ctx.file) from e
    if invalid:
        rejects = ctx.settle(list(invalid.values()))
        saw_rows = True
        yield DocBatch(DOC_SCHEMA.empty_table(), rejects)
    if not saw_rows:
        yield from _empty_file(ctx, "a header but no records")


def _assign_numbers(start: int, n: int, invalid: list[int]) -> np.ndarray:
    """Record numbers of ``n`` parsed rows: the first ``n`` numbers >= start the parser did not reject."""
    numbers = start + np.arange(n, dtype=np.int64)
    for v in invalid:  # sorted; only rows rejected by the csv parser, so rare
        if n == 0 or v > numbers[-1]:
            break
        if v >= start:
            numbers[numbers >= v] += 1
    return numbers


def _bad_utf8_rows(col: pa.Array) -> np.ndarray:
    """Mask of values that are not valid UTF-8 (error path only)."""
    out = np.zeros(len(col), dtype=bool)
    for i, v in enumerate(col.to_pylist()):
        if v is not None:
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                out[i] = True
    return out


def _csv_batch(ctx: _Ctx, t: pa.Table, numbers: np.ndarray,
               extras: list[str]) -> tuple[pa.Table | None, list[Reject]]:
    fm = ctx.fields
    n = t.num_rows
    if n == 0:
        return None, []
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, tuple[str, Any]] = {}
    wanted = [fm.text] + [src for _, src in fm.mapped()] + extras
    strings: dict[str, pa.Array] = {}
    for name in dict.fromkeys(wanted):
        col = t.column(name).combine_chunks()
        try:
            strings[name] = col.cast(pa.string())
        except pa.ArrowInvalid:
            mask = _bad_utf8_rows(col)
            for i in np.flatnonzero(mask & ~bad).tolist():
                reasons[i] = (f"invalid utf-8 in column {name!r}", col[i].as_py())
            bad |= mask
            safe = pc.if_else(pa.array(mask), pa.scalar(b"", pa.binary()), col)
            strings[name] = safe.cast(pa.string())
    text = strings[fm.text]
    sizes = pc.binary_length(text).to_numpy(zero_copy_only=False)
    over = sizes > ctx.max_doc
    for i in np.flatnonzero(over & ~bad).tolist():
        reasons[i] = (f"document is larger than max_doc_bytes ({ctx.max_doc} bytes): {int(sizes[i])} bytes",
                      text[i].as_py())
    bad |= over
    rejects: list[Reject] = []
    if bad.any():
        for i in sorted(reasons):
            reason, raw = reasons[i]
            rejects.append(Reject(ctx.file, int(numbers[i]), reason, _snippet(raw)))
        keep = pa.array(~bad)
        strings = {k: v.filter(keep) for k, v in strings.items()}
        numbers = numbers[~bad]
        t = t.filter(keep)
        if len(numbers) == 0:
            return None, rejects
    # csv cannot tell an empty cell from a missing value: outside the text column, empty means null.
    def empty_to_null(col: pa.Array) -> pa.Array:
        return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)

    optional = {out: empty_to_null(strings[src]) for out, src in fm.mapped()}
    metadata = None
    if extras:
        metadata = _encode_metadata(pa.table({c: empty_to_null(strings[c]) for c in extras}), extras)
    return _doc_table(ctx, strings[fm.text], numbers, optional, metadata), rejects


# ---------------------------------------------------------------------------------------------------
# parquet


def _read_parquet(path: Path, ctx: _Ctx) -> Iterator[DocBatch]:
    if path.stat().st_size == 0:
        yield from _empty_file(ctx)
        return
    try:
        pf = pq.ParquetFile(str(path))
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"not a readable parquet file: {e}", file=ctx.file) from e
    columns = pf.schema_arrow.names
    _check_columns(ctx, columns)
    fm = ctx.fields
    text_type = pf.schema_arrow.field(fm.text).type
    probe = text_type.value_type if pa.types.is_dictionary(text_type) else text_type
    if not (pa.types.is_string(probe) or pa.types.is_large_string(probe) or pa.types.is_string_view(probe)
            or pa.types.is_binary(probe) or pa.types.is_large_binary(probe) or pa.types.is_binary_view(probe)):
        raise InputError(f"text column {fm.text!r} must hold strings, got type {text_type}; "
                         f"use --text-field to pick another column", file=ctx.file)
    for out, src in fm.mapped():
        t = pf.schema_arrow.field(src).type
        if pa.types.is_nested(t):
            raise InputError(f"column {src!r} ({out}) must hold strings or numbers, got type {t}", file=ctx.file)
    md = pf.metadata
    if md.num_rows == 0:
        yield from _empty_file(ctx, "0 rows")
        return
    total = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    rows_per_batch = max(1, int(ctx.batch_bytes / max(1.0, total / md.num_rows)))
    extras = [c for c in columns if c not in fm.used()] if fm.extra else []
    next_number = 1
    try:
        for batch in pf.iter_batches(batch_size=rows_per_batch, use_threads=False):
            t = pa.Table.from_batches([batch])
            numbers = next_number + np.arange(t.num_rows, dtype=np.int64)
            next_number += t.num_rows
            table, rejects = _parquet_batch(ctx, t, numbers, extras)
            rejects = ctx.settle(rejects)
            if table is not None or rejects:
                yield DocBatch(table if table is not None else DOC_SCHEMA.empty_table(), rejects)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"cannot read parquet: {e}", file=ctx.file) from e


def _parquet_batch(ctx: _Ctx, t: pa.Table, numbers: np.ndarray,
                   extras: list[str]) -> tuple[pa.Table | None, list[Reject]]:
    fm = ctx.fields
    n = t.num_rows
    col = t.column(fm.text).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    reasons: dict[int, tuple[str, Any]] = {}
    bad = np.zeros(n, dtype=bool)
    try:
        text = col.cast(pa.string())
    except pa.ArrowInvalid:
        mask = _bad_utf8_rows(col.cast(pa.large_binary()))
        for i in np.flatnonzero(mask).tolist():
            reasons[i] = (f"invalid utf-8 in text column {fm.text!r}", col[i].as_py())
        bad |= mask
        text = pc.if_else(pa.array(mask), pa.scalar(b"", pa.large_binary()), col.cast(pa.large_binary()))
        text = text.cast(pa.string())
    nulls = text.is_null().to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(nulls & ~bad).tolist():
        reasons[i] = (f"text column {fm.text!r} is null, expected a string", "")
    bad |= nulls
    sizes = pc.binary_length(text).fill_null(0).to_numpy(zero_copy_only=False)
    over = sizes > ctx.max_doc
    for i in np.flatnonzero(over & ~bad).tolist():
        reasons[i] = (f"document is larger than max_doc_bytes ({ctx.max_doc} bytes): {int(sizes[i])} bytes",
                      text[i].as_py())
    bad |= over
    rejects: list[Reject] = []
    if bad.any():
        for i in sorted(reasons):
            reason, raw = reasons[i]
            rejects.append(Reject(ctx.file, int(numbers[i]), reason, _snippet(raw if raw is not None else "")))
        keep = pa.array(~bad)
        t = t.filter(keep)
        text = text.filter(keep)
        numbers = numbers[~bad]
        if len(numbers) == 0:
            return None, rejects
    optional = {}
    for out, src in fm.mapped():
        try:
            conv = _to_string(t.column(src))
        except pa.ArrowInvalid as e:
            raise InputError(f"column {src!r} ({out}) is not valid utf-8: {e}", file=ctx.file) from e
        if conv is None:
            raise InputError(f"column {src!r} ({out}) must hold strings or numbers, got type "
                             f"{t.column(src).type}", file=ctx.file)
        optional[out] = conv
    metadata = _encode_metadata(t, extras) if extras else None
    return _doc_table(ctx, text, numbers, optional, metadata), rejects
