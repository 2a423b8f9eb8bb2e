"""Lines and paragraphs as byte ranges of the text buffer, and their duplicates per document."""
from __future__ import annotations

import numpy as np

from .grouping import equal_ranges
from .textbuf import TextBuffer

__all__ = ["all_copies", "later_copies", "newline_runs", "ratio", "split_at"]


def newline_runs(buf: TextBuffer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end (exclusive) and document of every maximal run of "\\n" bytes inside a document."""
    nl = np.flatnonzero(buf.data == 10)
    doc = np.searchsorted(buf.offsets, nl, side="right") - 1
    if not len(nl):
        return nl, nl, doc
    head = np.concatenate(([True], (nl[1:] != nl[:-1] + 1) | (doc[1:] != doc[:-1])))
    first = np.flatnonzero(head)
    last = np.append(first[1:], len(nl)) - 1
    return nl[first], nl[last] + 1, doc[first]


def split_at(lo: np.ndarray, hi: np.ndarray, sep_start: np.ndarray, sep_end: np.ndarray,
              sep_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of re.split: each document's range [lo, hi) cut at its separators (sorted, inside the
    range), k separators giving k + 1 pieces. Returns piece starts, ends and documents."""
    n_docs = len(lo)
    per_doc = np.bincount(sep_doc, minlength=n_docs) + 1
    doc = np.repeat(np.arange(n_docs), per_doc)
    first = np.zeros(n_docs + 1, np.int64)
    np.cumsum(per_doc, out=first[1:])
    starts = np.empty(len(doc), np.int64)
    ends = np.empty(len(doc), np.int64)
    head = np.zeros(len(doc), bool)
    head[first[:-1]] = True
    starts[head] = lo
    starts[~head] = sep_end
    tail = np.zeros(len(doc), bool)
    tail[first[1:] - 1] = True
    ends[tail] = hi
    ends[~tail] = sep_start
    return starts, ends, doc


def later_copies(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray,
                  doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """datatrove's find_duplicates per document: (count, characters) of the elements equal to an earlier one."""
    groups = equal_ranges(buf, starts, ends, doc)
    later = np.ones(len(starts), bool)
    later[groups.order[groups.is_first]] = False
    chars = buf.chars(starts[later], ends[later])
    return (np.bincount(doc[later], minlength=buf.n).astype(np.float64),
            np.bincount(doc[later], weights=chars, minlength=buf.n))


def all_copies(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray,
                doc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per document: (count, characters) of the elements that occur more than once (every copy), and
    (count, characters) of all elements."""
    groups = equal_ranges(buf, starts, ends, doc)
    dup = np.zeros(len(starts), bool)
    dup[groups.order[groups.in_multi]] = True
    chars = buf.chars(starts, ends)
    return (np.bincount(doc[dup], minlength=buf.n).astype(np.float64),
            np.bincount(doc[dup], weights=chars[dup], minlength=buf.n),
            np.bincount(doc, minlength=buf.n).astype(np.float64),
            np.bincount(doc, weights=chars, minlength=buf.n))


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN (null) where den is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
