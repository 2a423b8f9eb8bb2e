"""Sort and group primitives of the n-gram engine (numpy only, exact).

numpy sorts plain ``uint64`` arrays fast (vectorised quicksort) but ``argsort`` is several times
slower. Everything here that needs positions along with sorted values therefore sorts one
``uint64`` key per element: the value with its low b bits replaced by the element's position
(b = bit length of the element count), then recovers the position from the key and the exact
value by one gather. Two different values that agree on their top 64 - b bits (rare) can
interleave in one run of equal key prefixes; callers detect that (a decrease in the gathered
values) and ``_resort`` re-sorts just those runs exactly.

Also here: run lengths and sums over runs, k-th largest count and top-k selection (ties by
ascending hash), and the value-range cuts (``_edges``, ``_cuts``) shared by spill and finish.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

_U64 = np.uint64
_EMPTY_U64 = np.zeros(0, np.uint64)
_EMPTY_I64 = np.zeros(0, np.int64)
_ARANGE = np.arange(0, dtype=np.uint64)


def _arange_u64(m: int) -> np.ndarray:
    """0..m-1 as uint64 (a view of a cached array; do not write to it)."""
    global _ARANGE
    if len(_ARANGE) < m:
        _ARANGE = np.arange(max(m, 2 * len(_ARANGE)), dtype=np.uint64)
    return _ARANGE[:m]


def _sort_positions(h: np.ndarray, drop: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.uint64]:
    """Positions of h sorted by value (then position, except where prefixes are shared), and the
    values in that order: returns (order, hs, low) with ``hs = h[order]``. Positions in ``drop``
    are left out. ``low`` is the position mask of the sort key.

    Sorted by (value, position) unless two different values share their top 64 - b bits; then
    ``hs`` has a decrease somewhere, which callers must check for (cheaply, alongside their own
    comparisons of neighbours) and repair with ``_resort``.
    """
    m = len(h)
    bits = max(1, int(m).bit_length())
    # A position never equals the low mask (m <= mask), so dropped keys (all ones) sort last.
    low = _U64((1 << bits) - 1)
    key = np.bitwise_and(h, ~low)
    key |= _arange_u64(m)
    nd = 0 if drop is None else len(drop)
    if nd:
        key[drop] = ~_U64(0)
    key.sort()
    if nd:
        key = key[: m - nd]
    key &= low  # the key's prefix is hs & ~low again, so nothing is lost by overwriting it
    order = key.view(np.int64)
    return order, h[order], low


def _resort(order: np.ndarray, hs: np.ndarray, low: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """Repair a ``_sort_positions`` result in which values sharing a key prefix interleave.

    A decrease in ``hs`` can only occur inside a run of equal prefixes (hs & ~low), and every run
    whose values interleave has one; those runs are re-sorted exactly by (value, position). They
    are whole runs in ascending prefix order, so writing them back in place keeps the global order.
    """
    prefix = hs & ~low
    prefix_change = prefix[1:] != prefix[:-1]
    run_start = np.concatenate([[0], np.flatnonzero(prefix_change) + 1])
    run_end = np.concatenate([run_start[1:], [len(hs)]])
    bad_at = np.flatnonzero(hs[1:] < hs[:-1]) + 1
    bad_runs = np.unique(np.searchsorted(run_start, bad_at, side="right") - 1)
    rows = np.concatenate([np.arange(run_start[r], run_end[r]) for r in bad_runs])
    resorted = rows[np.lexsort((order[rows], hs[rows]))]
    order = order.copy()
    hs = hs.copy()
    order[rows] = order[resorted]
    hs[rows] = hs[resorted]
    return order, hs


def _group_sorted(h: np.ndarray, drop: np.ndarray | None = None):
    """Sort values, grouping equal ones, keeping their original positions in order.

    Returns (order, hs, new_hash, starts): ``order`` lists the positions of h sorted by (value,
    position), ``hs = h[order]``, ``new_hash[i]`` says hs[i] differs from hs[i-1] (True at 0),
    ``starts = flatnonzero(new_hash)``. Positions in ``drop`` are left out.
    """
    order, hs, low = _sort_positions(h, drop)
    k = len(hs)
    new_hash = np.empty(k, bool)
    if not k:
        return order, hs, new_hash, _EMPTY_I64
    new_hash[0] = True
    np.not_equal(hs[1:], hs[:-1], out=new_hash[1:])
    starts = np.flatnonzero(new_hash)
    # Every decrease is a change of value, so checking the run starts finds any.
    if len(starts) > 1 and np.any(hs[starts[1:]] < hs[starts[1:] - 1]):
        order, hs = _resort(order, hs, low)
        np.not_equal(hs[1:], hs[:-1], out=new_hash[1:])
        starts = np.flatnonzero(new_hash)
    return order, hs, new_hash, starts


def _run_lengths(starts: np.ndarray, k: int) -> np.ndarray:
    """Lengths of the runs that begin at ``starts`` (ascending) in an array of length k."""
    counts = np.empty(len(starts), np.int64)
    if len(starts):
        np.subtract(starts[1:], starts[:-1], out=counts[:-1])
        counts[-1] = k - starts[-1]
    return counts


def _group_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums (int64) of ``values`` over the runs that begin at ``starts``; faster than reduceat."""
    if len(starts) == len(values):
        return values.astype(np.int64)
    cs = np.cumsum(values, dtype=np.int64)
    ends = np.empty(len(starts), np.int64)
    ends[:-1] = starts[1:] - 1
    ends[-1] = len(values) - 1
    sums = cs[ends]
    sums[1:] -= cs[ends[:-1]]
    return sums


