"""Per-block aggregation of n-gram values: one sort per (block, n), two forms of partial state.

A block is a run of whole documents of one group, about ``_BLOCK_TOKENS`` tokens (see
``curator.stats.ngrams``). For each n the block's n-gram values S (the hash before finalising)
are sorted once by (value, position) (``sorting._sort_positions``). Within one value the
positions are then ascending, so an occurrence in the same document as the previous occurrence
of its value is an in-document *repeat*, and doc_freq = count - repeats.

The block is then kept in one of two forms, whichever suits how repetitive its values are (the
tables do not depend on the choice):

- occurrences (``_occurrences``; 3- and 4-grams of ordinary text): the sorted values
  themselves, one element per occurrence (``singles``: count 1 and doc_freq 1 each, values may
  repeat), plus the values of the in-document repeats (``repeats``: doc_freq - 1 each). The
  sorted array is stored as it is, with no compaction pass; only the positions whose value equals
  its predecessor's are looked at (for repeats and for the text candidates).
- rows (``_rows``; 1- and 2-grams): one row per distinct value: values seen once as bare
  ``singles``, the others as (value, count, doc_freq) ``multi`` rows. Smaller than the
  occurrences once many values repeat, and cheaper to merge in ``finish``.

Either way the block also reports its values seen at least twice with their counts and first
positions (``top``: the text candidates' source) and, lazily, the values seen once (``lone``).

Speed. The temporaries live in reusable buffers (``_Work``) sized for one block, so that a
block allocates (and page-faults) only what it keeps as state; ``np.take`` into them uses
``mode="clip"`` (the indices are always in range), since the default mode buffers its output.
The form of a (group, n)'s next block follows the share of repeated values in its last one.

Compiled path. Where ``kernels`` is loaded, ``_aggregate_next`` builds the keys and ``_compiled``
reads the sorted keys in one C pass per form (``_kernels.c``); the numpy functions here are the
fallback and the reference the tests compare with.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curator.stats import kernels
from curator.stats.buffers import empty
from curator.stats.sorting import _EMPTY_I64, _EMPTY_U64, _resort, _run_lengths

_U64 = np.uint64
_ALL_ONES = ~_U64(0)
# Occurrence form when at most this share of a block's positions repeat their predecessor's
# value (English text: 3- and 4-grams ~10-20%, 2-grams ~40-50%, 1-grams ~95%). The form is
# chosen for each (group, n) from its previous block (see ``_Work.form``); the first block of
# each n > 1 starts in occurrence form.
_OCCURRENCE_SHARE = 0.3


class _Work:
    """Reusable buffers of the block pipeline, grown on demand (see the module docstring).

    Arrays returned from them (``order`` and the like) are valid until the next block.
    """

    def __init__(self) -> None:
        self.size = 0
        # Last dup share per (group, n): picks the form of the next block.
        self.share: dict[tuple[int, int], float] = {}
        self.ensure(1 << 12)

    def ensure(self, m: int) -> None:
        if m <= self.size:
            return
        size = max(m, self.size + self.size // 4)
        self.size = size
        self.s = empty(size, np.uint64)  # S of the current n
        self.key = empty(size, np.uint64)  # sort keys, then positions
        self.u1 = empty(size, np.uint64)
        self.i1 = empty(size, np.int64)
        self.i2 = empty(size, np.int64)
        self.i3 = empty(size, np.int64)
        self.i4 = empty(size, np.int64)
        self.key2 = empty(size, np.uint64)
        self.out = np.empty(3, np.int64)
        self.d1 = empty(size, np.int32)
        self.d2 = empty(size, np.int32)
        self.b1 = empty(size, bool)
        self.b2 = empty(size, bool)
        self.arange = np.arange(size, dtype=np.int64)

    def form(self, key: tuple[int, int], n: int) -> bool:
        """True: occurrence form for this (group, n)'s next block."""
        share = self.share.get(key)
        if share is None:
            return n > 1
        return share <= _OCCURRENCE_SHARE


@dataclass
class _Block:
    """One block's n-grams (positions are block positions).

    State: ``singles`` (values counted once per element; count 1, doc_freq 1), ``repeats``
    (values whose doc_freq drops by one per element), ``multi``/``count``/``doc_freq`` rows.
    Candidates: ``top`` = (values seen at least twice, their counts, first positions) and
    ``lone()`` = (values seen once, their positions), both valid until the next block (they
    may lie in the block pipeline's buffers). ``share``:
    the share of positions that repeat their predecessor's value in sorted order.
    """

    singles: np.ndarray
    repeats: np.ndarray
    multi: np.ndarray
    count: np.ndarray
    doc_freq: np.ndarray
    top: tuple[np.ndarray, np.ndarray, np.ndarray]
    lone: Callable[[], tuple[np.ndarray, np.ndarray]]
    share: float = 0.0

    @property
    def first(self) -> np.ndarray:
        return self.top[2]


