r"""MinHash LSH near-duplicate detection, vectorised with numpy over all documents of a batch.

Three pure functions, each a stage a caller can store or recompute:

``signatures(texts, config)``  -> uint64 (n, num_perm)
    The MinHash of each document's set of word n-gram shingles.
``band_keys(signatures, config)`` -> uint64 (n, bands)
    One 64-bit key per LSH band of ``rows`` signature values; two documents are candidates when they
    share the key of at least one band.
``duplicate_of(keys_new, keys_old=None)`` -> int64 (n,)
    Clusters (connected components of "shares a band key") and, for each new row, the row it
    duplicates: -1 (none), an earlier new row, or ``-(2 + j)`` for old row j.

Definitions (bit for bit; hashes are stored and compared across runs, so they never depend on a
library's own hash function or random generator)
----------------------------------------------------------------------------------------------
All arithmetic is modulo 2**64; ``mix64`` is the splitmix64 finaliser and ``GOLDEN``, ``WORD_SEED``
are the constants of ``curator.stats.tokenize``.

Words (``tokenizer``):
    ``"whitespace"``: the pieces of Python's ``text.split()`` exactly as written (case and
    punctuation kept; ``curator.scorers.textbuf.whitespace_words``). ``"word_v1"`` (default): curator's word
    tokens (lowercased runs of Unicode letters, marks and digits; ``curator.stats.tokenize``).
    Null texts are empty documents.
Word hash:
    the ``word_v1`` token hash of ``tokenize`` applied to the word's UTF-8 bytes b (length L):
    ``s = WORD_SEED + L * GOLDEN``, then ``s = mix64(s XOR w_k)`` for each little-endian 8-byte word
    w_k of b (the last one zero-padded). For ``word_v1`` these are the tokenizer's own hashes; for
    ``whitespace`` the bytes are not lowercased.
Shingles:
    the word n-grams t_j..t_{j+n-1}, j = 0..L-n, of a document of L >= n words (n = ``ngram``); a
    document of 1 <= L < n words has one shingle of all its L words, so short texts still get a
    signature (and two equal short texts the same one); an empty document (no words) has none.
    Shingles form a set: a repeated n-gram counts once (the minimum does not see repeats).
Shingle hash:
    ``x = mix64(m * GOLDEN + sum_k t_k * C_k)`` over the shingle's m words, with
    ``C_k = mix64(SHINGLE_SEED + (k + 1) * GOLDEN) | 1`` (odd, so each word's hash enters through a
    bijection). The sum is position-weighted: reordered words give another shingle.
Permutations (``num_perm`` of them, i = 0..num_perm-1):
    ``h_i(x) = a_i * x + b_i``, with ``a_i = r_{2i} | 1`` and ``b_i = r_{2i+1}`` where
    ``r_k = mix64(s0 + (k + 1) * GOLDEN)``, ``s0 = PERM_SEED XOR seed`` (the splitmix64 stream of s0).
    This is the multiply-add family modulo 2**64: with an odd a_i each h_i is a bijection of 64-bit
    values (no two shingles of a document collide), and since x is already a well-mixed hash the
    order of the h_i values, decided by their high bits, behaves like a random permutation. Why not
    datatrove's ``(a * x + b) mod (2**61 - 1)``: numpy has no 128-bit product, so datatrove's product
    already wraps modulo 2**64 before its modulo, and a vectorised uint64 modulo costs several times
    the multiply-add; the minimum over the 64-bit values estimates Jaccard similarity as well
    (``tests/dedup/test_minhash.py`` checks the estimates against exact Jaccard).
Signature:
    ``sig[d, i] = min over the shingles x of d of h_i(x)``. An empty document gets the fixed all-max
    signature (every value 2**64 - 1), which no document with a shingle has in practice: empty
    documents are then duplicates of one another (the Jaccard similarity of two empty sets is taken
    as 1) and of nothing else.
Band keys (``bands`` bands of ``rows`` values, band q = values q*rows .. q*rows + rows - 1):
    ``s = BAND_SEED + (q + 1) * GOLDEN``, then ``s = mix64(s XOR v)`` for each value v of the band, in
    order. The band index is part of the key, so equal values in different bands never match.

Defaults follow datatrove's ``MinhashConfig`` (0.10.1): 5-word shingles, 14 bands of 8 rows (112
permutations), seed 1. Two documents of Jaccard similarity s become candidates with probability
``1 - (1 - s**8)**14``: 0.05 at s = 0.5, 0.27 at 0.6, 0.64 at 0.7, 0.92 at 0.8, 0.999 at 0.9 (the
S-curve's midpoint is near (1/14)**(1/8) = 0.72). datatrove also normalises text first (lowercase,
punctuation removed, digits replaced by 0, diacritics stripped); ``word_v1`` is the nearest curator
choice (lowercase, punctuation dropped), ``whitespace`` keeps the text as written.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curator.errors import UsageError
from curator.scorers.textbuf import TextBuffer, whitespace_words
from curator.stats.tokenize import GOLDEN, WORD_SEED, get_tokenizer, mix64

__all__ = [
    "BAND_SEED",
    "EMPTY",
    "PERM_SEED",
    "SHINGLE_SEED",
    "TOKENIZERS",
    "MinHashConfig",
    "band_keys",
    "duplicate_of",
    "jaccard",
    "permutations",
    "shingle_hashes",
    "signatures",
]

# More hexadecimal digits of pi (tokenize.py took the first two 64-bit words for its seeds), so
# word, shingle, permutation and band hashes differ by construction.
SHINGLE_SEED = 0xA4093822299F31D0
PERM_SEED = 0x082EFA98EC4E6C89
BAND_SEED = 0x452821E638D01377
EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # every value of an empty document's signature
TOKENIZERS = ("whitespace", "word_v1")

_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_MASK64], np.uint64)
# Text per slice. Every per-word and per-shingle pass streams whole arrays through memory; slices of
# about 0.5 MB keep those arrays (about 90k words) in L2 cache, which made signatures 1.7x faster
# than 16 MB slices on the benchmark corpus; smaller slices pay more per-slice overhead.
_SLICE_BYTES = 512 << 10
# Permutations x shingles per block of the MinHash loop: 14 x 8192 x 8 bytes = 0.9 MiB, so the
# block stays in L2 cache between the multiply, the add and the minimum (measured best among
# 4..112 permutations x 4k..32k shingles).
_BLOCK_SHINGLES = 8192
_BLOCK_PERMS = 14
_SCALAR_WORDS = 4  # long words left when the word-hash rounds switch to Python ints


@dataclass(frozen=True)
class MinHashConfig:
    """MinHash LSH parameters (module docstring). Defaults match datatrove's ``MinhashConfig``:
    ``n_grams=5``, ``num_buckets=14``, ``hashes_per_bucket=8``, ``seed=1``."""

    ngram: int = 5
    num_perm: int = 112
    bands: int = 14
    rows: int = 8
    seed: int = 1
    # word_v1 (lower-case runs of letters, marks and digits) by default: like datatrove's own shingle
    # normalisation (lower-case, punctuation dropped) it ignores case and punctuation edits, and on planted
    # near-duplicates it gave higher recall and precision than whitespace words at the same speed
    # (benchmarks/RESULTS.md).
    tokenizer: str = "word_v1"

    def __post_init__(self) -> None:
        for name in ("ngram", "num_perm", "bands", "rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"minhash {name} must be a positive integer, got {value!r}")
        if self.bands * self.rows != self.num_perm:
            raise UsageError(f"minhash bands * rows must equal num_perm: expected {self.num_perm}, "
                             f"got {self.bands} * {self.rows} = {self.bands * self.rows}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= _MASK64:
            raise UsageError(f"minhash seed must be an integer in [0, 2**64), got {self.seed!r}")
        if self.tokenizer not in TOKENIZERS:
            raise UsageError(f"unknown minhash tokenizer {self.tokenizer!r}; valid choices: {', '.join(TOKENIZERS)}")

    def candidate_probability(self, similarity: float) -> float:
        """Probability that two documents of this Jaccard similarity share a band key."""
        return 1.0 - (1.0 - similarity ** self.rows) ** self.bands


def _splitmix(state: int, count: int) -> np.ndarray:
    """The first ``count`` outputs of splitmix64 from ``state``: mix64(state + (k + 1) * GOLDEN)."""
    k = np.arange(1, count + 1, dtype=np.uint64)
    return mix64(k * _U64(GOLDEN) + _U64(state))


def permutations(config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """The multipliers a (odd) and offsets b of the ``num_perm`` hash functions h_i(x) = a_i x + b_i."""
    r = _splitmix(PERM_SEED ^ config.seed, 2 * config.num_perm)
    return r[0::2] | _U64(1), r[1::2].copy()


def _shingle_weights(ngram: int) -> np.ndarray:
    return _splitmix(SHINGLE_SEED, ngram) | _U64(1)


# --------------------------------------------------------------------------- words


def _whitespace_word_hashes(buf: TextBuffer) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes (module docstring) of the ``text.split()`` words and the per-document word offsets."""
    words = whitespace_words(buf)
    starts, length = words.starts, words.ends - words.starts
    window = buf.window  # the 8 bytes at every position, zero past the end
    s = length.astype(np.uint64)
    s *= _U64(GOLDEN)
    s += _U64(WORD_SEED)
    w = window[starts]
    w &= _BYTE_MASKS[np.minimum(length, 8)]
    s ^= w
    mix64(s)
    # Words longer than 8 bytes: one more round per 8 bytes, over the words still that long. The
    # last few very long ones (a base64 blob, minified code) finish in Python ints: a round of numpy
    # calls on a handful of words costs tens of microseconds, 50 times a Python-int round.
    active = np.flatnonzero(length > 8)
    k = 1
    while len(active):
        if len(active) <= _SCALAR_WORDS:
            data = buf.data
            for i in active.tolist():
                lo, hi = int(starts[i]) + 8 * k, int(starts[i] + length[i])
                s[i] = _chain_scalar(int(s[i]), data[lo:hi])
            break
        rest = length[active] - 8 * k
        w = window[starts[active] + 8 * k]
        w &= _BYTE_MASKS[np.minimum(rest, 8)]
        sa = s[active]
        sa ^= w
        s[active] = mix64(sa)
        active = active[rest > 8]
        k += 1
    return s, words.doc_words


