"""N-gram values S and their final hashes (the definitions are in ``curator.stats.ngrams``).

``S = t_0;  S = S * NGRAM_K + t_j  for j = 1..n-1`` over the token hashes t, and
``hash = mix64(S XOR (n * GOLDEN))`` (all mod 2**64). The engine keys everything by S and
finalises only distinct values: the finaliser is a bijection, so grouping by S is grouping by hash.
"""
from __future__ import annotations

import numpy as np

from curator.stats.sorting import _EMPTY_I64, _EMPTY_U64
from curator.stats.tokenize import GOLDEN, mix64

NGRAM_K = 0xD6E8FEB86659FD93
_U64 = np.uint64
_K = _U64(NGRAM_K)
# Values per piece when finalising many hashes at once (see _finalise).
_FINALISE_ROWS = 1 << 15


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


def finalise_salt(n: int) -> int:
    """n * GOLDEN mod 2**64: what S is XORed with before mix64 (in ``_finalise`` and the kernels)."""
    return (n * GOLDEN) & 0xFFFFFFFFFFFFFFFF


def _finalise(s: np.ndarray, n: int, out: np.ndarray | None = None, tmp: np.ndarray | None = None) -> np.ndarray:
    """hash = mix64(S XOR n * GOLDEN): a bijection of S, so grouping by S = grouping by hash.
    Into ``out`` (same length as s) when given, else a new array; ``tmp``: a temporary of at
    least min(len(s), _FINALISE_ROWS) elements, else one is allocated."""
    h = np.bitwise_xor(s, _U64(finalise_salt(n)), out=out)
    if tmp is None:
        tmp = np.empty(min(len(h), _FINALISE_ROWS), np.uint64)
    if len(h) <= _FINALISE_ROWS:
        return mix64(h, tmp[: len(h)])
    # mix64 makes seven passes; in cache-sized pieces they cost about half as much.
    for i in range(0, len(h), _FINALISE_ROWS):
        part = h[i : i + _FINALISE_ROWS]
        mix64(part, tmp[: len(part)])
    return h
