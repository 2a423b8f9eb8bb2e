"""The UTF-8 bytes of a batch of texts as numpy arrays, and the text units shared by the text scorers.

``TextBuffer`` views an Arrow string column's bytes without copying; ``whitespace_words`` finds the
words of ``text.split()`` (maximal runs of non-whitespace characters, ``str.isspace()`` deciding, see
``text_stats``) for every document at once; ``segment_sums`` adds values per document. ``text_stats_v1``
counts with them and ``repetition_v1`` builds its lines, paragraphs and n-grams on them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from ..errors import InputError

__all__ = ["ALPHA", "SPACE", "TextBuffer", "Words", "segment_sums", "whitespace_words"]

# Character class bits (``TextBuffer.multibyte_with``).
SPACE, ALPHA = np.uint8(1), np.uint8(2)


# Per code point: bit 0 = str.isspace(), bit 1 = str.isalpha(), 0xFF = not looked at yet. Each distinct
# code point is classified once per process, when a text first holds it (a table of all 1.1M code
# points would take a Python loop of a third of a second to build).
_UNKNOWN = np.uint8(0xFF)
_CLASSES = np.full(0x110000, _UNKNOWN, np.uint8)


def _char_classes(cp: np.ndarray) -> np.ndarray:
    """The class bits of the code points ``cp``."""
    out = _CLASSES[cp]
    new = out == _UNKNOWN
    if new.any():
        fresh = np.unique(cp[new])
        _CLASSES[fresh] = [(chr(c).isspace() * SPACE) | (chr(c).isalpha() * ALPHA) for c in fresh.tolist()]
        out[new] = _CLASSES[cp[new]]
    return out


def segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of values[offsets[i]:offsets[i+1]] for each i (int64; empty segments give 0)."""
    out = np.zeros(len(offsets) - 1, np.int64)
    nonempty = offsets[1:] > offsets[:-1]
    if nonempty.any():
        # reduceat gives a one-element "sum" for an empty segment, so empty ones are left out; the
        # segment of a kept start then runs to the next kept start, which is where it ends anyway.
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty], dtype=np.int64)
    return out


