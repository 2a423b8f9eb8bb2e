"""Merging partial aggregates of one (group, n) value range into (value, count, doc_freq) rows.

Partial state comes in three kinds of pieces (see ``curator.stats.blocks``): ``singles`` (uint64
values counted once per element: count 1, doc_freq 1; a value may occur many times, in one piece
or several), ``repeats`` (uint64 values whose doc_freq is one less per element: in-document
repeats of occurrences that are among the singles) and ``multis`` ((value, count, doc_freq)
arrays). doc_freq adds up over pieces because a document lives in exactly one block.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curator.stats import kernels
from curator.stats.buffers import Buffers
from curator.stats.sorting import (
    _EMPTY_I64,
    _EMPTY_U64,
    _concat,
    _group_sorted,
    _group_sums,
)


@dataclass
class _Partials:
    """The in-memory partial state of one (group, n): lists of sorted runs."""

    singles: list = field(default_factory=list)  # sorted uint64 arrays (values may repeat)
    multis: list = field(default_factory=list)  # (value u64 sorted distinct, count i64, doc_freq i64)
    repeats: list = field(default_factory=list)  # sorted uint64 arrays

    def rows(self) -> int:
        return (sum(len(a) for a in self.singles) + sum(len(r[0]) for r in self.multis)
                + sum(len(a) for a in self.repeats))


def _sorted_counts(pieces: list[np.ndarray], scratch: Buffers | None = None,
                   tag: str = "s") -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of the concatenated pieces and how often each occurs (in
    ``scratch`` buffers named after ``tag`` when given, else fresh arrays)."""
    m = sum(map(len, pieces))
    if scratch is None:
        s = np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()
    else:
        s = np.concatenate(pieces, out=scratch.get(tag, m, np.uint64))
    s.sort()
    if kernels.LIB is not None:
        values = np.empty(m, np.uint64) if scratch is None else scratch.get(tag + ".value", m, np.uint64)
        counts = np.empty(m, np.int64) if scratch is None else scratch.get(tag + ".count", m, np.int64)
        u = kernels.run_counts(s, values, counts)
        return values[:u], counts[:u]
    new = np.empty(m, bool) if scratch is None else scratch.get(tag + ".new", m, bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    u = int(np.count_nonzero(new))
    counts = np.empty(u, np.int64) if scratch is None else scratch.get(tag + ".count", u, np.int64)
    if u == m:
        counts.fill(1)
        return s, counts
    starts = np.flatnonzero(new)
    values = np.take(s, starts, out=None if scratch is None else scratch.get(tag + ".value", u, np.uint64), mode="clip")
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = m - starts[-1]
    return values, counts


def _merge_multis(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Sorted distinct values with summed count and doc_freq, from (value, count, doc_freq) pieces
    in any order. doc_freq comes back as the count array itself when every piece's doc_freq equals
    its count (no n-gram repeats inside a document: most 3- and 4-grams), which saves work."""
    same = all(d is c or np.array_equal(c, d) for _, c, d in runs)
    v = _concat([r[0] for r in runs])
    order, hs, _, starts = _group_sorted(v)
    c = _group_sums(_concat([r[1] for r in runs], np.int64)[order], starts)
    d = c if same else _group_sums(_concat([r[2] for r in runs], np.int64)[order], starts)
    return hs[starts], c, d


def _merge_unit(singles: list[np.ndarray], multis: list[tuple], repeats: list[np.ndarray] = (),
                scratch: Buffers | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, count, doc_freq) of every distinct value of one value range, from its pieces.

    Pieces need not be sorted (a spilled partition is a concatenation of sorted slices). Singles
    only need a plain value sort (no payload); repeats are subtracted from the singles' doc_freq
    (their values are always among the singles: both come from the same blocks); the merged
    multis are then added. Rows come out as the sorted distinct singles followed by the multis no
    single had: not globally sorted, which no statistic needs. doc_freq is the very array of
    count when the two are equal everywhere. With ``scratch``, the rows may lie in its buffers
    (valid until its next use).
    """
    singles = [a for a in singles if len(a)]
    multis = [r for r in multis if len(r[0])]
    if singles:
        sv, sc = _sorted_counts(singles, scratch)
        sd = sc
        repeats = [a for a in repeats if len(a)]
        if repeats:
            rv, rc = _sorted_counts(repeats, scratch, "r")
            if scratch is None:
                sd = sc.copy()
            else:
                sd = scratch.get("s.df", len(sc), np.int64)
                np.copyto(sd, sc)
            sd[np.searchsorted(sv, rv)] -= rc
    else:
        sv, sc, sd = _EMPTY_U64, _EMPTY_I64, _EMPTY_I64
    if not multis:
        return sv, sc, sd
    mv, mc, md = _merge_multis(multis)
    if not len(sv):
        return mv, mc, md
    same = md is mc and sd is sc
    if not same and sd is sc:
        sd = sc.copy()
    pos = np.searchsorted(sv, mv)
    np.minimum(pos, len(sv) - 1, out=pos)
    found = sv[pos] == mv
    hit = pos[found]  # distinct: both sides are distinct values
    sc[hit] += mc[found]
    if not same:
        sd[hit] += md[found]
    extra = np.flatnonzero(~found)
    if not len(extra):
        return sv, sc, sd
    v = np.concatenate([sv, mv[extra]])
    c = np.concatenate([sc, mc[extra]])
    return v, c, (c if same else np.concatenate([sd, md[extra]]))


def _merge_partials(singles: list[np.ndarray], multis: list[tuple],
                    repeats: list[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, count, doc_freq) of every distinct value of one (group, n)'s partials, in memory.

    For tests and small inputs; ``finish`` merges one value range at a time (``_merge_unit``).
    """
    return _merge_unit(list(singles), list(multis), list(repeats))


def _merge_groups(merged: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """'*' of one value range from every group's merged rows: rows seen once go the plain-sort
    way of singles (count 1 implies doc_freq 1), the others as multis."""
    singles, multis = [], []
    for v, c, d in merged:
        one = c == 1
        singles.append(v[one])
        more = ~one
        cm = c[more]
        multis.append((v[more], cm, cm if d is c else d[more]))
    return _merge_unit(singles, multis)
