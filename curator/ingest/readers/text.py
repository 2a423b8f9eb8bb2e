"""text: plain-text documents separated by blank lines (``BlankSplitter``) or by a literal
``text_separator`` (``SepSplitter``). Documents are located with numpy and cut out of the block with Arrow."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .blocks import ASCII_WS, NONWS_RE, WS_LUT, Splitter, line_index, nonblank_lines, utf8_ok
from .documents import ReadContext, Reject, doc_table, snippet

_BLANK_LINE_RE = re.compile(rb"\n[ \t\r\x0b\x0c]*\n")


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


class _TextSplitter(Splitter):
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
        if not utf8_ok(view):
            keep = np.ones(len(starts), dtype=bool)
            for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
                piece = bytes(view[s:e])
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as err:
                    keep[i] = False
                    lead = len(piece) - len(piece.lstrip(ASCII_WS))
                    doc_line = (int(first_lines[i]) if first_lines is not None
                                else int(np.searchsorted(nl, s + lead)) + self._line0)
                    line = int(np.searchsorted(nl, s + err.start)) + self._line0
                    reason = (f"invalid utf-8: byte 0x{piece[err.start]:02x} ({err.reason}) in the document "
                              f"starting at line {doc_line}")
                    rejects.append(Reject(self.ctx.file, line, reason, snippet(piece[lead:])))
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
                reason = self.ctx.too_large(f"{int(lengths[i])} bytes")
                rejects.append(Reject(self.ctx.file, int(first_lines[i]), reason, snippet(text[i].as_py())))
            keep &= ~over
        rejects = self.ctx.settle(rejects)
        if not keep.all():
            text = text.filter(pa.array(keep))
            first_lines = first_lines[keep]
        if len(text) == 0:
            return None, rejects
        return doc_table(self.ctx, text.cast(pa.string()), first_lines), rejects


class BlankSplitter(_TextSplitter):
    """Documents separated by blank lines."""

    def first_boundary(self, buf: bytes) -> int:
        m = _BLANK_LINE_RE.search(buf)
        return m.end() if m else -1

    def keep_tail(self, buf: bytes) -> int:
        # Keep the last newline and the whitespace after it: they may be the first half of a blank line.
        pos = buf.rfind(b"\n")
        if pos >= 0 and NONWS_RE.search(buf, pos) is None:
            return pos
        return len(buf)

    def process(self, buf: bytes, line0: int, final: bool) -> tuple[pa.Table | None, list[Reject], int]:
        self._line0 = line0
        arr = np.frombuffer(buf, dtype=np.uint8)
        nl, starts, ends = line_index(arr)
        nonblank = nonblank_lines(arr, starts, ends, WS_LUT)
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


class SepSplitter(_TextSplitter):
    """Documents separated by a literal string."""

    def __init__(self, ctx: ReadContext, sep: str) -> None:
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