def _kth_largest(c: np.ndarray, k: int) -> int:
    """The k-th largest of non-negative integer counts (1 <= k <= len(c)).

    np.partition degrades badly on arrays that are mostly equal (most counts are 1); a histogram
    of the counts clipped at a cap, and a partition of the few above it if needed, does not.
    """
    cap = 1024
    hist = np.bincount(np.minimum(c, cap), minlength=cap + 1)
    at_least = np.cumsum(hist[::-1])[::-1]  # at_least[v] = number of counts >= v (v <= cap)
    kth = int(np.flatnonzero(at_least >= k)[-1])
    if kth < cap:
        return kth
    high = c[c >= cap]
    return int(np.partition(high, len(high) - k)[len(high) - k])


def _top_selection(c: np.ndarray, k: int, tie_hash: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Indices (any order) of the k largest counts, ties at the k-th count broken by the smallest hash.

    ``tie_hash(indices)`` gives the hashes of the tied rows only, so a caller holding pre-hash values
    finalises just those. Requires len(c) > k.
    """
    kth = _kth_largest(c, k)
    above = np.flatnonzero(c > kth)
    tied = np.flatnonzero(c == kth)
    need = k - len(above)
    if len(tied) > need:
        tied = tied[_smallest(tie_hash(tied), need)]
    return np.concatenate([above, tied])


def _top_indices(h: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest counts, ties by ascending hash, in rank order."""
    if k <= 0 or len(h) == 0:
        return _EMPTY_I64
    sel = _top_selection(c, k, lambda idx: h[idx]) if len(h) > k else np.arange(len(h))
    return sel[np.lexsort((h[sel], -c[sel]))]


def _smallest(h: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest values of uniformly spread uint64 h (any order)."""
    if k >= len(h):
        return np.arange(len(h))
    # A threshold with ~2x headroom keeps the selection to a small subset in one pass.
    limit = min((1 << 64) - 1, (2 * k + 64) * ((1 << 64) // len(h)))
    sel = np.flatnonzero(h < _U64(limit))
    if len(sel) < k:
        sel = np.arange(len(h))
    return sel[np.argpartition(h[sel], k - 1)[:k]]


def _edges(parts: int) -> np.ndarray:
    """parts - 1 values cutting the uint64 range into equal parts (values are uniform).

    For parts = 2**b the cuts are the multiples of 2**(64 - b), so the parts of a coarser power of
    two are unions of consecutive finer ones (finish reads several spill partitions as one unit).
    """
    if parts <= 1:
        return _EMPTY_U64
    return np.arange(1, parts, dtype=np.uint64) * _U64((1 << 64) // parts)


def _cuts(runs: list[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """(runs, parts + 1) positions cutting each sorted run at ``edges`` (0 and len at the ends)."""
    out = np.zeros((len(runs), len(edges) + 2), np.int64)
    for i, r in enumerate(runs):
        out[i, 1:-1] = np.searchsorted(r, edges)
        out[i, -1] = len(r)
    return out


def _concat(pieces: list[np.ndarray], dtype=np.uint64) -> np.ndarray:
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype)