_NO_TOP = (_EMPTY_U64, _EMPTY_I64, _EMPTY_I64)


def _all_single(hs: np.ndarray, order: np.ndarray) -> _Block:
    return _Block(hs, _EMPTY_U64, _EMPTY_U64, _EMPTY_I64, _EMPTY_I64, _NO_TOP, lambda: (hs, order))


def _low_mask(m: int) -> np.uint64:
    """The position bits of the sort keys of a block of m values."""
    return _U64((1 << max(1, int(m).bit_length())) - 1)


def _sorted_keys(h: np.ndarray, drop: np.ndarray | None, work: _Work) -> tuple[np.ndarray, np.uint64]:
    """The block's sort keys (value prefix | position, see ``sorting._sort_positions``) in ``work.key``,
    sorted, without the dropped positions; and the key's low (position) mask."""
    m = len(h)
    low = _low_mask(m)
    key = work.key[:m]
    np.bitwise_and(h, ~low, out=key)
    key |= work.arange[:m].view(np.uint64)
    nd = 0 if drop is None else len(drop)
    if nd:
        key[drop] = _ALL_ONES  # a position never equals the low mask, so these sort last
    key.sort()
    return key[: m - nd], low


def _sort_block(h: np.ndarray, drop: np.ndarray | None, work: _Work) -> tuple[np.ndarray, np.uint64]:
    """Like ``sorting._sort_positions`` but in ``work.key``: the positions of h sorted by value
    (then position, unless values share a key prefix: see ``_resort``), and the key's low mask."""
    key, low = _sorted_keys(h, drop, work)
    key &= low
    return key.view(np.int64), low


def _aggregate_block(s: np.ndarray, doc: np.ndarray, drop: np.ndarray | None, work: _Work,
                     occurrences: bool) -> _Block:
    """Aggregate a block's n-gram values S in occurrence form or in rows (module docstring);
    ``doc`` is the (non-decreasing) document of each position."""
    work.ensure(len(s))
    if kernels.LIB is not None:
        key, low = _sorted_keys(s, drop, work)
        return _compiled(key.view(np.int64), low, s, doc, work, occurrences)
    order, low = _sort_block(s, drop, work)
    if occurrences:
        return _occurrences(order, s[order], low, doc, work)
    return _rows(order, np.take(s, order, out=work.u1[: len(order)], mode="clip"), low, doc, work)


def _aggregate_next(prev: np.ndarray, s: np.ndarray, tok: np.ndarray, n: int, mult: int, doc: np.ndarray,
                    doc_end: np.ndarray, work: _Work, occurrences: bool) -> _Block:
    """The compiled path of ``ngrams`` for one (block, n): advance the values from n - 1 (``prev``) to n
    into ``s`` (``s`` is ``tok`` itself for n = 1), build and sort the keys, aggregate. ``doc_end``:
    the end position of each document of the block."""
    count = len(s)
    work.ensure(count)
    low = _low_mask(count)
    key = work.key[:count]
    dropped = kernels.block_keys(prev, s, tok, n, mult, doc_end, low, key)
    key.sort()
    return _compiled(key[: count - dropped].view(np.int64), low, s, doc, work, occurrences)


def _compiled(order: np.ndarray, low: np.uint64, s: np.ndarray, doc: np.ndarray, work: _Work,
              occurrences: bool) -> _Block:
    """Either form of a block in one compiled pass over its sorted keys (``order``: masked in place)."""
    k = len(order)
    out = work.out
    if occurrences:
        hs = np.empty(k, np.uint64)  # fresh: it becomes the state
        args = (hs, work.key2[:k], work.u1[:k], work.i1[:k], work.i2[:k], out)
        order = _run_sorted(kernels.block_occurrences, order, low, s, doc, args)
        return _occurrences_block(order, *args[:-1], out.tolist())
    args = (work.u1[:k], work.i1[:k], work.key2[:k], work.i2[:k], work.i3[:k], work.i4[:k], out)
    _run_sorted(kernels.block_rows, order, low, s, doc, args)
    return _rows_block(k, *args[:-1], out.tolist())


