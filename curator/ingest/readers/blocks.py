"""Byte-block streaming for the line-based formats (jsonl, text): a file is read in blocks of
``batch_bytes``, each cut at its last complete record by a ``Splitter``, the rest carried into the next
block. Also the vectorised byte helpers they share: whitespace tables, line index, UTF-8 checks."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curator.errors import InputError
from curator.stats import kernels

from .documents import DOC_SCHEMA, SNIPPET, DocBatch, ReadContext, Reject, emit, empty_file

ASCII_WS = b" \t\n\r\x0b\x0c"
_JSON_WS = b" \t\n\r"
WS_LUT = np.zeros(256, dtype=bool)
WS_LUT[list(ASCII_WS)] = True
JSON_WS_LUT = np.zeros(256, dtype=bool)
JSON_WS_LUT[list(_JSON_WS)] = True
NONWS_RE = re.compile(rb"[^ \t\n\r\x0b\x0c]")
BOM = b"\xef\xbb\xbf"


def utf8_ok(data: Any) -> bool:
    """Vectorised UTF-8 validation of a whole buffer (Arrow's SIMD validator, GB/s)."""
    buf = pa.py_buffer(data)
    offsets = pa.py_buffer(np.array([0, len(buf)], dtype=np.int64))
    arr = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, buf])
    try:
        arr.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def line_index(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newline positions, line starts and line ends (newline excluded); the last line may be partial."""
    nl = kernels.newlines(arr) if kernels.LIB is not None else np.flatnonzero(arr == 10)
    starts = np.empty(len(nl) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl + 1
    ends = np.empty_like(starts)
    ends[:-1] = nl
    ends[-1] = len(arr)
    return nl, starts, ends


def nonblank_lines(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray, lut: np.ndarray) -> np.ndarray:
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


class Splitter:
    """How a byte stream splits into records. ``process`` handles the complete records of a buffer."""

    def __init__(self, ctx: ReadContext) -> None:
        self.ctx = ctx
        self.newlines: int | None = None  # set by process: newlines in the consumed bytes, if it knows

    def process(self, buf: bytes, line0: int, final: bool) -> tuple[pa.Table | None, list[Reject], int]:
        """Parse the complete records at the head of ``buf`` (all of it when ``final``).

        Returns (table or None, rejects, bytes consumed); ``line0`` is the line number of buf's first line.
        """
        raise NotImplementedError

    def record_span(self, buf: bytes) -> tuple[int, int]:
        """[start, end) of the record in progress at the head of ``buf``, surrounding whitespace excluded."""
        m = NONWS_RE.search(buf)
        if m is None:
            return len(buf), len(buf)
        end = len(buf)
        if end - m.start() > self.ctx.max_doc:  # only then is the exact end worth a copy
            end = len(buf.rstrip(ASCII_WS))
        return m.start(), end

    def first_boundary(self, buf: bytes) -> int:
        """Offset just past the first record boundary in ``buf``; -1 if none (used to skip a huge record)."""
        raise NotImplementedError

    def keep_tail(self, buf: bytes) -> int:
        """While skipping, the offset from which ``buf`` may still hold the start of a boundary."""
        return len(buf)


def chunks(path: Path, ctx: ReadContext) -> Iterator[bytes]:
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


def read_blocks(path: Path, ctx: ReadContext, splitter: Splitter) -> Iterator[DocBatch]:
    carry = b""
    line0 = 1  # line number of carry's first line
    saw_content = False
    started = False
    discarding = False  # skip mode: inside an oversized record, dropping bytes until its end
    for chunk in chunks(path, ctx):
        buf = carry + chunk if carry else chunk
        if not started:
            if len(buf) < len(BOM) and BOM.startswith(buf):
                carry = buf  # too short to tell whether a byte-order mark begins the file
                continue
            started = True
            if buf.startswith(BOM):
                buf = buf[len(BOM):]
        if not saw_content:
            saw_content = NONWS_RE.search(buf) is not None
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
        yield from emit(table, rejects)
        line0 += splitter.newlines if splitter.newlines is not None else buf.count(b"\n", 0, cut)
        carry = buf[cut:] if cut else buf
        start, end = splitter.record_span(carry)
        if end - start > ctx.max_doc:
            # The record in progress is already over the limit and has no end in sight: report it now
            # rather than buffering an unbounded amount of data.
            first = line0 + carry.count(b"\n", 0, start)
            reject = ctx.bad(first, ctx.too_large(f"at least {end - start} bytes"),
                             carry[start:start + 4 * SNIPPET])
            yield DocBatch(DOC_SCHEMA.empty_table(), [reject])
            discarding = True
            keep = splitter.keep_tail(carry)
            line0 += carry.count(b"\n", 0, keep)
            carry = carry[keep:]
    if not started and carry == BOM:
        carry = b""  # a file holding just a byte-order mark
    if not discarding and carry:
        if not saw_content:
            saw_content = NONWS_RE.search(carry) is not None
        table, rejects, _ = splitter.process(carry, line0, final=True)
        yield from emit(table, rejects)
    if not saw_content:
        yield from empty_file(ctx)
