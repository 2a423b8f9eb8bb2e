"""The words of a slice of documents and the hash keys of their n-grams.

Words are byte ranges found with numpy on the UTF-8 bytes (``textbuf.whitespace_words``). Each word gets
H(w), a polynomial hash of its bytes (an odd base B, modulo 2**64; each byte plus a per-document salt),
computed from 8-byte loads. The concatenation key of an n-gram is the same polynomial over the n words'
bytes, combined word by word (``H(xy) = H(x) * B**len(y) + H(y)``), so equal concatenations get equal keys
whatever their word boundaries; the tuple key is a polynomial (base C) over the splitmix64-mixed word
hashes. The salt keeps equal n-grams of different documents apart. Two different n-grams of one slice get
the same key with probability about M**2 / 2**65 for M n-grams (4e-9 for a 2 MB slice); a polynomial
modulo 2**64 can be made to collide on purpose, with Thue-Morse strings of a few thousand bytes, which
text not built for it does not contain.
"""
from __future__ import annotations

import numpy as np

from ..stats.tokenize import mix64
from .grouping import group_keys
from .textbuf import TextBuffer, Words, whitespace_words

__all__ = ["DUP_N", "TOP_N", "Ngrams"]

# The n-gram sizes of Gopher's rules: the most frequent n-gram for TOP_N, duplicated n-grams for DUP_N.
TOP_N = (2, 3, 4)
DUP_N = (5, 6, 7, 8, 9, 10)
_U64 = np.uint64
# Odd 64-bit constants (odd: invertible modulo 2**64, so no multiplication by them loses information).
_B = _U64(0x9E3779B97F4A7C15)  # byte base of the concatenation polynomial
_C = _U64(0xD6E8FEB86659FD93)  # word base of the tuple polynomial
_DOC = _U64(0x9FB21C651E98DF25)  # document index -> salt
_WORD_SEED = _U64(0x2545F4914F6CDD1D)
_POW = np.array([pow(int(_B), k, 2**64) for k in range(9)], np.uint64)  # B**k
_GEO = np.array([sum(pow(int(_B), j, 2**64) for j in range(k)) % 2**64 for k in range(9)], np.uint64)
_LANES = _POW[7::-1].copy()  # byte k of an 8-byte load weighs B**(7-k)
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)
_LONG_WORD = 64  # bytes; longer words are hashed byte by byte instead of 8 bytes per round
_SHIFTS = np.array([0] + [64 - 8 * k for k in range(1, 9)], np.uint64)  # moves k low bytes to the top