def _run_sorted(kernel, order: np.ndarray, low: np.uint64, s: np.ndarray, doc: np.ndarray, args: tuple) -> np.ndarray:
    """Run a block kernel over the sorted keys; where values sharing a key prefix interleave (the kernel
    says so and stops part way), repair the order and run it again. Returns the positions in order."""
    if not kernel(order, low, s, doc, *args):
        order.view(np.uint64)[:] &= low
        order, _ = _resort(order, s[order], low)
        kernel(order, low, s, doc, *args)
    return order


def _aggregate(s: np.ndarray, doc: np.ndarray, drop: np.ndarray | None) -> _Block:
    """Group a block's n-gram values S into rows (for tests: fresh buffers)."""
    return _aggregate_block(s, doc, drop, _Work(), occurrences=False)


def _aggregate_occurrences(s: np.ndarray, doc: np.ndarray, drop: np.ndarray | None) -> _Block:
    """A block's n-gram values S in occurrence form (for tests: fresh buffers)."""
    return _aggregate_block(s, doc, drop, _Work(), occurrences=True)


def _occurrences(order: np.ndarray, hs: np.ndarray, low, doc: np.ndarray, work: _Work) -> _Block:
    """Occurrence form. ``hs`` (the sorted values) is fresh memory: it becomes the state."""
    k = len(hs)
    if k < 2:
        return _all_single(hs, order)
    le = work.b1[: k - 1]
    np.less_equal(hs[1:], hs[:-1], out=le)  # (if sorted) position i + 1 repeats position i
    nd = int(np.count_nonzero(le))
    if not nd:
        return _all_single(hs, order)
    cand = np.compress(le, work.arange[: k - 1], out=work.i1[:nd])
    dup = np.add(cand, 1, out=work.i2[:nd])
    dv = hs[dup]
    # A decrease (two values sharing a key prefix, interleaved) shows among these pairs.
    if np.less(dv, np.take(hs, cand, out=work.u1[:nd], mode="clip"), out=work.b2[:nd]).any():
        order, hs = _resort(order, hs, low)
        cand = np.flatnonzero(hs[1:] == hs[:-1])
        nd = len(cand)
        dup = cand + 1
        dv = hs[dup]
    prev_pos = order[cand]
    dup_doc = np.take(doc, np.take(order, dup, out=work.i3[:nd], mode="clip"), out=work.d1[:nd], mode="clip")
    same_doc = np.equal(dup_doc, np.take(doc, prev_pos, out=work.d2[:nd], mode="clip"), out=work.b2[:nd])
    repeats = np.compress(same_doc, dv)
    # Values seen at least twice: one run of dv per value (dv is sorted); count = run + 1, and
    # the first occurrence is just before the run's first duplicate.
    first_dup = work.b1[:nd]
    first_dup[0] = True
    np.not_equal(dv[1:], dv[:-1], out=first_dup[1:])
    st = np.flatnonzero(first_dup)
    counts = _run_lengths(st, nd)
    counts += 1
    top = (dv[st], counts, prev_pos[st])

    def lone() -> tuple[np.ndarray, np.ndarray]:
        single = np.ones(k, bool)
        single[dup] = False
        single[cand] = False
        at = np.flatnonzero(single)
        return hs[at], order[at]

    return _Block(hs, repeats, _EMPTY_U64, _EMPTY_I64, _EMPTY_I64, top, lone, nd / k)


