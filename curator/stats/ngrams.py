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
count, doc_freq). Those sorted partial aggregates are all that is kept between calls (no text);
for 3- and 4-grams they are about one row per occurrence, which is the main memory cost
(8 bytes per single occurrence; about 4 bytes of state per byte of English text for n = 1..4). ``finish`` merges them per group and n (doc_freq adds up
because a document lives in one block), merges all groups again for ``'*'``, and builds the
tables. Internally everything is keyed by S, not by the hash: the finaliser is a bijection, so
the counts are the same, and it then runs once per distinct n-gram instead of per occurrence.

Top-k texts. A hash cannot be turned back into text, so each batch keeps the texts of its
``text_candidates`` (default max(4 * top_k, 256)) most frequent n-grams per group and n (by
count, then ascending hash, like the final ranking, so a corpus that fits in one block never
misses one). A final top-k n-gram that made no batch's list (rare: frequent overall, never
frequent in a batch) gets a null ``ngram``; ``missing_texts()`` lists those hashes, ``fill_texts(texts)`` over
the same documents (a second pass) recovers them, and ``finish`` is then called again.
``compute_ngram_stats`` does that second pass by itself when needed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curator.errors import UsageError
from curator.stats.tokenize import GOLDEN, TokenBatch, Tokenizer, get_tokenizer, mix64