class TextBuffer:
    """The UTF-8 bytes of N documents, zero-copy from an Arrow string array.

    ``data[offsets[i]:offsets[i+1]]`` is document i; ``padded`` is ``data`` followed by 8 zero bytes
    (``window`` reads 8 bytes at any position). ``array`` is the large_string array with nulls replaced by "", and
    ``base`` the position of ``data[0]`` in its data buffer, for zero-copy Arrow views of byte ranges.
    """

    def __init__(self, texts: pa.Array | pa.ChunkedArray) -> None:
        arr = _as_large_string(texts)
        n = len(arr)
        offsets = np.frombuffer(arr.buffers()[1], np.int64, count=n + 1, offset=8 * arr.offset)
        self.array = arr
        self.base = int(offsets[0])
        self.offsets = offsets - self.base

    @cached_property
    def padded(self) -> np.ndarray:
        """``data`` followed by 8 zero bytes."""
        size = int(self.offsets[-1])
        padded = np.empty(size + 8, np.uint8)
        padded[size:] = 0
        if size:
            padded[:size] = np.frombuffer(self.array.buffers()[2], np.uint8, count=size, offset=self.base)
        return padded

    @cached_property
    def data(self) -> np.ndarray:
        return self.padded[: int(self.offsets[-1])]

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    def slices(self, max_bytes: int) -> list[tuple[int, int]]:
        """Consecutive document ranges of about ``max_bytes`` each (a longer document stands alone)."""
        bounds = [0]
        target = max_bytes
        while bounds[-1] < self.n:
            hi = int(np.searchsorted(self.offsets, target, side="right")) - 1
            hi = max(hi, bounds[-1] + 1)
            bounds.append(min(hi, self.n))
            target = int(self.offsets[bounds[-1]]) + max_bytes
        return list(zip(bounds[:-1], bounds[1:]))

    def slice(self, lo: int, hi: int) -> "TextBuffer":
        return TextBuffer(self.array.slice(lo, hi - lo))

    @cached_property
    def non_ascii(self) -> bool:
        return bool(len(self.data)) and int(self.data.max()) >= 0x80

    @cached_property
    def window(self) -> np.ndarray:
        """``window[p]`` = the 8 bytes at data[p:p+8] as a little-endian uint64 (zero past the end)."""
        return np.ndarray((len(self.data),), dtype="<u8", buffer=self.padded, strides=(1,))

    @cached_property
    def _continuations(self) -> np.ndarray:
        """Positions of the UTF-8 continuation bytes (few in mostly-ASCII text)."""
        return np.flatnonzero((self.data & 0xC0) == 0x80)

    def chars(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Code points in the byte ranges [starts, ends): sorted, disjoint ranges that begin and end on
        character boundaries."""
        length = (ends - starts).astype(np.int64)
        if self.non_ascii and len(starts):
            # Each continuation byte is looked up among the ranges (not each range among them: text is
            # mostly ASCII, so there are few).
            cont = self._continuations
            k = np.searchsorted(starts, cont, side="right") - 1
            inside = (k >= 0) & (cont < ends[np.maximum(k, 0)])
            length -= np.bincount(k[inside], minlength=len(starts))
        return length

    def doc_chars(self) -> np.ndarray:
        nonempty = self.offsets[1:] > self.offsets[:-1]
        out = np.zeros(self.n, np.int64)
        out[nonempty] = self.chars(self.offsets[:-1][nonempty], self.offsets[1:][nonempty])
        return out

    @cached_property
    def _leads(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, widths and code points of the multi-byte characters."""
        data = self.padded
        pos = np.flatnonzero(self.data >= 0xC0)
        lead = data[pos].astype(np.uint32)
        width = np.where(lead >= 0xF0, 4, np.where(lead >= 0xE0, 3, 2))
        cp = lead & np.where(width == 4, 0x07, np.where(width == 3, 0x0F, 0x1F)).astype(np.uint32)
        for k in (1, 2, 3):
            more = width > k
            cp = np.where(more, (cp << 6) | (data[pos + k] & 0x3F), cp)  # data is padded
        return pos, width, cp

    def multibyte_with(self, bit: np.uint8) -> tuple[np.ndarray, np.ndarray]:
        """Positions and widths of the multi-byte characters of a class (space or alpha)."""
        if not self.non_ascii:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pos, width, cp = self._leads
        hit = (_char_classes(cp) & bit) != 0
        return pos[hit], width[hit]

    @cached_property
    def space(self) -> np.ndarray:
        """Bool per byte: the byte belongs to a whitespace character."""
        d = self.data
        # uint8 arithmetic wraps: (d - 9) <= 4 is 9..13 (\t..\r), (d - 28) <= 4 is 28..32 (FS..space).
        out = (d - np.uint8(9)) <= 4
        out |= (d - np.uint8(28)) <= 4
        pos, width = self.multibyte_with(SPACE)
        for k in range(4):
            out[pos[width > k] + k] = True
        return out


def _as_large_string(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)
            or pa.types.is_string_view(texts.type) or pa.types.is_null(texts.type)):
        raise InputError(f"text must be strings, got arrow type {texts.type}")
    if not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.large_string())
    if texts.null_count:
        texts = texts.fill_null("")
    return texts


@dataclass(frozen=True)
class Words:
    """Whitespace words of a TextBuffer: byte ranges [starts, ends), and ``doc_words`` (N+1): the words
    of document i are ``doc_words[i]:doc_words[i+1]``."""

    starts: np.ndarray
    ends: np.ndarray
    doc_words: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    @cached_property
    def doc(self) -> np.ndarray:
        """Document index of every word."""
        return np.repeat(np.arange(len(self.doc_words) - 1), np.diff(self.doc_words))


def whitespace_words(buf: TextBuffer) -> Words:
    """The words of ``text.split()`` for every document: maximal runs of non-whitespace bytes that do not
    cross a document boundary."""
    word = ~buf.space
    offsets = buf.offsets
    nonempty = offsets[1:] > offsets[:-1]
    first, last = offsets[:-1][nonempty], offsets[1:][nonempty] - 1
    start = np.empty_like(word)
    end = np.empty_like(word)
    if len(word):
        np.greater(word[1:], word[:-1], out=start[1:])  # a word byte after a space byte
        np.greater(word[:-1], word[1:], out=end[:-1])  # a word byte before a space byte
        end[-1] = word[-1]
    # Document edges end and start words even between two word bytes.
    start[first] = word[first]
    end[last] = word[last]
    starts = np.flatnonzero(start)
    ends = np.flatnonzero(end) + 1
    return Words(starts, ends, np.searchsorted(starts, offsets))
