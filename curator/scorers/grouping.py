"""Grouping equal values: 64-bit hash keys with one sort, small integers exactly, byte ranges exactly.

A group is the list of the indices holding one value, ascending; groups come one after another in
``Groups.order``. ``group_keys`` sorts (high bits of the key | index) once and checks neighbours against
the full 64-bit keys, so two different keys are never put together; ``group_ints`` packs (value | index)
when both fit in 64 bits; ``equal_ranges`` groups byte strings of the text buffer (lines, paragraphs)
with Arrow's ``dictionary_encode``.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..stats.tokenize import mix64
from .textbuf import TextBuffer

__all__ = ["Groups", "equal_ranges", "group_ints", "group_keys", "range_ids"]

_U64 = np.uint64
_SPREAD = _U64(0xBF58476D1CE4E5B9)  # key spreading before a sort on the high bits


class Groups:
    """Equal keys grouped: ``order`` lists key indices group after group, ascending inside a group;
    ``bounds[i]`` (length len(order) + 1) says a group starts at order[i] (and bounds[-1] closes the last)."""

    def __init__(self, order: np.ndarray, bounds: np.ndarray) -> None:
        self.order = order
        self.bounds = bounds

    @cached_property
    def starts(self) -> np.ndarray:
        """Where each group starts in ``order``, plus len(order)."""
        return np.flatnonzero(self.bounds)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)

    @property
    def is_first(self) -> np.ndarray:
        """Bool along ``order``: the first (smallest) index of its group."""
        return self.bounds[:-1]

    @cached_property
    def in_multi(self) -> np.ndarray:
        """Bool along ``order``: the element's group has two or more members (a singleton has a bound
        on both sides)."""
        return ~(self.bounds[:-1] & self.bounds[1:])


def group_keys(keys: np.ndarray) -> Groups:
    """Group equal uint64 keys with one sort of (high bits of the key | index), so that indices come out
    ascending inside each group.

    The keys are first multiplied by an odd constant (a bijection, so equal stays equal and different
    stays different): polynomial hashes of strings that differ in their last byte differ only in their
    low bits, and the product spreads such differences over the high bits. Neighbours in the sorted
    order that share the high bits are checked against the full keys; a run of equal high bits holding
    different keys (about one per 2**40 pairs) is re-sorted by the full key.
    """
    m = len(keys)
    if m == 0:
        return Groups(np.zeros(0, np.int64), np.ones(1, bool))
    bits = int(m).bit_length()
    low = _U64((1 << bits) - 1)
    packed = keys * _SPREAD
    packed &= ~low
    packed |= _iota(m)
    packed.sort()
    order = (packed & low).view(np.int64)
    bounds = np.ones(m + 1, bool)
    np.bitwise_xor(packed[1:], packed[:-1], out=packed[:-1])
    np.greater(packed[:-1], low, out=bounds[1:-1])  # the high bits change
    # Neighbours that share the high bits are checked against the full keys: where most do (repetitive
    # text), with one gather of all keys in sorted order.
    if 4 * (m - 1 - np.count_nonzero(bounds[1:-1])) > m:
        ordered = keys[order]
        differ = ordered[1:] != ordered[:-1]
        np.greater(differ, bounds[1:-1], out=differ)  # and the high bits are the same
        differ = np.flatnonzero(differ) if differ.any() else None
    else:
        same = np.flatnonzero(~bounds[1:-1])
        differ = same[keys[order[same]] != keys[order[same + 1]]]
    if differ is not None and len(differ):
        order, bounds = _split_mixed(keys * _SPREAD, order, bounds, differ)
    return Groups(order, bounds)


_IOTA = np.arange(1 << 16, dtype=np.uint64)


def _iota(m: int) -> np.ndarray:
    """0..m-1 as uint64, from a cache (read only)."""
    global _IOTA
    if m > len(_IOTA):
        _IOTA = np.arange(max(m, 2 * len(_IOTA)), dtype=np.uint64)
    return _IOTA[:m]


def _split_mixed(mixed: np.ndarray, order: np.ndarray, bounds: np.ndarray,
                 at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The runs of equal high bits that hold different keys (neighbours at `at`, `at` + 1 differ) are
    # sorted by (full key, index). Runs are in ascending order of their high bits, the top bits of the
    # full keys, so sorting all their elements together keeps the whole order sorted.
    run_starts = np.flatnonzero(bounds[:-1])
    run_ends = np.append(run_starts[1:], len(order))
    runs = np.unique(np.searchsorted(run_starts, at, side="right") - 1)
    lengths = run_ends[runs] - run_starts[runs]
    idx = np.repeat(run_starts[runs] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    sub = order[idx]
    order = order.copy()
    order[idx] = sub[np.lexsort((sub, mixed[sub]))]
    inner = idx[1:][np.diff(idx) == 1]  # neighbours inside the re-sorted runs
    bounds = bounds.copy()
    bounds[inner] = mixed[order[inner]] != mixed[order[inner - 1]]
    return order, bounds


def group_ints(ints: np.ndarray, bound: int) -> Groups:
    """Group non-negative integers below ``bound`` exactly (no hashing)."""
    m = len(ints)
    bits = int(m).bit_length()
    if m == 0 or int(bound - 1).bit_length() + bits > 64:
        return group_keys(mix64(ints.astype(np.uint64)))  # a bijection: equal hashes are equal integers
    low = _U64((1 << bits) - 1)
    packed = ints.astype(np.uint64) << _U64(bits)
    packed |= _iota(m)
    packed.sort()
    bounds = np.ones(m + 1, bool)
    np.not_equal(packed[1:] >> _U64(bits), packed[:-1] >> _U64(bits), out=bounds[1:-1])
    return Groups((packed & low).view(np.int64), bounds)


def range_ids(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids of the byte strings data[starts:ends] (equal strings, equal ids, exactly) and their count.

    The ranges must be sorted and disjoint: they become every other element of a zero-copy Arrow array
    over the text buffer (the elements between are the gaps), which ``dictionary_encode`` hashes in C++.
    """
    k = len(starts)
    data = buf.array.buffers()[2]
    if k == 0 or data is None or not len(buf.data):
        return np.zeros(k, np.int64), 1
    offsets = np.empty(2 * k, np.int64)
    offsets[0::2] = starts
    offsets[1::2] = ends
    offsets += buf.base
    views = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 2 * k - 1, [None, pa.py_buffer(offsets), data])
    encoded = pc.dictionary_encode(views)
    ids = np.asarray(encoded.indices)[0::2].astype(np.int64)
    return ids, len(encoded.dictionary)


def equal_ranges(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray, doc: np.ndarray) -> Groups:
    """Groups of equal byte ranges within each document (ranges sorted by document)."""
    ids, n_ids = range_ids(buf, starts, ends)
    return group_ints(doc * n_ids + ids, buf.n * n_ids)