def _chain_scalar(state: int, data: np.ndarray) -> int:
    """``state = mix64(state XOR w)`` for each little-endian 8-byte word w of ``data`` (zero-padded)."""
    padded = np.zeros(-(-len(data) // 8) * 8, np.uint8)
    padded[: len(data)] = data
    for w in padded.view("<u8").tolist():
        z = state ^ w
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state


def _word_hashes(buf: TextBuffer, tokenizer: str) -> tuple[np.ndarray, np.ndarray]:
    if tokenizer == "whitespace":
        return _whitespace_word_hashes(buf)
    batch = get_tokenizer(tokenizer).encode(buf.array)
    return batch.hashes, batch.doc_offsets


# --------------------------------------------------------------------------- shingles


def _shingles(hashes: np.ndarray, doc_words: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of every document (flat uint64) and their per-document offsets (int64, N+1)."""
    n_words = len(hashes)
    count = np.diff(doc_words)
    per_doc = np.where(count >= ngram, count - ngram + 1, np.minimum(count, 1))
    offsets = np.zeros(len(count) + 1, np.int64)
    np.cumsum(per_doc, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint64)
    weights = _shingle_weights(ngram)
    # Full shingles: the weighted sum at every word position from shifted views (no gathers), then
    # the positions whose n-gram stays inside its document.
    span = n_words - ngram + 1
    full = count >= ngram
    if span > 0 and full.any():
        acc = hashes[:span] * weights[0]
        tmp = np.empty_like(acc)
        for k in range(1, ngram):
            np.multiply(hashes[k : k + span], weights[k], out=tmp)
            acc += tmp
        acc += _U64((ngram * GOLDEN) & _MASK64)
        # Words left in the document from each position on, this one included.
        left = np.repeat(doc_words[1:], count)[:span]
        left -= np.arange(span)
        x = acc[left >= ngram]
        short = ~full & (count > 0)
        if short.any():
            slot = np.ones(len(out), bool)
            slot[offsets[:-1][short]] = False
            out[slot] = x
        else:
            out[:] = x
    short_docs = np.flatnonzero((count > 0) & (count < ngram))
    if len(short_docs):
        first, m = doc_words[short_docs], count[short_docs]
        acc = (m.astype(np.uint64) * _U64(GOLDEN))
        for k in range(ngram - 1):
            has = m > k
            acc[has] += hashes[first[has] + k] * weights[k]
        out[offsets[short_docs]] = acc
    mix64(out)
    return out, offsets


def shingle_hashes(texts: pa.Array | pa.ChunkedArray, config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """The shingle hashes x of every document (flat uint64) and per-document offsets (int64, n+1):
    the shingles of document d are ``x[offsets[d]:offsets[d+1]]`` (a multiset; for tests, inspection)."""
    buf = TextBuffer(texts)
    return _shingles(*_word_hashes(buf, config.tokenizer), config.ngram)


# --------------------------------------------------------------------------- signatures


def _minhash_into(x: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[d] = min over x[offsets[d]:offsets[d+1]] of a * x + b, per permutation (out: (docs,
    num_perm), all-max on entry)."""
    docs = np.flatnonzero(offsets[1:] > offsets[:-1])
    if not len(docs):
        return
    starts = offsets[docs]
    total = len(x)
    perms = len(a)
    block = np.empty((min(_BLOCK_PERMS, perms), min(_BLOCK_SHINGLES, total)), np.uint64)
    # Blocks cut through documents where they must: a document's pieces are reduced in separate
    # blocks and folded into ``out`` by minimum, which is why ``out`` starts all-max.
    for lo in range(0, total, _BLOCK_SHINGLES):
        hi = min(total, lo + _BLOCK_SHINGLES)
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        last = int(np.searchsorted(starts, hi, side="left"))
        seg = starts[first:last] - lo
        seg[0] = 0  # the first document may have begun in an earlier block
        rows = out[docs[first:last]] if docs[last - 1] - docs[first] != last - 1 - first else None
        view = out[docs[first] : docs[last - 1] + 1] if rows is None else rows
        xs = x[None, lo:hi]
        for p0 in range(0, perms, _BLOCK_PERMS):
            p1 = min(perms, p0 + _BLOCK_PERMS)
            v = block[: p1 - p0, : hi - lo]
            np.multiply(a[p0:p1, None], xs, out=v)
            v += b[p0:p1, None]
            mins = np.minimum.reduceat(v, seg, axis=1)
            part = view[:, p0:p1]
            np.minimum(part, mins.T, out=part)
        if rows is not None:  # empty documents among them: a gathered copy, written back
            out[docs[first:last]] = rows


def signatures(texts: pa.Array | pa.ChunkedArray, config: MinHashConfig | None = None) -> np.ndarray:
    """MinHash signatures of N documents: uint64 (N, num_perm) (module docstring; nulls are empty)."""
    config = config or MinHashConfig()
    buf = TextBuffer(texts)
    a, b = permutations(config)
    out = np.full((buf.n, config.num_perm), EMPTY, np.uint64)
    for lo, hi in buf.slices(_SLICE_BYTES) if buf.n else []:
        part = buf if (lo, hi) == (0, buf.n) else buf.slice(lo, hi)
        x, offsets = _shingles(*_word_hashes(part, config.tokenizer), config.ngram)
        _minhash_into(x, offsets, a, b, out[lo:hi])
    return out


# --------------------------------------------------------------------------- LSH


def _check_u64_2d(name: str, arr: np.ndarray, width: int | None = None, what: str = "") -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.dtype != np.uint64:
        raise UsageError(f"{name} must be a 2-d uint64 array, got {arr.ndim}-d {arr.dtype}")
    if width is not None and arr.shape[1] != width:
        raise UsageError(f"{name} must have {width} columns{what}, got {arr.shape[1]}")
    return arr


def band_keys(signatures: np.ndarray, config: MinHashConfig | None = None) -> np.ndarray:
    """One uint64 key per band: (N, bands), from (N, num_perm) signatures (module docstring)."""
    config = config or MinHashConfig()
    sig = _check_u64_2d("signatures", signatures, config.num_perm, " (num_perm)")
    per_band = sig.reshape(len(sig), config.bands, config.rows)
    seeds = np.arange(1, config.bands + 1, dtype=np.uint64) * _U64(GOLDEN) + _U64(BAND_SEED)
    keys = np.repeat(seeds[None, :], len(sig), axis=0)
    tmp = np.empty_like(keys)
    for k in range(config.rows):
        keys ^= per_band[:, :, k]
        mix64(keys, tmp)
    return keys


def _components(keys: np.ndarray) -> np.ndarray:
    """For every row, the smallest row index of its connected component, rows being linked when they
    share the key of a band (same column)."""
    n = len(keys)
    parent = np.arange(n, dtype=np.int64)
    if n < 2:
        return parent
    # Per band, rows with equal keys are adjacent once sorted; linking each to the next connects them.
    # One band at a time: the sort's temporaries are those of one column (about 24 bytes a row).
    us, vs = [], []
    for q in range(keys.shape[1]):
        column = keys[:, q]
        order = np.argsort(column)
        ordered = column[order]
        same = np.flatnonzero(ordered[1:] == ordered[:-1])
        us.append(order[same])
        vs.append(order[same + 1])
    u, v = np.concatenate(us), np.concatenate(vs)
    # Hook and compress: each round hooks the larger root of every edge under the smaller one (so the
    # root of a component is its smallest row, and no cycle can form), then jumps pointers until
    # every row points at its root. Rounds repeat until no edge joins two roots.
    while len(u):
        pu, pv = parent[u], parent[v]
        split = pu != pv
        if not split.any():
            break
        u, v, pu, pv = u[split], v[split], pu[split], pv[split]
        np.minimum.at(parent, np.maximum(pu, pv), np.minimum(pu, pv))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    return parent


def duplicate_of(keys_new: np.ndarray, keys_old: np.ndarray | None = None) -> np.ndarray:
    """For each new row: -1 when it shares no band key with an earlier new row or an old row (through
    its cluster), else its representative: ``-(2 + j)`` for the smallest old row j of its cluster when
    the cluster holds an old row (old rows are preferred: they are already kept), else the smallest new
    row index of its cluster (< i). Clusters are the connected components of "shares at least one band
    key" over old and new rows together, so chains (a~b, b~c) form one cluster. int64 (n,)."""
    new = _check_u64_2d("keys_new", keys_new)
    if keys_old is None:
        old = np.zeros((0, new.shape[1]), np.uint64)
    else:
        old = _check_u64_2d("keys_old", keys_old, new.shape[1], " (as many bands as keys_new)")
    m = len(old)
    root = _components(np.concatenate([old, new]) if m else new)[m:]
    out = np.full(len(new), -1, np.int64)
    from_old = root < m
    out[from_old] = -2 - root[from_old]
    later = ~from_old & (root != np.arange(m, m + len(new)))
    out[later] = root[later] - m
    return out


def jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray | float:
    """MinHash estimate of Jaccard similarity: the share of equal signature values (last axis;
    broadcasts, a float for two single signatures)."""
    est = np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=-1)
    return float(est) if np.ndim(est) == 0 else est