def _rows(order: np.ndarray, hs: np.ndarray, low, doc: np.ndarray, work: _Work) -> _Block:
    """Row form. ``hs`` may be a work buffer: everything kept is copied out of it."""
    k = len(hs)
    if not k:
        return _all_single(hs.copy(), order)
    new = work.b1[:k]
    new[0] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    # Every decrease is a change of value, so checking the run starts finds any.
    if len(starts) > 1 and np.any(hs[starts[1:]] < hs[starts[1:] - 1]):
        order, hs = _resort(order, hs, low)
        np.not_equal(hs[1:], hs[:-1], out=new[1:])
        starts = np.flatnonzero(new)
    share = 1 - len(starts) / k
    if len(starts) == k:
        return _Block(hs.copy(), _EMPTY_U64, _EMPTY_U64, _EMPTY_I64, _EMPTY_I64, _NO_TOP,
                      lambda: (hs, order), share)
    counts = _run_lengths(starts, k)
    # A position starts a (value, document) pair when its value or its document changes; doc_freq
    # is the number of such starts in the value's run.
    d = np.take(doc, order, out=work.d1[:k], mode="clip")
    pair = work.b2[:k]
    pair[0] = True
    np.not_equal(d[1:], d[:-1], out=pair[1:])
    pair |= new
    n_pairs = int(np.count_nonzero(pair))
    if n_pairs == k:
        df = counts
    else:
        pairs = np.compress(pair, work.arange[:k], out=work.i1[:n_pairs])
        df = _run_lengths(np.flatnonzero(np.take(new, pairs, out=work.b2[:n_pairs], mode="clip")), n_pairs)
    one = counts == 1
    n_one = int(np.count_nonzero(one))
    if n_one:
        single_at = starts[one]
        singles = hs[single_at]
        keep = np.flatnonzero(~one)
        same = df is counts
        starts, counts = starts[keep], counts[keep]
        df = counts if same else df[keep]

        def lone() -> tuple[np.ndarray, np.ndarray]:
            return singles, order[single_at]
    else:
        singles = _EMPTY_U64

        def lone() -> tuple[np.ndarray, np.ndarray]:
            return _EMPTY_U64, _EMPTY_I64
    multi = hs[starts]
    return _Block(singles, _EMPTY_U64, multi, counts, df, (multi, counts, order[starts]), lone, share)


def _occurrences_block(order, hs, repeats, top_v, top_c, top_first, counts: list[int]) -> _Block:
    nd, nr, nt = counts
    k = len(hs)
    if not nd:
        return _all_single(hs, order)
    top = (top_v[:nt], top_c[:nt], top_first[:nt])  # work buffers: valid until the next block

    def lone() -> tuple[np.ndarray, np.ndarray]:
        single = np.ones(k, bool)
        same = hs[1:] == hs[:-1]
        single[1:] &= ~same
        single[:-1] &= ~same
        at = np.flatnonzero(single)
        return hs[at], order[at]

    return _Block(hs, repeats[:nr].copy(), _EMPTY_U64, _EMPTY_I64, _EMPTY_I64, top, lone, nd / k)


def _rows_block(k: int, singles, single_pos, multi, count, doc_freq, first, counts: list[int]) -> _Block:
    ns, nm, differs = counts
    share = 1 - (ns + nm) / k if k else 0.0
    singles = singles[:ns].copy()  # state: fresh memory
    single_pos = single_pos[:ns]  # for lone(), valid until the next block like the buffer it lies in

    def lone() -> tuple[np.ndarray, np.ndarray]:
        return singles, single_pos

    if not nm:
        return _Block(singles, _EMPTY_U64, _EMPTY_U64, _EMPTY_I64, _EMPTY_I64, _NO_TOP, lone, share)
    multi = multi[:nm].copy()
    count = count[:nm].copy()
    doc_freq = doc_freq[:nm].copy() if differs else count
    return _Block(singles, _EMPTY_U64, multi, count, doc_freq, (multi, count, first[:nm]), lone, share)


def _blocks(offsets: np.ndarray, d0: int, d1: int, block_tokens: int):
    """Split documents [d0, d1) into runs of about ``block_tokens`` tokens (whole documents)."""
    start = d0
    while start < d1:
        end = int(np.searchsorted(offsets, offsets[start] + block_tokens, side="right")) - 1
        end = min(max(end, start + 1), d1)
        yield start, end
        start = end


class _Tails:
    """The tail positions of a block's documents for every n up to ``max_n``: position
    doc_end - j (j = 1..n-1, j <= the document's length) starts no n-gram."""

    def __init__(self, doc_end: np.ndarray, lengths: np.ndarray, max_n: int) -> None:
        j = np.arange(1, max(max_n, 2), dtype=np.int64)
        self.pos = doc_end[:, None] - j[None, :]
        self.valid = j[None, :] <= lengths[:, None]

    def positions(self, n: int, count: int) -> np.ndarray:
        if n == 1:
            return _EMPTY_I64
        pos = self.pos[:, : n - 1][self.valid[:, : n - 1]]
        return pos[pos < count]


def _sort_by_group(hashes, offsets, groups):
    """Reorder documents (and their tokens) so that each group is contiguous."""
    order = np.argsort(groups, kind="stable")
    lengths = np.diff(offsets)[order]
    new_offsets = np.zeros(len(order) + 1, np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # Old flat position of each new position: old start of its document + offset inside it.
    positions = np.arange(new_offsets[-1]) + np.repeat(offsets[:-1][order] - new_offsets[:-1], lengths)
    return hashes[positions], new_offsets, groups[order], positions
