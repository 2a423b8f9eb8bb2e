"""The column formats: csv / tsv (``pyarrow.csv.open_csv``, every cell read as text) and parquet
(``ParquetFile.iter_batches``), with the column checks and bad-row bookkeeping they share."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from curator.errors import InputError

from .blocks import BOM, NONWS_RE, chunks
from .documents import DOC_SCHEMA, DocBatch, FieldMap, ReadContext, Reject, doc_table, emit, empty_file, snippet
from .metadata import encode_metadata
from .values import to_string


def _missing_column(ctx: ReadContext, name: str, role: str, columns: list[str], flag: str) -> InputError:
    shown = ", ".join(repr(c) for c in columns[:20]) + (", ..." if len(columns) > 20 else "")
    return InputError(f"no {role} column {name!r}; the file has columns {shown} (use {flag} to pick one)",
                      file=ctx.file)


_FLAGS = {"text": "--text-field", "prompt": "--prompt-field", "external_id": "--id-field",
          "reference": "--reference-field", "parent_id": "--parent-field"}


def _check_columns(ctx: ReadContext, columns: list[str]) -> None:
    fm = ctx.fields
    if fm.text not in columns:
        raise _missing_column(ctx, fm.text, "text", columns, "--text-field")
    for out, src in fm.mapped():
        if src not in columns:
            raise _missing_column(ctx, src, out.replace("_", " "), columns, _FLAGS[out])


def _extra_columns(fm: FieldMap, columns: list[str]) -> list[str]:
    """The columns that go to metadata: the unmapped ones, when ``fm.extra``."""
    used = fm.used()
    return [c for c in columns if c not in used] if fm.extra else []


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


class _BadRows:
    """The bad rows of one batch: a mask, and the first reason found for each (with the raw value)."""

    def __init__(self, n: int) -> None:
        self.mask = np.zeros(n, dtype=bool)
        self.reasons: dict[int, tuple[str, Any]] = {}

    def add(self, mask: np.ndarray, reason: Callable[[int], tuple[str, Any]]) -> None:
        """Mark the rows of ``mask`` bad; ``reason(i)`` gives (reason, raw value) for a row not bad yet."""
        for i in np.flatnonzero(mask & ~self.mask).tolist():
            self.reasons[i] = reason(i)
        self.mask |= mask

    def add_too_large(self, ctx: ReadContext, text: pa.Array, sizes: np.ndarray) -> None:
        self.add(sizes > ctx.max_doc, lambda i: (ctx.too_large(f"{int(sizes[i])} bytes"), text[i].as_py()))

    def rejects(self, ctx: ReadContext, numbers: np.ndarray) -> list[Reject]:
        """A Reject per bad row in row order, numbered by ``numbers``."""
        return [Reject(ctx.file, int(numbers[i]), reason, snippet(raw if raw is not None else ""))
                for i, (reason, raw) in sorted(self.reasons.items())]


# ---------------------------------------------------------------------------------------------------
# csv / tsv


def _has_content(path: Path, ctx: ReadContext) -> bool:
    """Whether the (decompressed) file holds a non-whitespace byte; stops at the first one."""
    for chunk in chunks(path, ctx):
        if NONWS_RE.search(chunk.replace(BOM, b"")):
            return True
    return False


_CSV_BLOCK_TOO_SMALL = ("straddling object", "cannot infer number of columns", "larger than block size")


def read_csv(path: Path, ctx: ReadContext, delimiter: str) -> Iterator[DocBatch]:
    if not _has_content(path, ctx):
        yield from empty_file(ctx)
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
            invalid[key] = Reject(ctx.file, number, reason, snippet(row.text or ""))
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
                extras = _extra_columns(fm, columns)
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
                yield from emit(table, rejects)
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
        yield from empty_file(ctx, "a header but no records")


def _assign_numbers(start: int, n: int, invalid: list[int]) -> np.ndarray:
    """Record numbers of ``n`` parsed rows: the first ``n`` numbers >= start the parser did not reject."""
    numbers = start + np.arange(n, dtype=np.int64)
    for v in invalid:  # sorted; only rows rejected by the csv parser, so rare
        if n == 0 or v > numbers[-1]:
            break
        if v >= start:
            numbers[numbers >= v] += 1
    return numbers


def _csv_batch(ctx: ReadContext, t: pa.Table, numbers: np.ndarray,
               extras: list[str]) -> tuple[pa.Table | None, list[Reject]]:
    fm = ctx.fields
    n = t.num_rows
    if n == 0:
        return None, []
    bad = _BadRows(n)
    wanted = [fm.text] + [src for _, src in fm.mapped()] + extras
    strings: dict[str, pa.Array] = {}
    for name in dict.fromkeys(wanted):
        col = t.column(name).combine_chunks()
        try:
            strings[name] = col.cast(pa.string())
        except pa.ArrowInvalid:
            mask = _bad_utf8_rows(col)
            bad.add(mask, lambda i: (f"invalid utf-8 in column {name!r}", col[i].as_py()))
            safe = pc.if_else(pa.array(mask), pa.scalar(b"", pa.binary()), col)
            strings[name] = safe.cast(pa.string())
    text = strings[fm.text]
    bad.add_too_large(ctx, text, pc.binary_length(text).to_numpy(zero_copy_only=False))
    rejects = bad.rejects(ctx, numbers)
    if bad.mask.any():
        keep = pa.array(~bad.mask)
        strings = {k: v.filter(keep) for k, v in strings.items()}
        numbers = numbers[~bad.mask]
        if len(numbers) == 0:
            return None, rejects
    # csv cannot tell an empty cell from a missing value: outside the text column, empty means null.
    def empty_to_null(col: pa.Array) -> pa.Array:
        return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)

    optional = {out: empty_to_null(strings[src]) for out, src in fm.mapped()}
    metadata = None
    if extras:
        metadata = encode_metadata(pa.table({c: empty_to_null(strings[c]) for c in extras}), extras)
    return doc_table(ctx, strings[fm.text], numbers, optional, metadata), rejects


# ---------------------------------------------------------------------------------------------------
# parquet


def read_parquet(path: Path, ctx: ReadContext) -> Iterator[DocBatch]:
    if path.stat().st_size == 0:
        yield from empty_file(ctx)
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
        yield from empty_file(ctx, "0 rows")
        return
    total = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    rows_per_batch = max(1, int(ctx.batch_bytes / max(1.0, total / md.num_rows)))
    extras = _extra_columns(fm, columns)
    next_number = 1
    try:
        for batch in pf.iter_batches(batch_size=rows_per_batch, use_threads=False):
            t = pa.Table.from_batches([batch])
            numbers = next_number + np.arange(t.num_rows, dtype=np.int64)
            next_number += t.num_rows
            table, rejects = _parquet_batch(ctx, t, numbers, extras)
            rejects = ctx.settle(rejects)
            yield from emit(table, rejects)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"cannot read parquet: {e}", file=ctx.file) from e


def _parquet_batch(ctx: ReadContext, t: pa.Table, numbers: np.ndarray,
                   extras: list[str]) -> tuple[pa.Table | None, list[Reject]]:
    fm = ctx.fields
    n = t.num_rows
    col = t.column(fm.text).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    bad = _BadRows(n)
    try:
        text = col.cast(pa.string())
    except pa.ArrowInvalid:
        mask = _bad_utf8_rows(col.cast(pa.large_binary()))
        bad.add(mask, lambda i: (f"invalid utf-8 in text column {fm.text!r}", col[i].as_py()))
        text = pc.if_else(pa.array(mask), pa.scalar(b"", pa.large_binary()), col.cast(pa.large_binary()))
        text = text.cast(pa.string())
    bad.add(text.is_null().to_numpy(zero_copy_only=False),
            lambda i: (f"text column {fm.text!r} is null, expected a string", ""))
    bad.add_too_large(ctx, text, pc.binary_length(text).fill_null(0).to_numpy(zero_copy_only=False))
    rejects = bad.rejects(ctx, numbers)
    if bad.mask.any():
        keep = pa.array(~bad.mask)
        t = t.filter(keep)
        text = text.filter(keep)
        numbers = numbers[~bad.mask]
        if len(numbers) == 0:
            return None, rejects
    optional = {}
    for out, src in fm.mapped():
        try:
            conv = to_string(t.column(src))
        except pa.ArrowInvalid as e:
            raise InputError(f"column {src!r} ({out}) is not valid utf-8: {e}", file=ctx.file) from e
        if conv is None:
            raise InputError(f"column {src!r} ({out}) must hold strings or numbers, got type "
                             f"{t.column(src).type}", file=ctx.file)
        optional[out] = conv
    metadata = encode_metadata(t, extras) if extras else None
    return doc_table(ctx, text, numbers, optional, metadata), rejects