class Ngrams:
    """Per-slice word data and the n-gram keys of both kinds.

    Positions are word indices; the n-gram at position i is words i..i+n-1 and exists when they are all
    in the document of word i.
    """

    def __init__(self, buf: TextBuffer) -> None:
        self.buf = buf
        self.words: Words = whitespace_words(buf)
        w = self.words
        self.n_words = len(w)
        self.doc = w.doc
        chars = buf.chars(w.starts, w.ends)
        self.cum_chars = np.zeros(self.n_words + 1, np.int64)  # characters of words before position i
        np.cumsum(chars, out=self.cum_chars[1:])
        # words left in the document from position i on (i included)
        self.left = w.doc_words[1:][self.doc] - np.arange(self.n_words)
        salt = self.doc.astype(np.uint64)
        salt *= _DOC
        self.salt = salt
        self.hash, self.power = _word_hashes(buf, w.starts, w.ends, salt)
        self.nbytes = w.ends - w.starts
        self.cum_bytes = np.zeros(self.n_words + 1, np.int64)  # word bytes before position i
        np.cumsum(self.nbytes, out=self.cum_bytes[1:])
        word_value = self.hash ^ _WORD_SEED
        self.word_value = mix64(word_value)  # random-looking per word, for tuple keys
        self._running: dict[str, tuple[int, np.ndarray]] = {}

    def positions(self, n: int) -> np.ndarray:
        """Bool over positions 0..W-n: the n-gram exists."""
        return self.left[: max(self.n_words - n + 1, 0)] >= n

    def candidates(self, n: int, mark: np.ndarray) -> np.ndarray:
        """The positions (ascending) marked in ``mark`` (bool, at least W - n + 1 long; changed) where an
        n-gram exists."""
        end = max(self.n_words - n + 1, 0)
        mark = mark[:end]
        mark &= self.left[:end] >= n
        return np.flatnonzero(mark)

    def span_chars(self, pos: np.ndarray, n: int) -> np.ndarray:
        """Characters of the words of the n-grams at ``pos`` (no separators)."""
        return self.cum_chars[pos + n] - self.cum_chars[pos]

    def concat_key(self, pos: np.ndarray, n: int) -> np.ndarray:
        """Polynomial hash of the bytes of the n words from each position, concatenated."""
        return self._key("concat", pos, n)

    def tuple_key(self, pos: np.ndarray, n: int) -> np.ndarray:
        """Polynomial hash (base _C) of the words' mixed hashes: equal for equal word tuples."""
        return self._key("tuple", pos, n)

    def _key(self, kind: str, pos: np.ndarray, n: int) -> np.ndarray:
        """sum over k < n of v[i+k] times the product of p[i+k+1..i+n-1] (p = B**len, or _C for tuples).

        Either Horner's rule at ``pos`` only (n gathers), or, when most positions are asked for, the keys
        of every position kept from one n to the next: asked for n, n + 1, ... in turn, each comes from
        the previous one in one pass (``H(x w) = H(x) * p(w) + v(w)``)."""
        values, powers = (self.hash, self.power) if kind == "concat" else (self.word_value, None)
        end = max(self.n_words - n + 1, 0)
        done, keys = self._running.get(kind, (0, None))
        if keys is None or done > n:
            done, keys = 0, None
        if 3 * n * len(pos) < 2 * (n - max(done, 1)) * end + len(pos):
            key = values[pos]
            for k in range(1, n):
                key *= _C if powers is None else powers[pos + k]
                key += values[pos + k]
            return key
        if keys is None:
            done, keys = 1, values.copy()
        while done < n:
            keys = keys[: self.n_words - done]  # the next n-grams' keys, in place
            keys *= _C if powers is None else powers[done:]
            keys += values[done:]
            done += 1
        self._running[kind] = (n, keys)
        return keys[pos]

    def prefix_groups(self, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the positions ``among`` (bool per position): whether the 8 bytes concatenated from its word
        on (``_prefix8``) occur at another position of the document; and whether that position's group of
        equal prefixes mixes first words of different lengths. Positions with fewer than 8 bytes left in
        the document are in neither."""
        prefix, filled = _prefix8(self)
        full = np.flatnonzero((filled >= 8) & among)
        groups = group_keys(prefix[full] + self.salt[full])
        multi = np.flatnonzero(groups.in_multi)
        along = full[groups.order[multi]]  # the positions of repeated prefixes, group after group
        repeated = np.zeros(self.n_words, bool)
        repeated[along] = True
        shifted = np.zeros(self.n_words, bool)
        if len(along):
            bounds = np.flatnonzero(groups.is_first[multi])
            lengths = self.nbytes[along]
            mixed = np.minimum.reduceat(lengths, bounds) != np.maximum.reduceat(lengths, bounds)
            shifted[along[np.repeat(mixed, np.diff(np.append(bounds, len(along))))]] = True
        return repeated, shifted

    def per_doc(self, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Sum of values by the document of each position (float64, exact below 2**53)."""
        return np.bincount(self.doc[pos], weights=values, minlength=self.buf.n)


def _word_hashes(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray,
                 salt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H(w) = sum over the word's bytes b_k of (b_k + s) * B**(L-1-k) mod 2**64, and B**L, per word.

    s = 1 + the word's document salt: the +1 keeps a leading NUL byte from vanishing, and the salt makes
    the same n-gram in two documents hash apart. Adding a constant to every byte keeps the polynomial a
    function of the byte string: H of a concatenation is H(x) * B**len(y) + H(y) for any split.
    """
    length = ends - starts
    window = buf.window
    offset = salt + _U64(1)
    h, power = _chunk_hashes(window, starts, np.minimum(length, 8), offset)
    # Words of 9.._LONG_WORD bytes: one more round per 8 bytes, over the words still that long.
    mid = np.flatnonzero((length > 8) & (length <= _LONG_WORD))
    if len(mid):
        hm, pm, at, rest, off = h[mid], power[mid], starts[mid] + 8, length[mid] - 8, offset[mid]
        active = np.arange(len(mid))
        while len(active):
            chunk, p = _chunk_hashes(window, at[active], np.minimum(rest[active], 8), off[active])
            hm[active] = hm[active] * p + chunk
            pm[active] *= p
            at[active] += 8
            rest[active] -= 8
            active = active[rest[active] > 0]
        h[mid], power[mid] = hm, pm
    long = np.flatnonzero(length > _LONG_WORD)
    if len(long):
        h[long], power[long] = _long_word_hashes(buf, starts[long], ends[long], offset[long])
    return h, power


def _chunk_hashes(window: np.ndarray, at: np.ndarray, take: np.ndarray,
                  offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polynomial of the ``take`` (1..8) bytes at each position (each byte plus its offset), and B**take."""
    x = window[at]
    # With the chunk's bytes moved to the top of the word (the bytes past it shift out),
    # sum_k byte_k * B**(7-k) over the 8 bytes is the chunk's polynomial.
    x <<= _SHIFTS[take]
    lanes = x.view(np.uint8).reshape(-1, 8)
    chunk = lanes[:, 7].astype(np.uint64)  # the last byte weighs B**0
    tmp = np.empty_like(chunk)
    for k in range(7):
        np.multiply(lanes[:, k], _LANES[k], out=tmp)
        chunk += tmp
    tmp = _GEO[take]  # sum of B**k, k < take: what adding the offset to each byte adds, per unit
    tmp *= offset
    chunk += tmp
    return chunk, _POW[take]


def _long_word_hashes(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray,
                      offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_word_hashes`` for long words, over their bytes at once: each byte times B**(bytes after it)."""
    length = ends - starts
    total = int(length.sum())
    first = np.zeros(len(starts), np.int64)
    np.cumsum(length[:-1], out=first[1:])
    word = np.repeat(np.arange(len(starts)), length)
    at = np.arange(total) - first[word]  # byte index inside its word
    powers = np.empty(int(length.max()) + 1, np.uint64)
    powers[0] = 1
    powers[1:] = _B
    np.cumprod(powers, out=powers)  # wraps modulo 2**64
    values = buf.data[np.repeat(starts, length) + at].astype(np.uint64)
    values += offset[word]
    values *= powers[(length[word] - 1) - at]
    return np.add.reduceat(values, first), powers[length]


def _prefix8(ng: Ngrams) -> tuple[np.ndarray, np.ndarray]:
    """The first 8 bytes of the words from each position on, concatenated without their spaces (as a
    little-endian uint64), and how many of them lie in the document (8, or fewer at its end)."""
    buf = ng.buf
    size = int(ng.cum_bytes[-1])
    compact = np.zeros(size + 8, np.uint8)
    np.compress(~buf.space, buf.data, out=compact[:size])
    window = np.ndarray((size + 1,), dtype="<u8", buffer=compact, strides=(1,))
    at = ng.cum_bytes[:-1]
    filled = np.minimum(ng.cum_bytes[ng.words.doc_words[1:]][ng.doc] - at, 8)
    return window[at] & _BYTE_MASKS[filled], filled
