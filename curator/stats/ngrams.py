"""Corpus n-gram statistics per group (origin), vectorised over batches of documents.

Definitions (tokens come from a ``curator.stats.tokenize`` tokenizer; all arithmetic mod 2**64):

- An n-gram is n consecutive tokens of one document; n-grams never cross document boundaries.
  A document of L tokens holds max(0, L - n + 1) n-gram occurrences.
- N-gram hash of the tokens t_0..t_{n-1} (their token hashes)::

      S = t_0;  S = S * NGRAM_K + t_j  for j = 1..n-1;  hash = mix64(S XOR (n * GOLDEN))

  (``NGRAM_K`` is odd with NGRAM_K - 1 = 2 mod 4; ``mix64`` and ``GOLDEN`` are those of
  ``curator.stats.tokenize``). Same n-gram, same hash, in every batch and run. Counts treat equal
  hashes as equal n-grams, i.e. they are exact up to 64-bit hash collisions.
- Per group g (and the combined group ``'*'`` = all documents of all groups) and n:
  ``documents`` (documents in g, empty ones included), ``tokens`` (sum of L), ``total`` (n-gram
  occurrences: sum of max(0, L - n + 1)), ``distinct`` (distinct n-gram hashes); per n-gram
  ``count`` (occurrences) and ``doc_freq`` (documents containing it at least once).
- ``buckets``: ``bucket = hash % buckets``; one row per non-empty bucket with the summed
  ``count`` of its n-grams (a hashed histogram of occurrences).
- ``top``: the ``top_k`` n-grams with the highest ``count``, ties broken by ascending hash;
  ``rank`` is 1-based; ``ngram`` is the n token strings joined by single spaces.
- ``sample``: every distinct n-gram with ``hash < 2**64 // sample_rate`` (all of them when
  sample_rate = 1) with its ``count`` and ``doc_freq``, ordered by hash. An n-gram is in or out of
  every group's sample alike, so joining two groups' samples estimates set overlaps (tail loss).

How it works. ``update`` tokenizes a batch, cuts it into blocks of about 64k tokens (whole
documents of one group) and, per block and n, sorts the occurrences once. N-grams seen once in the
block ("singles", most 3- and 4-grams) are kept as bare 8-byte values; the others as (value,
count, doc_freq). Those sorted partial aggregates ("runs") are all that is kept between calls (no
text); for 3- and 4-grams they are about one row per occurrence (8 bytes per single occurrence;
about 4 bytes of state per byte of English text for n = 1..4). Internally everything is keyed by
S, not by the hash: the finaliser is a bijection, so the counts are the same, and it then runs
once per distinct n-gram instead of per occurrence.

Memory. The runs in memory (``state_nbytes()``) are kept under ``memory_budget`` (default 256 MiB;
None = unlimited): after any block that takes them over it, all of them are spilled, i.e. appended
to one file in a private temporary directory (under ``spill_dir``; deleted by ``close()``, a
``with`` block or garbage collection, not by ``finish``, since ``update`` may follow). A spill
cuts every run at the same ``_SPILL_PARTS`` (64) S-value ranges (S is uniform) and writes, per
(group, n) and range, the slices of all runs back to back (gathered writes, no copy), one range
after the other: sequential writes, no merging (``finish`` sorts every range once anyway, and
merging twice would cost more than the extra bytes), and each range, or a run of consecutive
ranges, is one sequential read later. The spill file is about 4 bytes per byte of text beyond the
budget. ``finish`` never holds a merged (group, n): it takes one S range at a time (a power of two
of ranges per n, sized to about ``_UNIT_ROWS`` rows; whole spill ranges when something was
spilled), merges each group's pieces of it (slices of the runs in memory, the spilled ranges),
folds the merged rows straight into the outputs (``distinct`` += rows; the bucket histogram; a
running top-k that only rows beating its current k-th can enter; the sample rows), then merges all
groups' rows of that range for ``'*'`` (doc_freq adds up because a document lives in one block and
one group) and folds those. Every statistic is per distinct n-gram and each lives in exactly one
range, so this is exact, and the tables are identical whatever was spilled. Peak memory is thus
about the budget, plus one batch's working memory, plus during ``finish`` the merge of one range
(``_UNIT_ROWS`` rows of all groups, or 1/64 of one n's rows if more, and their temporaries: about
15 MB for 100 MB of text), plus the outputs: the sample (1/sample_rate of the distinct n-grams) is
output and grows with the corpus, and so, slowly, do the kept top-k texts (below; about 3,000 for
100 MB of text). Only the outputs are cached for a second ``finish`` after ``fill_texts``; nothing
is merged again.

Top-k texts. A hash cannot be turned back into text, so each batch keeps the texts of its
``text_candidates`` (default max(4 * top_k, 256)) most frequent n-grams per group and n (by
count, then ascending hash, like the final ranking, so a corpus that fits in one block never
misses one). A final top-k n-gram that made no batch's list (rare: frequent overall, never
frequent in a batch) gets a null ``ngram``; ``missing_texts()`` lists those hashes, ``fill_texts(texts)`` over
the same documents (a second pass) recovers them, and ``finish`` is then called again.
``compute_ngram_stats`` does that second pass by itself when needed.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from curator.errors import UsageError
from curator.stats.tokenize import GOLDEN, TokenBatch, Tokenizer, get_tokenizer, mix64

__all__ = [
    "ALL_GROUPS",
    "BUCKETS_SCHEMA",
    "DEFAULT_MEMORY_BUDGET",
    "NGRAM_K",
    "SAMPLE_SCHEMA",
    "TOP_SCHEMA",
    "TOTALS_SCHEMA",
    "NgramAccumulator",
    "NgramStats",
    "compute_ngram_stats",
    "ngram_hashes",
]

NGRAM_K = 0xD6E8FEB86659FD93
ALL_GROUPS = "*"
MAX_N = 16
MAX_GROUPS = 1 << 20  # group codes index per-group counters

TOTALS_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("documents", pa.int64()), ("tokens", pa.int64()),
    ("total", pa.int64()), ("distinct", pa.int64()), ("buckets", pa.int32()),
    ("sample_rate", pa.int32()), ("top_k", pa.int32()),
])
BUCKETS_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("bucket", pa.int32()), ("count", pa.int64()),
])
TOP_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("rank", pa.int32()), ("ngram", pa.string()),
    ("hash", pa.uint64()), ("count", pa.int64()), ("doc_freq", pa.int64()),
])
SAMPLE_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("hash", pa.uint64()), ("count", pa.int64()),
    ("doc_freq", pa.int64()),
])

_U64 = np.uint64
_K = _U64(NGRAM_K)
# Tokens per block: the sort and its gathers then stay in L2, several times faster than on a
# whole batch, while a block still dedupes most repeated 1- and 2-grams before finish.
_BLOCK_TOKENS = 1 << 16
# Value-range partitions of the spill file (a power of two): finish reads one or a few at a time,
# so its working memory is about 1/_SPILL_PARTS of the spilled state per n.
_SPILL_PARTS = 64
# Rows (all groups of one n) per value range that finish merges at once: big enough that the
# per-range Python overhead is small, small enough that the sorts stay mostly in cache.
_UNIT_ROWS = 1 << 18
# Most value ranges finish uses when nothing was spilled (any power of two works then).
_MAX_UNITS = 4096
# Bucket histograms up to this many buckets are dense arrays; larger ones are summed sparsely.
_DENSE_BUCKETS = 1 << 22
# Values per piece when finalising many hashes at once (see _finalise).
_FINALISE_ROWS = 1 << 15
DEFAULT_MEMORY_BUDGET = 256 << 20
_EMPTY_U64 = np.zeros(0, np.uint64)
_EMPTY_I64 = np.zeros(0, np.int64)


@dataclass
class NgramStats:
    """The four statistics tables of one corpus (see the module docstring for definitions)."""

    tokenizer: str
    totals: pa.Table
    buckets: pa.Table
    top: pa.Table
    sample: pa.Table
    missing_texts: int = 0

    def tables(self) -> dict[str, pa.Table]:
        return {"totals": self.totals, "buckets": self.buckets, "top": self.top, "sample": self.sample}


def ngram_hashes(token_hashes: np.ndarray, doc_offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of all n-grams of a token batch, and the flat position of each one's first token.

    Not the hot path (``update`` computes the same values blockwise); for lookups and tests.
    """
    s, pos = _ngram_values(token_hashes, doc_offsets, n)
    return _finalise(s, n), pos