__all__ = [
    "ALL_GROUPS",
    "BUCKETS_SCHEMA",
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
# Rows per partition when merging (value, count, doc_freq) partials in finish, for the same reason.
_MERGE_ROWS = 1 << 16
# Values per partition when merging singles (plain values, no payload).
_SINGLES_ROWS = 1 << 16
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
    return mix64(s ^ _U64((n * GOLDEN) & 0xFFFFFFFFFFFFFFFF))


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


def _merge_runs(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Merge sorted (value, count, doc_freq) runs into one sorted run, summing per value."""
    runs = [r for r in runs if len(r[0])]
    if not runs:
        return _EMPTY_U64, _EMPTY_I64, _EMPTY_I64
    if len(runs) == 1:
        return runs[0]
    total = sum(len(r[0]) for r in runs)
    parts = max(1, -(-total // _MERGE_ROWS))
    if parts == 1:
        return _merge_block([r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs])
    # Runs are sorted, so cutting all of them at the same values gives independent partitions
    # that are merged one at a time in cache.
    edges = _edges(parts)
    cuts = np.stack([np.concatenate([[0], np.searchsorted(r[0], edges), [len(r[0])]]) for r in runs]).tolist()
    out_h, out_c, out_d = [], [], []
    for p in range(parts):
        hs, cs, ds = [], [], []
        for r, cut in zip(runs, cuts):
            a, b = cut[p], cut[p + 1]
            if b > a:
                hs.append(r[0][a:b])
                cs.append(r[1][a:b])
                ds.append(r[2][a:b])
        if hs:
            h, c, d = _merge_block(hs, cs, ds)
            out_h.append(h)
            out_c.append(c)
            out_d.append(d)
    return np.concatenate(out_h), np.concatenate(out_c), np.concatenate(out_d)


def _edges(parts: int) -> np.ndarray:
    """parts - 1 values cutting the uint64 range into equal parts (values are uniform)."""
    if parts <= 1:
        return _EMPTY_U64
    return np.arange(1, parts, dtype=np.uint64) * _U64((1 << 64) // parts)


def _merge_block(hs, cs, ds):
    h = np.concatenate(hs)
    order, sorted_h, _, starts = _group_sorted(h)
    c = np.concatenate(cs)[order]
    d = np.concatenate(ds)[order]
    return sorted_h[starts], _group_sums(c, starts), _group_sums(d, starts)


def _merge_partials(singles: list[np.ndarray], multis: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, count, doc_freq) of every distinct value, from one (group, n)'s partials.

    Singles carry no payload (count = doc_freq = 1), so they only need a plain value sort; the
    merged multis are then added to the distinct singles. All arrays are sorted, so cutting
    them at common values gives partitions that are merged one at a time in cache, each written
    straight into the outputs. doc_freq is the very same array as count when the two are equal
    everywhere (no n-gram repeats inside a document: most 3- and 4-grams), which saves a copy of
    the largest arrays.
    """
    mv, mc, md = _merge_runs(multis)
    same = bool(np.array_equal(mc, md))
    singles = [a for a in singles if len(a)]
    if not singles:
        return mv, mc, (mc if same else md)
    bound = sum(len(a) for a in singles) + len(mv)
    parts = max(1, -(-bound // _SINGLES_ROWS))
    edges = _edges(parts)
    cuts = np.stack([np.concatenate([[0], np.searchsorted(a, edges), [len(a)]]) for a in singles]).T.tolist()
    mcut = np.concatenate([[0], np.searchsorted(mv, edges), [len(mv)]]).tolist()
    # Outputs sized for the worst case (nothing repeats); untouched pages cost address space only.
    out_v = np.empty(bound, np.uint64)
    out_c = np.empty(bound, np.int64)
    out_d = out_c if same else np.empty(bound, np.int64)
    sizes = [sum(y - x for x, y in zip(lo, hi)) for lo, hi in zip(cuts[:-1], cuts[1:])]
    buf = np.empty(max(sizes), np.uint64)  # one concatenation buffer for every partition
    new = np.empty(len(buf), bool)
    at = 0
    for p in range(parts):
        pieces = [a[x:y] for a, x, y in zip(singles, cuts[p], cuts[p + 1]) if y > x]
        m = sum(len(x) for x in pieces)
        if m:
            v = np.concatenate(pieces, out=buf[:m]) if len(pieces) > 1 else pieces[0]
            if len(pieces) > 1:
                v.sort()
            nw = new[:m]
            nw[0] = True
            np.not_equal(v[1:], v[:-1], out=nw[1:])
            starts = np.flatnonzero(nw)
            k = len(starts)
            np.take(v, starts, out=out_v[at : at + k])
            cnt = out_c[at : at + k]
            np.subtract(starts[1:], starts[:-1], out=cnt[:-1])
            cnt[-1] = m - starts[-1]
            if not same:
                out_d[at : at + k] = cnt
        else:
            k = 0
        a, b = mcut[p], mcut[p + 1]
        at += k + _add_multis(out_v, out_c, out_d, at, k, mv[a:b], mc[a:b], md[a:b], same)
    return out_v[:at], out_c[:at], out_d[:at]


def _add_multis(out_v, out_c, out_d, at: int, k: int, mv, mc, md, same: bool) -> int:
    """Add merged multis to the k distinct singles at out[at:at+k]; returns how many rows it
    appended (multis whose value no single had)."""
    if not len(mv):
        return 0
    su = out_v[at : at + k]
    if k:
        pos = np.minimum(np.searchsorted(su, mv), k - 1)
        found = su[pos] == mv
        hit = at + pos[found]
        out_c[hit] += mc[found]
        if not same:
            out_d[hit] += md[found]
        extra = np.flatnonzero(~found)
    else:
        extra = np.arange(len(mv))
    e = len(extra)
    end = at + k
    np.take(mv, extra, out=out_v[end : end + e])
    np.take(mc, extra, out=out_c[end : end + e])
    if not same:
        np.take(md, extra, out=out_d[end : end + e])
    return e


@dataclass
class _Partials:
    singles: list = field(default_factory=list)  # sorted uint64 arrays
    multis: list = field(default_factory=list)  # (value u64 sorted, count i64, doc_freq i64)


# -- the accumulator --------------------------------------------------------------------------


class NgramAccumulator:
    """Accumulates n-gram statistics over batches; ``finish`` builds the tables.

    ``update(texts, groups)`` takes N documents and an int array of their group codes
    (0..G-1, e.g. the origin of each document); ``finish(group_names)`` names the codes.
    """

    def __init__(self, tokenizer: Tokenizer | str = "word_v1", ns: Iterable[int] = (1, 2, 3, 4),
                 buckets: int = 10_000, top_k: int = 100, sample_rate: int = 16,
                 text_candidates: int | None = None) -> None:
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
        self._partials: dict[tuple[int, int], _Partials] = {}
        self._documents = _EMPTY_I64
        self._tokens = _EMPTY_I64
        self._totals = {n: _EMPTY_I64 for n in ns}
        # Texts of candidate top n-grams: n -> {S: text} (S is the value before finalising).
        self._texts: dict[int, dict[int, str]] = {}
        # Final hash -> (n, S) of the top-k n-grams the last finish had no text for.
        self._missing: dict[int, tuple[int, int]] = {}
        # finish's merged partials, kept for a second finish after fill_texts; update drops them.
        self._merged: dict | None = None

    def state_nbytes(self) -> int:
        """Bytes held by the partial aggregates (the state that grows with the corpus)."""
        total = 0
        for part in self._partials.values():
            total += sum(a.nbytes for a in part.singles)
            total += sum(v.nbytes + c.nbytes + d.nbytes for v, c, d in part.multis)
        return total

    # -- update ---------------------------------------------------------------------------

    def update(self, texts: pa.Array | pa.ChunkedArray, groups: np.ndarray) -> None:
        """Add a batch: ``texts`` (N strings; null = empty) and ``groups`` (N int group codes)."""
        groups = self._check_groups(groups, len(texts))
        if len(groups) == 0:
            return
        self._merged = None
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
            if len(block.multi):
                part.multis.append((block.multi, block.count, block.doc_freq))
            self._block_candidates(candidates, g, n, block, t0)

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
        then ``'*'``; within an origin by n.
        """
        names = [str(x) for x in group_names]
        if len(set(names)) != len(names):
            raise UsageError(f"group_names must be distinct, got {names}")
        if ALL_GROUPS in names:
            raise UsageError(f"group name '{ALL_GROUPS}' is reserved for all groups together; rename it")
        used = np.flatnonzero(self._documents).tolist()
        if used and used[-1] >= len(names):
            raise UsageError(f"group code {used[-1]} has no name: got {len(names)} group_names {names}")
        merged = self._merged_partials(used)
        self._missing = {}
        self._emit_cache: dict = {}
        tables = {k: _Rows() for k in ("totals", "buckets", "top", "sample")}
        for g in used + [None]:
            for n in self.ns:
                if g is None:
                    counts = (int(self._documents.sum()), int(self._tokens.sum()), int(self._totals[n].sum()))
                else:
                    counts = (int(self._documents[g]), int(self._tokens[g]), int(self._totals[n][g]))
                self._emit(tables, ALL_GROUPS if g is None else names[g], n, *counts, merged[(g, n)])
        return NgramStats(
            tokenizer=self.tokenizer.name,
            totals=tables["totals"].table(TOTALS_SCHEMA),
            buckets=tables["buckets"].table(BUCKETS_SCHEMA),
            top=tables["top"].table(TOP_SCHEMA),
            sample=tables["sample"].table(SAMPLE_SCHEMA),
            missing_texts=len(self.missing_texts()),
        )

    def _merged_partials(self, used: list[int]) -> dict:
        """(value, count, doc_freq) per (group, n) and per (None = '*', n); cached until update."""
        if self._merged is not None:
            return self._merged
        merged = {}
        for n in self.ns:
            parts = {g: self._partials.get((g, n), _Partials()) for g in used}
            for g, part in parts.items():
                merged[(g, n)] = _merge_partials(part.singles, part.multis)
            if len(used) == 1:
                merged[(None, n)] = merged[(used[0], n)]
            else:
                # '*' straight from all groups' partials: one more merge of every row.
                merged[(None, n)] = _merge_partials([a for p in parts.values() for a in p.singles],
                                                    [r for p in parts.values() for r in p.multis])
        self._merged = merged
        return merged

    def _emit(self, tables, origin: str, n: int, documents: int, tokens: int, total: int, merged) -> None:
        v, c, d = merged
        tables["totals"].add(1, origin, n=[n], documents=[documents], tokens=[tokens], total=[total],
                             distinct=[len(v)], buckets=[self.buckets], sample_rate=[self.sample_rate],
                             top_k=[self.top_k])
        if not len(v):
            return
        rows = self._emit_cache.get(id(v))
        if rows is None or rows[0] is not v:
            rows = (v, *self._rows_of(n, v, c, d))
            self._emit_cache[id(v)] = rows  # '*' of a single group reuses its group's rows
        _, buckets, top, sample = rows
        tables["buckets"].add(len(buckets["bucket"]), origin, **buckets)
        tables["top"].add(len(top["rank"]), origin, **top)
        tables["sample"].add(len(sample["hash"]), origin, **sample)

    def _rows_of(self, n: int, v: np.ndarray, c: np.ndarray, d: np.ndarray):
        h = _finalise(v, n)
        hist = np.bincount((h % _U64(self.buckets)).view(np.int64), weights=c, minlength=self.buckets)
        nz = np.flatnonzero(hist)
        buckets = dict(n=np.full(len(nz), n, np.int32), bucket=nz.astype(np.int32),
                       count=np.rint(hist[nz]).astype(np.int64))
        idx = _top_indices(h, c, self.top_k)
        known = self._texts.get(n, {})
        texts = []
        for hv, sv in zip(h[idx].tolist(), v[idx].tolist()):
            text = known.get(sv)
            if text is None:
                self._missing[hv] = (n, sv)
            texts.append(text)
        top = dict(n=np.full(len(idx), n, np.int32), rank=np.arange(1, len(idx) + 1, dtype=np.int32),
                   ngram=texts, hash=h[idx], count=c[idx], doc_freq=d[idx])
        if self.sample_rate > 1:
            keep = np.flatnonzero(h < _U64((1 << 64) // self.sample_rate))
        else:
            keep = np.arange(len(h))
        keep = keep[np.argsort(h[keep])]
        sample = dict(n=np.full(len(keep), n, np.int32), hash=h[keep], count=c[keep], doc_freq=d[keep])
        return buckets, top, sample

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
    acc = NgramAccumulator(**options)
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