def _ngram_values(token_hashes: np.ndarray, doc_offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """S (the n-gram hash before ``_finalise``) of every n-gram, and its first token's position."""
    t = np.asarray(token_hashes, dtype=np.uint64)
    count = len(t) - n + 1
    if count <= 0:
        return _EMPTY_U64, _EMPTY_I64
    s = t[:count].copy()
    for j in range(1, n):
        s *= _K
        s += t[j : j + count]
    lengths = np.diff(doc_offsets)
    # Position p starts an n-gram when the n-gram ends inside p's document.
    doc_end = np.repeat(doc_offsets[1:], lengths)[:count]
    pos = np.flatnonzero(np.arange(count) + n <= doc_end)
    return s[pos], pos


def _finalise(s: np.ndarray, n: int) -> np.ndarray:
    """hash = mix64(S XOR n * GOLDEN): a bijection of S, so grouping by S = grouping by hash."""
    h = s ^ _U64((n * GOLDEN) & 0xFFFFFFFFFFFFFFFF)
    if len(h) <= _FINALISE_ROWS:
        return mix64(h)
    # mix64 makes seven passes; in cache-sized pieces they cost about half as much.
    tmp = np.empty(_FINALISE_ROWS, np.uint64)
    for i in range(0, len(h), _FINALISE_ROWS):
        part = h[i : i + _FINALISE_ROWS]
        mix64(part, tmp[: len(part)])
    return h


# -- sorting primitives -----------------------------------------------------------------------


def _group_sorted(h: np.ndarray, drop: np.ndarray | None = None):
    """Sort values, grouping equal ones, keeping their original positions in order.

    Returns (order, hs, new_hash, starts): ``order`` lists the positions of h sorted by (value,
    position), ``hs = h[order]``, ``new_hash[i]`` says hs[i] differs from hs[i-1] (True at 0),
    ``starts = flatnonzero(new_hash)``. Positions in ``drop`` are left out.

    numpy has a fast vectorised sort for plain uint64 but a slow argsort, so the position is
    packed into the low b bits of the key: key = (value with its low b bits cleared) | position.
    Two different values that agree on their top 64 - b bits (rare) can interleave in one run of
    equal key prefixes; that is detected and those runs are re-sorted exactly.
    """
    m = len(h)
    bits = max(1, int(m).bit_length())
    # A position never equals the low mask (m <= mask), so dropped keys (all ones) sort last.
    low = _U64((1 << bits) - 1)
    key = h & ~low
    key |= _arange_u64(m)
    if drop is not None and len(drop):
        key[drop] = ~_U64(0)
    key.sort()
    if drop is not None and len(drop):
        key = key[: m - len(drop)]
    order = (key & low).view(np.int64)
    hs = h[order]
    k = len(key)
    new_hash = np.empty(k, bool)
    if k:
        new_hash[0] = True
        np.not_equal(hs[1:], hs[:-1], out=new_hash[1:])
        # If hs is non-decreasing, equal values are adjacent and each run is in position order,
        # whether or not two values shared a key prefix. A decrease means a shared prefix with
        # interleaved positions (A B A): re-sort those runs exactly.
        if k > 1 and np.any(hs[1:] < hs[:-1]):
            prefix_change = (key[1:] ^ key[:-1]) > low
            order, hs = _resort_shared_prefixes(key, low, order, hs, prefix_change)
            np.not_equal(hs[1:], hs[:-1], out=new_hash[1:])
    return order, hs, new_hash, np.flatnonzero(new_hash)


_ARANGE = np.arange(0, dtype=np.uint64)


def _arange_u64(m: int) -> np.ndarray:
    global _ARANGE
    if len(_ARANGE) < m:
        _ARANGE = np.arange(max(m, 2 * len(_ARANGE)), dtype=np.uint64)
    return _ARANGE[:m]


def _resort_shared_prefixes(key, low, order, hs, prefix_change):
    run_start = np.concatenate([[0], np.flatnonzero(prefix_change) + 1])
    run_end = np.concatenate([run_start[1:], [len(key)]])
    bad_at = np.flatnonzero((hs[1:] != hs[:-1]) & ~prefix_change) + 1
    bad_runs = np.unique(np.searchsorted(run_start, bad_at, side="right") - 1)
    rows = np.concatenate([np.arange(run_start[r], run_end[r]) for r in bad_runs])
    # Rows are whole runs in ascending key-prefix order, so sorting them by (value, position)
    # and writing them back in place keeps the global order.
    resorted = rows[np.lexsort((order[rows], hs[rows]))]
    order = order.copy()
    hs = hs.copy()
    order[rows] = order[resorted]
    hs[rows] = hs[resorted]
    return order, hs


def _run_lengths(starts: np.ndarray, k: int) -> np.ndarray:
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


def _top_indices(h: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest counts, ties by ascending hash, in rank order."""
    if k <= 0 or len(h) == 0:
        return _EMPTY_I64
    if len(h) > k:
        kth = _kth_largest(c, k)
        above = np.flatnonzero(c > kth)
        tied = np.flatnonzero(c == kth)
        need = k - len(above)
        if len(tied) > need:
            tied = tied[_smallest(h[tied], need)]
        sel = np.concatenate([above, tied])
    else:
        sel = np.arange(len(h))
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


# -- per-block aggregation --------------------------------------------------------------------


@dataclass
class _Block:
    """One block's n-grams: singles (seen once) and multis (value, count, doc_freq, first)."""

    singles: np.ndarray
    single_pos: Callable[[], np.ndarray]
    multi: np.ndarray
    count: np.ndarray
    doc_freq: np.ndarray
    first: np.ndarray


def _aggregate(s: np.ndarray, doc: np.ndarray, drop: np.ndarray | None) -> _Block:
    """Group a block's n-gram values S; ``doc`` is the (non-decreasing) document of each position.

    Within one value the positions are ascending, so an occurrence in the same document as the
    previous occurrence is a repeat, and doc_freq = count - repeats.
    """
    order, hs, new_hash, starts = _group_sorted(s, drop)
    k = len(order)
    u = len(starts)
    if u == k:
        return _Block(hs, lambda: order, _EMPTY_U64, _EMPTY_I64, _EMPTY_I64, _EMPTY_I64)
    if 2 * u > k:
        # Mostly singles (3- and 4-grams): pull the few repeated values out by index.
        single = np.empty(k, bool)
        np.logical_and(new_hash[:-1], new_hash[1:], out=single[:-1])
        single[-1] = new_hash[-1]
        at = np.flatnonzero(~single)
        mo, mh, mnew = order[at], hs[at], new_hash[at]
        singles = hs[single]

        def single_pos() -> np.ndarray:
            return order[single]
    else:
        # Mostly repeated values (1- and 2-grams): count every run, split singles off per run.
        mo, mh, mnew = order, hs, new_hash
        singles = None
    mstarts = np.flatnonzero(mnew) if singles is not None else starts
    counts = _run_lengths(mstarts, len(mo))
    d = doc[mo]
    repeat = np.empty(len(mo), bool)
    repeat[0] = False
    np.equal(d[1:], d[:-1], out=repeat[1:])
    repeat[1:] &= ~mnew[1:]
    n_repeat = int(np.count_nonzero(repeat))
    if n_repeat == 0:
        df = counts
    elif n_repeat * 8 < len(mo):
        # Few repeats (n >= 2 in ordinary text): attribute each to its run.
        run = np.searchsorted(mstarts, np.flatnonzero(repeat), side="right") - 1
        df = counts - np.bincount(run, minlength=len(mstarts))
    else:
        df = counts - _group_sums(repeat.view(np.uint8), mstarts)
    if singles is None:
        one = counts == 1
        single_runs = np.flatnonzero(one)
        keep = np.flatnonzero(~one)
        singles = hs[starts[single_runs]]

        def single_pos() -> np.ndarray:
            return order[starts[single_runs]]

        mstarts, counts, df = mstarts[keep], counts[keep], df[keep]
    return _Block(singles, single_pos, mh[mstarts], counts, df, mo[mstarts])


# -- merging partial aggregates ---------------------------------------------------------------


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


def _merge_unit(singles: list[np.ndarray], multis: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, count, doc_freq) of every distinct value of one value range, from its pieces.

    ``singles`` are uint64 arrays of values seen once per piece (count = doc_freq = 1 each),
    ``multis`` (value, count, doc_freq) arrays; a value may occur in many pieces, and pieces need
    not be sorted (a spilled partition is a concatenation of sorted slices). doc_freq adds up
    because a document lives in one block. Singles only need a plain value sort (no payload);
    the merged multis are then added to the distinct singles. Rows come out as the sorted
    distinct singles followed by the multis no single had: not globally sorted, which no
    statistic needs. doc_freq is the very array of count when the two are equal everywhere.
    """
    singles = [a for a in singles if len(a)]
    multis = [r for r in multis if len(r[0])]
    if singles:
        s = np.concatenate(singles) if len(singles) > 1 else singles[0].copy()
        s.sort()
        m = len(s)
        new = np.empty(m, bool)
        new[0] = True
        np.not_equal(s[1:], s[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        if len(starts) == m:
            sv, sc = s, np.ones(m, np.int64)
        else:
            sv, sc = s[starts], _run_lengths(starts, m)
    else:
        sv, sc = _EMPTY_U64, _EMPTY_I64
    if not multis:
        return sv, sc, sc
    mv, mc, md = _merge_multis(multis)
    if not len(sv):
        return mv, mc, md
    same = md is mc
    pos = np.searchsorted(sv, mv)
    np.minimum(pos, len(sv) - 1, out=pos)
    found = sv[pos] == mv
    hit = pos[found]  # distinct: both sides are distinct values
    sd = sc if same else sc.copy()
    sc[hit] += mc[found]
    if not same:
        sd[hit] += md[found]
    extra = np.flatnonzero(~found)
    if not len(extra):
        return sv, sc, sd
    v = np.concatenate([sv, mv[extra]])
    c = np.concatenate([sc, mc[extra]])
    return v, c, (c if same else np.concatenate([sd, md[extra]]))


def _merge_partials(singles: list[np.ndarray], multis: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, count, doc_freq) of every distinct value of one (group, n)'s partials, in memory.

    For tests and small inputs; ``finish`` merges one value range at a time (``_merge_unit``).
    """
    return _merge_unit(list(singles), list(multis))


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


@dataclass
class _Partials:
    singles: list = field(default_factory=list)  # sorted uint64 arrays
    multis: list = field(default_factory=list)  # (value u64 sorted, count i64, doc_freq i64)


@dataclass
class _Spill:
    """One spill: where each (group, n)'s value-range partitions lie in the spill file.

    ``regions[(g, n)] = (offsets, counts, rows)``: the byte offset of each partition and of the
    end (partitions + 1 entries), (singles, multis, doc_freq written: 1 or 0 = equals count) per
    partition, and the total rows. A partition's bytes are its singles (uint64), then the multis'
    values (uint64), counts (int64) and, if written, doc_freqs (int64); the partitions of one
    (group, n) follow each other, so a run of them is one read.
    """

    regions: dict[tuple[int, int], tuple[list[int], list[tuple[int, int, int]], int]]

    def rows(self, key: tuple[int, int]) -> int:
        region = self.regions.get(key)
        return 0 if region is None else region[2]

    def read(self, f, key: tuple[int, int], p0: int, p1: int, singles: list, multis: list) -> None:
        """Append the pieces of partitions [p0, p1) of ``key`` to ``singles`` and ``multis``."""
        region = self.regions.get(key)
        if region is None:
            return
        offsets, counts, _ = region
        if offsets[p1] == offsets[p0]:
            return
        buf = np.empty((offsets[p1] - offsets[p0]) // 8, np.uint64)
        _read_exact(f, buf, offsets[p0])
        at = 0
        for ns, nm, stored in counts[p0:p1]:
            if ns:
                singles.append(buf[at : at + ns])
                at += ns
            if nm:
                c = buf[at + nm : at + 2 * nm].view(np.int64)
                d = buf[at + 2 * nm : at + 3 * nm].view(np.int64) if stored else c
                multis.append((buf[at : at + nm], c, d))
                at += nm * (2 + stored)


class _Fold:
    """The outputs of one (group, n), folded in one value range after another: distinct count,
    bucket histogram, running top-k candidates, sample rows. Every statistic is per distinct
    value, and a value lives in exactly one range, so folding ranges one by one is exact."""

    def __init__(self, n: int, buckets: int, top_k: int, sample_rate: int) -> None:
        self.n = n
        self.buckets = buckets
        self.top_k = top_k
        self.limit = _U64((1 << 64) // sample_rate) if sample_rate > 1 else None
        self.distinct = 0
        # Dense float64 sums (exact below 2**53) unless the histogram itself would be large.
        self.hist = np.zeros(buckets, np.float64) if buckets <= _DENSE_BUCKETS else None
        self.sparse: list[tuple[np.ndarray, np.ndarray]] = []
        # Current top-k: hash, value, count, doc_freq, in rank order.
        self.top = (_EMPTY_U64, _EMPTY_U64, _EMPTY_I64, _EMPTY_I64)
        self.samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.bucket_ids = np.zeros(0, np.int32)
        self.bucket_counts = _EMPTY_I64
        self.sample = (_EMPTY_U64, _EMPTY_I64, _EMPTY_I64)

    def add(self, v: np.ndarray, c: np.ndarray, d: np.ndarray) -> None:
        if not len(v):
            return
        self.distinct += len(v)
        h = _finalise(v, self.n)
        bucket = (h % _U64(self.buckets)).view(np.int64)
        if self.hist is not None:
            self.hist += np.bincount(bucket, weights=c, minlength=self.buckets)
        else:
            ub, inv = np.unique(bucket, return_inverse=True)
            self.sparse.append((ub, np.bincount(inv, weights=c)))
        self._add_top(h, v, c, d)
        keep = np.flatnonzero(h < self.limit) if self.limit is not None else slice(None)
        self.samples.append((h[keep], c[keep], d[keep]))

    def _add_top(self, h, v, c, d) -> None:
        k = self.top_k
        if not k:
            return
        th, tv, tc, td = self.top
        if len(th) == k:
            # Only rows that beat the current k-th (count desc, hash asc) can enter.
            ck, hk = tc[-1], th[-1]
            sel = np.flatnonzero(c >= ck)
            if len(sel):
                sel = sel[(c[sel] > ck) | (h[sel] < hk)]
        else:
            sel = _top_indices(h, c, k)
        if not len(sel):
            return
        hh = np.concatenate([th, h[sel]])
        cc = np.concatenate([tc, c[sel]])
        idx = _top_indices(hh, cc, k)
        self.top = (hh[idx], np.concatenate([tv, v[sel]])[idx], cc[idx], np.concatenate([td, d[sel]])[idx])

    def close(self) -> None:
        """Turn the running sums into the final rows (and drop the running state)."""
        if self.hist is not None:
            nz = np.flatnonzero(self.hist)
            self.bucket_ids = nz.astype(np.int32)
            self.bucket_counts = np.rint(self.hist[nz]).astype(np.int64)
        elif self.sparse:
            ub, inv = np.unique(np.concatenate([b for b, _ in self.sparse]), return_inverse=True)
            sums = np.bincount(inv, weights=np.concatenate([s for _, s in self.sparse]))
            self.bucket_ids = ub.astype(np.int32)
            self.bucket_counts = np.rint(sums).astype(np.int64)
        self.hist = None
        self.sparse = []
        if self.samples:
            h = np.concatenate([s[0] for s in self.samples])
            order = np.argsort(h)
            self.sample = (h[order], np.concatenate([s[1] for s in self.samples])[order],
                           np.concatenate([s[2] for s in self.samples])[order])
        self.samples = []


# -- the accumulator --------------------------------------------------------------------------


class NgramAccumulator:
    """Accumulates n-gram statistics over batches; ``finish`` builds the tables.

    ``update(texts, groups)`` takes N documents and an int array of their group codes
    (0..G-1, e.g. the origin of each document); ``finish(group_names)`` names the codes.

    ``memory_budget`` (bytes, None = unlimited) bounds the partial aggregates kept in memory;
    beyond it they are spilled to a fresh directory under ``spill_dir`` (default: the system
    temporary directory). ``close()`` (or leaving a ``with`` block, or garbage collection)
    deletes that directory; ``finish`` keeps it, since ``update`` may still follow.
    """

    def __init__(self, tokenizer: Tokenizer | str = "word_v1", ns: Iterable[int] = (1, 2, 3, 4),
                 buckets: int = 10_000, top_k: int = 100, sample_rate: int = 16,
                 text_candidates: int | None = None, memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
                 spill_dir: str | Path | None = None) -> None:
        self.tokenizer = get_tokenizer(tokenizer)
        ns = tuple(sorted({int(n) for n in ns}))
        if not ns or ns[0] < 1 or ns[-1] > MAX_N:
            raise UsageError(f"ns must be n-gram sizes between 1 and {MAX_N}, got {ns}")
        if not 1 <= int(buckets) <= 2**31 - 1:
            raise UsageError(f"buckets must be between 1 and 2**31-1, got {buckets}")
        if int(top_k) < 0:
            raise UsageError(f"top_k must be >= 0, got {top_k}")
        if int(sample_rate) < 1:
            raise UsageError(f"sample_rate must be >= 1, got {sample_rate}")
        self.ns = ns
        self.buckets = int(buckets)
        self.top_k = int(top_k)
        self.sample_rate = int(sample_rate)
        self.text_candidates = max(4 * self.top_k, 256) if text_candidates is None else int(text_candidates)
        if self.text_candidates < 1:
            raise UsageError(f"text_candidates must be >= 1, got {text_candidates}")
        if memory_budget is not None and int(memory_budget) < 0:
            raise UsageError(f"memory_budget must be >= 0 bytes (or None), got {memory_budget}")
        self.memory_budget = None if memory_budget is None else int(memory_budget)
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        self._partials: dict[tuple[int, int], _Partials] = {}
        self._state_bytes = 0  # bytes of self._partials, kept up to date by _add_block and _spill
        self._documents = _EMPTY_I64
        self._tokens = _EMPTY_I64
        self._totals = {n: _EMPTY_I64 for n in ns}
        # Texts of candidate top n-grams: n -> {S: text} (S is the value before finalising).
        self._texts: dict[int, dict[int, str]] = {}
        # Final hash -> (n, S) of the top-k n-grams the last finish had no text for.
        self._missing: dict[int, tuple[int, int]] = {}
        # finish's folded outputs per (group or None = '*', n), kept for a second finish after
        # fill_texts (only the texts are resolved again); update drops them.
        self._result: dict[tuple[int | None, int], _Fold] | None = None
        # Spilled partials: one file, appended to by every spill; created at the first spill.
        self._spills: list[_Spill] = []
        self._spill_file: Path | None = None
        self._spill_bytes = 0
        self._cleanup: weakref.finalize | None = None
        self._closed = False
        # Fixed for the accumulator's life: every spill cuts alike. A power of two, so that finish
        # can read runs of consecutive partitions as one value range (see _edges).
        self._parts = _SPILL_PARTS
        if self._parts < 1 or self._parts & (self._parts - 1):
            raise UsageError(f"_SPILL_PARTS must be a power of two, got {self._parts}")

    def state_nbytes(self) -> int:
        """Bytes of partial aggregates held in memory (at most about ``memory_budget``)."""
        return self._state_bytes

    def spilled_nbytes(self) -> int:
        """Bytes of partial aggregates written to the spill file so far."""
        return self._spill_bytes

    def close(self) -> None:
        """Delete the spill directory and drop the partial aggregates. Afterwards ``finish``
        only returns the last result again (with texts ``fill_texts`` found since); ``update``
        raises."""
        if self._cleanup is not None:
            self._cleanup()
        self._spills = []
        self._partials = {}
        self._state_bytes = 0
        self._closed = True

    def __enter__(self) -> NgramAccumulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- update ---------------------------------------------------------------------------

    def update(self, texts: pa.Array | pa.ChunkedArray, groups: np.ndarray) -> None:
        """Add a batch: ``texts`` (N strings; null = empty) and ``groups`` (N int group codes)."""
        if self._closed:
            raise UsageError("this NgramAccumulator is closed; start a new one")
        groups = self._check_groups(groups, len(texts))
        if len(groups) == 0:
            return
        self._result = None
        self._add(self.tokenizer.encode(texts), groups)

    @staticmethod
    def _check_groups(groups, n_docs: int) -> np.ndarray:
        groups = np.asarray(groups)
        if groups.ndim != 1 or len(groups) != n_docs:
            raise UsageError(f"groups must be a 1-d array with one code per document: expected {n_docs}, "
                             f"got shape {groups.shape}")
        if len(groups) and groups.dtype.kind not in "iu":
            raise UsageError(f"groups must be integer codes, got dtype {groups.dtype}")
        groups = groups.astype(np.int64, copy=False)
        if len(groups) and (groups.min() < 0 or groups.max() >= MAX_GROUPS):
            bad = int(groups.min()) if groups.min() < 0 else int(groups.max())
            raise UsageError(f"groups must be codes 0..G-1 with G <= {MAX_GROUPS}, got {bad}")
        return groups

    def _grow(self, size: int) -> None:
        if size <= len(self._documents):
            return
        pad = np.zeros(size - len(self._documents), np.int64)
        self._documents = np.concatenate([self._documents, pad])
        self._tokens = np.concatenate([self._tokens, pad])
        for n in self.ns:
            self._totals[n] = np.concatenate([self._totals[n], pad])

    def _add(self, batch: TokenBatch, groups: np.ndarray) -> None:
        offsets = batch.doc_offsets
        lengths = np.diff(offsets)
        self._grow(int(groups.max()) + 1)
        size = len(self._documents)
        self._documents += np.bincount(groups, minlength=size)
        self._tokens += _int_bincount(groups, lengths, size)
        for n in self.ns:
            self._totals[n] += _int_bincount(groups, np.maximum(lengths - n + 1, 0), size)

        hashes = batch.hashes
        positions = None
        if np.any(groups[1:] != groups[:-1]):
            hashes, offsets, groups, positions = _sort_by_group(hashes, offsets, groups)
        # (group, n) -> list of (S, count, first position) text candidates of this batch's blocks.
        candidates: dict[tuple[int, int], list] = {}
        change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
        bounds = np.concatenate([[0], change, [len(groups)]]).tolist()
        for d0, d1 in zip(bounds[:-1], bounds[1:]):
            g = int(groups[d0])
            for b0, b1 in _blocks(offsets, d0, d1):
                self._add_block(hashes, offsets, b0, b1, g, candidates)
        self._keep_texts(batch, candidates, positions)

    def _add_block(self, hashes, offsets, d0: int, d1: int, g: int, candidates) -> None:
        t0, t1 = int(offsets[d0]), int(offsets[d1])
        m = t1 - t0
        if m == 0:
            return
        tok = hashes[t0:t1]
        lengths = np.diff(offsets[d0 : d1 + 1])
        doc = np.repeat(np.arange(d1 - d0, dtype=np.int32), lengths)
        doc_end = offsets[d0 + 1 : d1 + 1] - t0
        s = tok.copy()
        for n in range(1, self.ns[-1] + 1):
            count = m - n + 1
            if count <= 0:
                break
            if n > 1:
                # S_n(p) = S_{n-1}(p) * K + t_{p+n-1}; the last position drops out each round.
                s = s[:count]
                s *= _K
                s += tok[n - 1 :]
            if n not in self.ns:
                continue
            block = _aggregate(s, doc, _tail_positions(doc_end, lengths, n, count))
            part = self._partials.setdefault((g, n), _Partials())
            if len(block.singles):
                part.singles.append(block.singles)
                self._state_bytes += block.singles.nbytes
            if len(block.multi):
                part.multis.append((block.multi, block.count, block.doc_freq))
                self._state_bytes += block.multi.nbytes + block.count.nbytes
                if block.doc_freq is not block.count:
                    self._state_bytes += block.doc_freq.nbytes
            self._block_candidates(candidates, g, n, block, t0)
        # Checked per block, so the state never exceeds the budget by more than one block's.
        if self.memory_budget is not None and self._state_bytes > self.memory_budget:
            self._spill()

    # -- spill ----------------------------------------------------------------------------

    def _spill_path(self) -> Path:
        if self._spill_file is None:
            if self.spill_dir is not None:
                self.spill_dir.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix="curator-ngrams-", dir=self.spill_dir))
            # Deletes the directory on close(), garbage collection or interpreter exit; holds no
            # reference to self.
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(path), True)
            self._spill_file = path / "partials.bin"
        return self._spill_file

    def _spill(self) -> None:
        """Append all in-memory partials to the spill file, cut into ``_parts`` value ranges.

        Per (group, n) and range, the slices of all sorted runs are written back to back (one
        gathered write per range, no copy into a contiguous buffer first), one range after the
        other, so finish reads a range (or a run of ranges) in one sequential read. The slices are
        not merged here: finish sorts every range once anyway, and merging twice would cost more
        than the extra bytes.
        """
        parts = self._parts
        edges = _edges(parts)
        regions: dict[tuple[int, int], tuple] = {}
        at = self._spill_bytes
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        fd = os.open(self._spill_path(), flags, 0o600)
        try:
            for key, part in self._partials.items():
                singles, multis = part.singles, part.multis
                # doc_freq is not written when it is count itself in every run (see _aggregate).
                stored = 0 if all(r[2] is r[1] for r in multis) else 1
                arrays = [memoryview(a) for a in singles]
                scut = _cuts(singles, edges)
                mcut = _cuts([r[0] for r in multis], edges)
                for j in range(2 + stored):
                    arrays += [memoryview(r[j]) for r in multis]
                cuts = np.concatenate([scut] + [mcut] * (2 + stored)).tolist()
                sizes = np.diff(scut, axis=1).sum(axis=0), np.diff(mcut, axis=1).sum(axis=0)
                words = sizes[0] + sizes[1] * (2 + stored)
                offsets = (at + 8 * np.concatenate([[0], np.cumsum(words)])).tolist()
                counts = [(x, y, stored) for x, y in zip(sizes[0].tolist(), sizes[1].tolist())]
                for p in range(parts):
                    _write_all(fd, [a[c[p] : c[p + 1]] for a, c in zip(arrays, cuts) if c[p + 1] > c[p]])
                at = offsets[-1]
                regions[key] = (offsets, counts, int(sizes[0].sum() + sizes[1].sum()))
        finally:
            os.close(fd)
        self._spill_bytes = at
        self._spills.append(_Spill(regions))
        self._partials = {}
        self._state_bytes = 0

    def _block_candidates(self, candidates, g: int, n: int, block: _Block, t0: int) -> None:
        """This block's ``text_candidates`` best n-grams by (count desc, hash asc)."""
        k = self.text_candidates
        v, c, first = block.multi, block.count, block.first
        if len(v) > k:
            # Only rows at or above the k-th largest count can qualify; finalise just those.
            keep = np.flatnonzero(c >= _kth_largest(c, k))
            v, c, first = v[keep], c[keep], first[keep]
            sel = _top_indices(_finalise(v, n), c, k)
            v, c, first = v[sel], c[sel], first[sel]
        elif len(v) < k and len(block.singles):
            # Too few repeated n-grams: fill up with singles of smallest hash (the tie rule).
            sel = _smallest(_finalise(block.singles, n), k - len(v))
            v = np.concatenate([v, block.singles[sel]])
            c = np.concatenate([c, np.ones(len(sel), np.int64)])
            first = np.concatenate([first, block.single_pos()[sel]])
        candidates.setdefault((g, n), []).append((v, c, first + t0))

    def _keep_texts(self, batch: TokenBatch, candidates, positions) -> None:
        """Remember the texts of this batch's best n-grams per group and n."""
        want_s, want_pos, want_n = [], [], []
        for (_, n), parts in candidates.items():
            v = np.concatenate([p[0] for p in parts])
            c = np.concatenate([p[1] for p in parts])
            first = np.concatenate([p[2] for p in parts])
            order, vs, _, starts = _group_sorted(v)
            sums = _group_sums(c[order], starts)
            vs = vs[starts]
            first = first[order][starts]
            top = _top_indices(_finalise(vs, n), sums, self.text_candidates)
            known = self._texts.setdefault(n, {})
            new = [i for i, x in zip(top.tolist(), vs[top].tolist()) if x not in known]
            if new:
                want_s.append(vs[new])
                want_pos.append(first[new])
                want_n.append(np.full(len(new), n))
        if want_s:
            self._store_texts(batch, np.concatenate(want_s), np.concatenate(want_pos),
                              np.concatenate(want_n), positions)

    def _store_texts(self, batch: TokenBatch, values, pos, ns, positions) -> None:
        if positions is not None:
            pos = positions[pos]  # back to the batch's own token order
        width = int(ns.max())
        flat = pos[:, None] + np.arange(width)[None, :]
        words = batch.strings(flat[np.arange(width)[None, :] < ns[:, None]])
        at = 0
        for v, n in zip(values.tolist(), ns.tolist()):
            self._texts.setdefault(n, {})[v] = " ".join(words[at : at + n])
            at += n

    # -- finish ---------------------------------------------------------------------------

    def finish(self, group_names: list[str]) -> NgramStats:
        """Merge everything into the four tables; may be called again (after ``fill_texts``).

        Rows come per origin in ``group_names`` order (groups without documents are left out),
        then ``'*'``; within an origin by n. A second call without ``update`` in between only
        resolves the top-k texts again (the merged statistics are kept, not recomputed).
        """
        names = [str(x) for x in group_names]
        if len(set(names)) != len(names):
            raise UsageError(f"group_names must be distinct, got {names}")
        if ALL_GROUPS in names:
            raise UsageError(f"group name '{ALL_GROUPS}' is reserved for all groups together; rename it")
        used = np.flatnonzero(self._documents).tolist()
        if used and used[-1] >= len(names):
            raise UsageError(f"group code {used[-1]} has no name: got {len(names)} group_names {names}")
        if self._result is None:
            if self._closed:
                raise UsageError("this NgramAccumulator is closed and has no result to return; finish before close")
            self._result = self._fold_all(used)
        self._missing = {}
        tables = {k: _Rows() for k in ("totals", "buckets", "top", "sample")}
        for g in used + [None]:
            for n in self.ns:
                if g is None:
                    counts = (int(self._documents.sum()), int(self._tokens.sum()), int(self._totals[n].sum()))
                else:
                    counts = (int(self._documents[g]), int(self._tokens[g]), int(self._totals[n][g]))
                self._emit(tables, ALL_GROUPS if g is None else names[g], n, *counts, self._result[(g, n)])
        return NgramStats(
            tokenizer=self.tokenizer.name,
            totals=tables["totals"].table(TOTALS_SCHEMA),
            buckets=tables["buckets"].table(BUCKETS_SCHEMA),
            top=tables["top"].table(TOP_SCHEMA),
            sample=tables["sample"].table(SAMPLE_SCHEMA),
            missing_texts=len(self.missing_texts()),
        )

    def _fold_all(self, used: list[int]) -> dict[tuple[int | None, int], _Fold]:
        """Merge the partials one value range at a time and fold each range into the outputs.

        Per n, the value range is cut into ``units`` ranges (a power of two; when something was
        spilled, at most the spill's partitions, so that a range is whole spill partitions). For
        each range, every group's pieces (slices of the in-memory runs, partitions read from the
        spill file) are merged and folded into that group's outputs; the merged rows of all
        groups are then merged again for '*'. Nothing bigger than one range is ever held.
        """
        out: dict[tuple[int | None, int], _Fold] = {}
        f = open(self._spill_file, "rb", buffering=0) if self._spills else None
        try:
            for n in self.ns:
                folds = {g: _Fold(n, self.buckets, self.top_k, self.sample_rate) for g in used}
                star = _Fold(n, self.buckets, self.top_k, self.sample_rate) if len(used) > 1 else None
                rows = 0
                for g in used:
                    part = self._partials.get((g, n))
                    if part is not None:
                        rows += sum(len(a) for a in part.singles) + sum(len(r[0]) for r in part.multis)
                    rows += sum(spill.rows((g, n)) for spill in self._spills)
                most = self._parts if self._spills else _MAX_UNITS
                units = 1 << min(most.bit_length() - 1, (max(1, -(-rows // _UNIT_ROWS)) - 1).bit_length())
                edges = _edges(units)
                step = self._parts // units
                memory = {}
                for g in used:
                    part = self._partials.get((g, n))
                    if part is not None:
                        memory[g] = (part, _cuts(part.singles, edges).tolist(),
                                     _cuts([r[0] for r in part.multis], edges).tolist())
                for u in range(units):
                    merged = []
                    for g in used:
                        singles: list[np.ndarray] = []
                        multis: list[tuple] = []
                        if g in memory:
                            part, scut, mcut = memory[g]
                            singles += [a[c[u] : c[u + 1]] for a, c in zip(part.singles, scut)]
                            for r, c in zip(part.multis, mcut):
                                x, y = c[u], c[u + 1]
                                multis.append((r[0][x:y], r[1][x:y], r[2][x:y]))
                        for spill in self._spills:
                            spill.read(f, (g, n), u * step, (u + 1) * step, singles, multis)
                        rows_u = _merge_unit(singles, multis)
                        del singles, multis
                        folds[g].add(*rows_u)
                        if star is not None:
                            merged.append(rows_u)
                    if star is not None:
                        star.add(*_merge_groups(merged))
                for g, fold in folds.items():
                    fold.close()
                    out[(g, n)] = fold
                if star is not None:
                    star.close()
                out[(None, n)] = star if star is not None else (folds[used[0]] if used else
                                                                 _Fold(n, self.buckets, self.top_k, self.sample_rate))
        finally:
            if f is not None:
                f.close()
        return out

    def _emit(self, tables, origin: str, n: int, documents: int, tokens: int, total: int, fold: _Fold) -> None:
        tables["totals"].add(1, origin, n=[n], documents=[documents], tokens=[tokens], total=[total],
                             distinct=[fold.distinct], buckets=[self.buckets], sample_rate=[self.sample_rate],
                             top_k=[self.top_k])
        if not fold.distinct:
            return
        nb = len(fold.bucket_ids)
        tables["buckets"].add(nb, origin, n=np.full(nb, n, np.int32), bucket=fold.bucket_ids,
                              count=fold.bucket_counts)
        th, tv, tc, td = fold.top
        known = self._texts.get(n, {})
        texts = []
        for hv, sv in zip(th.tolist(), tv.tolist()):
            text = known.get(sv)
            if text is None:
                self._missing[hv] = (n, sv)
            texts.append(text)
        tables["top"].add(len(th), origin, n=np.full(len(th), n, np.int32),
                          rank=np.arange(1, len(th) + 1, dtype=np.int32), ngram=texts, hash=th, count=tc,
                          doc_freq=td)
        sh, sc, sd = fold.sample
        tables["sample"].add(len(sh), origin, n=np.full(len(sh), n, np.int32), hash=sh, count=sc, doc_freq=sd)

    # -- second pass for rare missing texts -------------------------------------------------

    def missing_texts(self) -> set[int]:
        """Hashes of top-k n-grams the last ``finish`` had no text for (normally empty)."""
        return {hv for hv, (n, v) in self._missing.items() if v not in self._texts.get(n, {})}

    def fill_texts(self, texts: pa.Array | pa.ChunkedArray, groups: np.ndarray | None = None) -> int:
        """Find missing top-k texts in a batch of the same documents; returns how many it found.

        Call it over the corpus (or until ``missing_texts()`` is empty), then ``finish`` again.
        ``groups`` is accepted for symmetry with ``update`` and only checked: a text does not
        depend on the group it was found in.
        """
        if groups is not None:
            self._check_groups(groups, len(texts))
        want: dict[int, list[int]] = {}
        for n, v in self._missing.values():
            if v not in self._texts.get(n, {}):
                want.setdefault(n, []).append(v)
        if not want:
            return 0
        batch = self.tokenizer.encode(texts)
        found = 0
        for n, values in want.items():
            sv, pos = _ngram_values(batch.hashes, batch.doc_offsets, n)
            hit = np.flatnonzero(np.isin(sv, np.array(values, dtype=np.uint64)))
            if len(hit):
                uv, first = np.unique(sv[hit], return_index=True)
                self._store_texts(batch, uv, pos[hit[first]], np.full(len(uv), n), None)
                found += len(uv)
        return found


def compute_ngram_stats(batches: Callable[[], Iterable[tuple[pa.Array | pa.ChunkedArray, np.ndarray]]],
                        group_names: list[str], **options) -> NgramStats:
    """Statistics of ``batches()`` (an iterable of (texts, groups)), including the rare second
    pass for missing top-k texts (``batches`` is then called again). ``options`` go to
    ``NgramAccumulator``."""
    with NgramAccumulator(**options) as acc:
        for texts, groups in batches():
            acc.update(texts, groups)
        stats = acc.finish(group_names)
        if stats.missing_texts:
            for texts, groups in batches():
                acc.fill_texts(texts, groups)
                if not acc.missing_texts():
                    break
            stats = acc.finish(group_names)
    return stats


# -- helpers ----------------------------------------------------------------------------------


class _Rows:
    """Column-wise row collector: per column a list of parts, one conversion at the end."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {}

    def add(self, rows: int, origin: str, **cols) -> None:
        if not rows:
            return
        self.cols.setdefault("origin", []).append(pa.repeat(pa.scalar(origin, pa.string()), rows))
        for k, v in cols.items():
            self.cols.setdefault(k, []).append(v)

    def table(self, schema: pa.Schema) -> pa.Table:
        arrays = []
        for f in schema:
            chunks = [p if isinstance(p, pa.Array) else pa.array(p, type=f.type) for p in self.cols.get(f.name, [])]
            arrays.append(pa.concat_arrays(chunks) if chunks else pa.array([], type=f.type))
        return pa.Table.from_arrays(arrays, schema=schema)


def _write_all(fd: int, buffers: list) -> None:
    """Write ``buffers`` one after another: gathered writes (at most 512 buffers per call) where
    the platform has them, so the slices need no copy into one buffer first."""
    for i in range(0, len(buffers), 512):
        chunk = buffers[i : i + 512]
        done = os.writev(fd, chunk) if hasattr(os, "writev") else 0
        if done < sum(b.nbytes for b in chunk):  # no writev, or a short write (rare): plainly
            rest = memoryview(b"".join(chunk))[done:]
            while len(rest):
                rest = rest[os.write(fd, rest) :]


def _read_exact(f, buf: np.ndarray, offset: int) -> None:
    """Fill ``buf`` from the (unbuffered) file ``f`` at ``offset``, straight into its memory."""
    view = memoryview(buf).cast("B")
    f.seek(offset)
    done = 0
    while done < len(view):
        k = f.readinto(view[done:])
        if not k:
            raise OSError(f"spill file {f.name} ended early: wanted {len(view)} bytes at {offset}, got {done}")
        done += k


def _int_bincount(groups: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    # float64 weights are exact below 2**53 per batch, far above any batch's token count.
    return np.rint(np.bincount(groups, weights=weights, minlength=size)).astype(np.int64)


def _sort_by_group(hashes, offsets, groups):
    """Reorder documents (and their tokens) so that each group is contiguous."""
    order = np.argsort(groups, kind="stable")
    lengths = np.diff(offsets)[order]
    new_offsets = np.zeros(len(order) + 1, np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # Old flat position of each new position: old start of its document + offset inside it.
    positions = np.arange(new_offsets[-1]) + np.repeat(offsets[:-1][order] - new_offsets[:-1], lengths)
    return hashes[positions], new_offsets, groups[order], positions


def _blocks(offsets: np.ndarray, d0: int, d1: int):
    """Split documents [d0, d1) into runs of about _BLOCK_TOKENS tokens (whole documents)."""
    start = d0
    while start < d1:
        end = int(np.searchsorted(offsets, offsets[start] + _BLOCK_TOKENS, side="right")) - 1
        end = min(max(end, start + 1), d1)
        yield start, end
        start = end


def _tail_positions(doc_end: np.ndarray, lengths: np.ndarray, n: int, count: int) -> np.ndarray:
    """Block positions p < count whose n-gram would run past the end of p's document."""
    if n == 1:
        return _EMPTY_I64
    k = np.minimum(lengths, n - 1)  # a document shorter than n drops all its positions
    total = int(k.sum())
    pos = np.repeat(doc_end - k, k) + (np.arange(total) - np.repeat(np.cumsum(k) - k, k))
    return pos[pos < count]
