"""`repetition_v1`: the Gopher repetition fractions (Rae et al. 2021, "Scaling Language Models", Appendix A,
Table A1), stored raw: no thresholds here, selection decides later.

Columns (float64, one row per document) and the ``variant`` (string) that computed them:

    dup_line_frac        dup_line_char_frac     dup_para_frac           dup_para_char_frac
    top_{2,3,4}gram_char_frac                   dup_{5..10}gram_char_frac

Words are whitespace words in both variants (``tokenizer="whitespace"``, the only choice so far): the
pieces of Python's ``text.split()`` (see ``text_stats``). Every value of a document whose text is empty
(or null) is null: there is nothing to take a fraction of (datatrove drops such a document as "empty"
before computing anything). Otherwise a value is null only where its denominator is 0 (in the gopher
variant: a whitespace-only text has no lines, paragraphs or words).

Variant ``datatrove`` (the default)
-----------------------------------
Exactly what ``datatrove.pipeline.filters.GopherRepetitionFilter.filter`` (datatrove 0.10.1) computes
before it compares each value with its threshold, with the filter built as
``GopherRepetitionFilter(language=WhitespaceTokenizer())`` where ``WhitespaceTokenizer`` is a
``datatrove.utils.word_tokenizers.WordTokenizer`` whose ``word_tokenize(text)`` returns ``text.split()``
(the filter calls ``split_into_words(text, self.language)``, and ``load_word_tokenizer`` returns a
``WordTokenizer`` instance it is given as it is). datatrove's default tokenizer for English is spaCy's
(``spacy.blank("en")``), which splits punctuation off words; it is not reproduced (spaCy is not a
dependency). With ``T = len(text)`` (code points):

- paragraphs = ``re.split(r"\\n{2,}", text.strip())``; lines = ``re.split(r"\\n+", text)`` (the text is
  not stripped for lines, so a leading or trailing newline adds an empty line);
- among them, a *duplicate* is an element equal to an earlier element of the same list (the first copy
  does not count); ``dup_para_frac`` = duplicates / len(paragraphs), ``dup_para_char_frac`` = characters
  of the duplicates / T; the same for lines;
- ``top_{n}gram_char_frac`` = ``len(" ".join(g)) * count(g) / T`` for the most frequent word n-gram ``g``
  (``Counter.most_common(1)``: ties go to the n-gram that occurs first); 0 when there are fewer than n
  words; overlapping occurrences all count, so the value can exceed 1 ("a a a a": 3 * 3 / 7);
- ``dup_{n}gram_char_frac`` = ``find_all_duplicate(words, n) / T``: a left-to-right scan over positions
  i keyed by ``"".join(words[i:i+n])`` (no separator: ["ab", "c"] equals ["a", "bc"]): a key seen before
  adds its length (the n words' characters, no spaces) and jumps to i + n, without recording the keys it
  jumps over; a new key is recorded and the scan moves to i + 1.

Variant ``gopher``
------------------
The paper's definitions as we read them (its code is not public; Table A1 names the fractions, the text
says: duplicate lines / paragraphs and the characters in them, "the fraction of characters contained
within the most frequently-occurring n-gram" for n = 2..4, and "the fraction of characters contained
within all duplicate n-grams, taking care not to count characters that occur in overlapping n-grams more
than once" for n = 5..10). Differences from ``datatrove``:

1. Lines are ``text.split("\\n")`` without blank lines (empty or whitespace-only): blank lines are layout,
   not content (datatrove splits on runs of "\\n", keeps whitespace-only lines, and adds an empty line for
   a leading or trailing newline, which duplicates as soon as there are both).
2. Paragraphs are runs of non-blank lines separated by blank lines; the text of a paragraph is its lines
   joined by "\\n" (datatrove splits on two or more "\\n", so "a\\n \\nb" is one paragraph there).
3. A duplicate line (paragraph, n-gram) is every occurrence of a line that occurs more than once, the
   first copy included: a text made of one line twice is all duplicate (1.0), not half (0.5).
4. Each character fraction is over the characters of the units it counts, not over ``len(text)``: lines
   over the characters of all (non-blank) lines, paragraphs over those of all paragraphs, n-grams over the
   characters of all words. Spaces between words are not n-gram characters (datatrove counts the
   joining spaces for top n-grams but not for duplicate n-grams).
5. N-grams are word tuples (datatrove keys duplicate n-grams by their words concatenated without a
   separator).
6. ``top_{n}gram_char_frac``: the characters covered by the occurrences of the most frequent n-gram,
   overlaps counted once (so at most 1); among equally frequent n-grams the one covering most characters
   (no dependence on order); 0 when no n-gram occurs twice (an n-gram seen once is not a repetition, and
   any of them would be "the most frequent").
7. ``dup_{n}gram_char_frac``: the characters of the words covered by at least one occurrence of an
   n-gram that occurs more than once, each word counted once (datatrove's greedy scan counts only later
   copies and skips the n-grams overlapping a match, so a text repeated twice scores about 0.5 there).

Why ``datatrove`` is the default: it is the implementation behind the published pipelines that apply
Table A1's thresholds (FineWeb and its descendants), so values compare with theirs and the thresholds
mean what they meant there; and it is the variant we can check against a reference implementation value
by value (the tests do). ``gopher`` is our reading of a paper without code.

How it is computed (no Python loop over documents)
------------------------------------------------
A batch is cut into slices of about 2 MB of text, so that the per-word arrays stay in the CPU caches.
Words are byte ranges found with numpy on the UTF-8 bytes. Each word gets H(w), a polynomial hash of its
bytes (an odd base B, modulo 2**64; each byte plus a per-document salt), computed from 8-byte loads.
The concatenation key of an n-gram is the same polynomial over the n words' bytes, combined word by
word (``H(xy) = H(x) * B**len(y) + H(y)``), so equal concatenations get equal keys whatever their word
boundaries; the tuple key is a polynomial (base C) over the splitmix64-mixed word hashes. The salt keeps
equal n-grams of different documents apart. Equal keys are grouped by one ``np.sort`` of (high bits of
the key | position), checked against the full 64-bit keys: the only inexactness is a collision of two
different n-grams of one slice on a 64-bit hash (about M**2 / 2**65 for M n-grams: 4e-9 for a 2 MB slice;
a polynomial modulo 2**64 can be made to collide on purpose, with Thue-Morse strings of a few thousand
bytes, which text not built for it does not contain).
Lines and paragraphs are grouped exactly (Arrow's ``dictionary_encode`` on zero-copy views of the bytes).

Only positions where an n-gram can repeat are sorted: a word tuple repeats only where its (n-1)-gram
prefix and suffix repeat; for concatenations see ``_concat_groups`` (a filter on the first 8 bytes).
datatrove's left-to-right scan (a set of seen keys, a jump of n words after each duplicate) is followed
for all documents at once by pointer doubling over the candidate duplicates (``_datatrove_scan``).
Where the first copy of a key hides inside a jump, a few rounds of corrections decide the document
(``_settle``: natural text), and the documents still undecided (text looping on itself) are replayed
step by step, all of them and all n together, one numpy step per run of duplicates or of new keys
(``_replay``). Text in which nearly every n-gram repeats leaves nothing to prune: it goes at a few MB/s,
about datatrove's own speed on it (its scan skips n words per duplicate), where natural text goes at
10-20 times datatrove's.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..stats.tokenize import mix64
from .base import Scorer
from .registry import register
from .text_stats import TextBuffer, Words, whitespace_words

__all__ = ["Repetition", "RepetitionConfig", "VARIANTS", "TOKENIZERS", "TOP_N", "DUP_N", "COLUMNS"]

VARIANTS = ("datatrove", "gopher")
TOKENIZERS = ("whitespace",)
TOP_N = (2, 3, 4)
DUP_N = (5, 6, 7, 8, 9, 10)
LINE_COLUMNS = ("dup_line_frac", "dup_line_char_frac", "dup_para_frac", "dup_para_char_frac")
COLUMNS = (LINE_COLUMNS + tuple(f"top_{n}gram_char_frac" for n in TOP_N)
           + tuple(f"dup_{n}gram_char_frac" for n in DUP_N))

# Text per slice: large enough that numpy's per-call overhead does not show, small enough that the
# per-word arrays (8 bytes each, ~5 bytes of text per word) stay in the CPU caches.
SLICE_BYTES = 2_000_000

_U64 = np.uint64
# Odd 64-bit constants (odd: invertible modulo 2**64, so no multiplication by them loses information).
_B = _U64(0x9E3779B97F4A7C15)  # byte base of the concatenation polynomial
_C = _U64(0xD6E8FEB86659FD93)  # word base of the tuple polynomial
_DOC = _U64(0x9FB21C651E98DF25)  # document index -> salt
_SPREAD = _U64(0xBF58476D1CE4E5B9)  # key spreading before a sort on the high bits
_WORD_SEED = _U64(0x2545F4914F6CDD1D)
_POW = np.array([pow(int(_B), k, 2**64) for k in range(9)], np.uint64)  # B**k
_GEO = np.array([sum(pow(int(_B), j, 2**64) for j in range(k)) % 2**64 for k in range(9)], np.uint64)
_LANES = _POW[7::-1].copy()  # byte k of an 8-byte load weighs B**(7-k)
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)
_FEW_HIDDEN = 8  # documents with more hidden first copies (and more than 1 per 50 words) skip `_settle`
_AHEAD = np.arange(1, 17)  # steps `_replay` takes at once, at most
_REPLAY_WORK = 2048  # look-ahead places per `_replay` step, shared by the lanes still going
_EARLIER = np.tri(16, k=-1, dtype=bool)  # [k, j]: j comes before k
_LONG_WORD = 64  # bytes; longer words are hashed byte by byte instead of 8 bytes per round
_SHIFTS = np.array([0] + [64 - 8 * k for k in range(1, 9)], np.uint64)  # moves k low bytes to the top


@dataclass(frozen=True)
class RepetitionConfig:
    """variant: "datatrove" (default; datatrove 0.10.1's GopherRepetitionFilter) or "gopher" (the paper as
    read in the module docstring). tokenizer: how text becomes words; "whitespace" (str.split())."""

    variant: str = "datatrove"
    tokenizer: str = "whitespace"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")


@register
class Repetition(Scorer):
    """Gopher repetition fractions per document, raw (see the module docstring for both variants)."""

    name = "repetition_v1"
    description = "Gopher repetition fractions: duplicate lines/paragraphs, top 2-4-grams, duplicate 5-10-grams"
    inputs = ("text",)
    columns = (pa.field("variant", pa.string()), *(pa.field(c, pa.float64()) for c in COLUMNS))
    Config = RepetitionConfig

    def score(self, batch: pa.Table) -> pa.Table:
        buf = TextBuffer(batch.column("text"))
        fractions = _datatrove_fractions if self.config.variant == "datatrove" else _gopher_fractions
        values = {c: np.full(buf.n, np.nan) for c in COLUMNS}
        for lo, hi in buf.slices(SLICE_BYTES):
            part = buf if (lo, hi) == (0, buf.n) else buf.slice(lo, hi)
            for column, v in fractions(part).items():
                values[column][lo:hi] = v
        # NaN marks an undefined fraction (0 / 0); no defined fraction is NaN.
        out = {"variant": pa.array([self.config.variant] * buf.n, pa.string())}
        out.update({c: pa.array(v, pa.float64(), mask=np.isnan(v)) for c, v in values.items()})
        return pa.table(out)


# ============================================================================ grouping


class _Groups:
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


def _group(keys: np.ndarray) -> _Groups:
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
        return _Groups(np.zeros(0, np.int64), np.ones(1, bool))
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
    same = np.flatnonzero(~bounds[1:-1])
    if len(same):
        differ = keys[order[same]] != keys[order[same + 1]]
        if differ.any():
            order, bounds = _split_mixed(keys * _SPREAD, order, bounds, same[differ])
    return _Groups(order, bounds)


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


def _group_exact(ints: np.ndarray, bound: int) -> _Groups:
    """Group non-negative integers below ``bound`` exactly (no hashing)."""
    m = len(ints)
    bits = int(m).bit_length()
    if m == 0 or int(bound - 1).bit_length() + bits > 64:
        return _group(mix64(ints.astype(np.uint64)))  # a bijection: equal hashes are equal integers
    low = _U64((1 << bits) - 1)
    packed = ints.astype(np.uint64) << _U64(bits)
    packed |= _iota(m)
    packed.sort()
    bounds = np.ones(m + 1, bool)
    np.not_equal(packed[1:] >> _U64(bits), packed[:-1] >> _U64(bits), out=bounds[1:-1])
    return _Groups((packed & low).view(np.int64), bounds)


def _range_ids(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, int]:
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


def _first_copies(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray, doc: np.ndarray) -> _Groups:
    """Groups of equal byte ranges within each document (ranges sorted by document)."""
    ids, n_ids = _range_ids(buf, starts, ends)
    return _group_exact(doc * n_ids + ids, buf.n * n_ids)


# ============================================================================ words and n-gram keys


class _Ngrams:
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

    def positions(self, n: int) -> np.ndarray:
        """Bool over positions 0..W-n: the n-gram exists."""
        return self.left[: max(self.n_words - n + 1, 0)] >= n

    def candidates(self, n: int, *sets: np.ndarray) -> np.ndarray:
        """The positions (ascending) in any of ``sets`` where an n-gram exists: for small sets, cheaper
        than masks over every position."""
        mark = np.zeros(self.n_words + 1, bool)
        for s in sets:
            mark[s] = True
        pos = np.flatnonzero(mark[: max(self.n_words - n + 1, 0)])
        return pos[self.left[pos] >= n]

    def span_chars(self, pos: np.ndarray, n: int) -> np.ndarray:
        """Characters of the words of the n-grams at ``pos`` (no separators)."""
        return self.cum_chars[pos + n] - self.cum_chars[pos]

    def concat_key(self, pos: np.ndarray, n: int) -> np.ndarray:
        """Polynomial hash of the bytes of the n words from each position, concatenated."""
        return self._horner(pos, n, self.hash, self.power)

    def tuple_key(self, pos: np.ndarray, n: int) -> np.ndarray:
        """Polynomial hash (base _C) of the words' mixed hashes: equal for equal word tuples."""
        return self._horner(pos, n, self.word_value, None)

    def _horner(self, pos: np.ndarray, n: int, values: np.ndarray, powers: np.ndarray | None) -> np.ndarray:
        """sum over k < n of values[i+k] times the product of powers[i+k+1..i+n-1] (or _C each)."""
        end = max(self.n_words - n + 1, 0)
        dense = len(pos) > end // 2  # slices beat gathers when most positions are wanted
        key = values[:end].copy() if dense else values[pos]
        for k in range(1, n):
            at = slice(k, end + k) if dense else pos + k
            key *= _C if powers is None else powers[at]
            key += values[at]
        return key[pos] if dense else key

    @cached_property
    def prefix_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Bool per position: the 8 bytes concatenated from its word on (``_prefix8``) occur at another
        position of the document; and that position's group of equal prefixes mixes first words of
        different lengths. Positions with fewer than 8 bytes left in the document are in neither."""
        prefix, filled = _prefix8(self)
        full = np.flatnonzero(filled >= 8)
        groups = _group(prefix[full] + self.salt[full])
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


# ============================================================================ lines and paragraphs


def _newline_runs(buf: TextBuffer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end (exclusive) and document of every maximal run of "\\n" bytes inside a document."""
    nl = np.flatnonzero(buf.data == 10)
    doc = np.searchsorted(buf.offsets, nl, side="right") - 1
    if not len(nl):
        return nl, nl, doc
    head = np.concatenate(([True], (nl[1:] != nl[:-1] + 1) | (doc[1:] != doc[:-1])))
    first = np.flatnonzero(head)
    last = np.append(first[1:], len(nl)) - 1
    return nl[first], nl[last] + 1, doc[first]


def _split_at(lo: np.ndarray, hi: np.ndarray, sep_start: np.ndarray, sep_end: np.ndarray,
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


def _later_copies(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray,
                  doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """datatrove's find_duplicates per document: (count, characters) of the elements equal to an earlier one."""
    groups = _first_copies(buf, starts, ends, doc)
    later = np.ones(len(starts), bool)
    later[groups.order[groups.is_first]] = False
    chars = buf.chars(starts[later], ends[later])
    return (np.bincount(doc[later], minlength=buf.n).astype(np.float64),
            np.bincount(doc[later], weights=chars, minlength=buf.n))


def _all_copies(buf: TextBuffer, starts: np.ndarray, ends: np.ndarray,
                doc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per document: (count, characters) of the elements that occur more than once (every copy), and
    (count, characters) of all elements."""
    groups = _first_copies(buf, starts, ends, doc)
    dup = np.zeros(len(starts), bool)
    dup[groups.order[groups.in_multi]] = True
    chars = buf.chars(starts, ends)
    return (np.bincount(doc[dup], minlength=buf.n).astype(np.float64),
            np.bincount(doc[dup], weights=chars[dup], minlength=buf.n),
            np.bincount(doc, minlength=buf.n).astype(np.float64),
            np.bincount(doc, weights=chars, minlength=buf.n))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN (null) where den is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


# ============================================================================ variant: datatrove


def _datatrove_fractions(buf: TextBuffer) -> dict[str, np.ndarray]:
    ng = _Ngrams(buf)
    text_chars = buf.doc_chars().astype(np.float64)
    out: dict[str, np.ndarray] = {}
    run_start, run_end, run_doc = _newline_runs(buf)

    # paragraphs: re.split(r"\n{2,}", text.strip()). The stripped text runs from the first word's start
    # to the last word's end; newline runs inside it are whole runs (they are whitespace).
    w = ng.words
    has_words = np.diff(w.doc_words) > 0
    lo = buf.offsets[:-1].copy()
    hi = lo.copy()
    lo[has_words] = w.starts[w.doc_words[:-1][has_words]]
    hi[has_words] = w.ends[w.doc_words[1:][has_words] - 1]
    inside = (run_end - run_start >= 2) & (run_start > lo[run_doc]) & (run_end < hi[run_doc])
    p_start, p_end, p_doc = _split_at(lo, hi, run_start[inside], run_end[inside], run_doc[inside])
    dups, dup_chars = _later_copies(buf, p_start, p_end, p_doc)
    out["dup_para_frac"] = dups / np.bincount(p_doc, minlength=buf.n)
    out["dup_para_char_frac"] = _ratio(dup_chars, text_chars)

    # lines: re.split(r"\n+", text)
    l_start, l_end, l_doc = _split_at(buf.offsets[:-1], buf.offsets[1:], run_start, run_end, run_doc)
    dups, dup_chars = _later_copies(buf, l_start, l_end, l_doc)
    out["dup_line_frac"] = dups / np.bincount(l_doc, minlength=buf.n)
    out["dup_line_char_frac"] = _ratio(dup_chars, text_chars)

    for n, top in zip(TOP_N, _top_counts(ng)):
        out[f"top_{n}gram_char_frac"] = _ratio(top, text_chars)
    lanes = []
    for n, pos, groups in _concat_groups(ng):
        dup, hard = _datatrove_scan(ng, n, pos, groups)
        out[f"dup_{n}gram_char_frac"] = dup
        lanes.append(hard)
    _replay(ng, lanes, out)
    for n in DUP_N:
        out[f"dup_{n}gram_char_frac"] = _ratio(out[f"dup_{n}gram_char_frac"], text_chars)

    empty = text_chars == 0  # datatrove: `if not text: return False, "empty"`
    for v in out.values():
        v[empty] = np.nan
    return out


def _top_counts(ng: _Ngrams) -> list[np.ndarray]:
    """datatrove's find_top_duplicate per document, for n = 2, 3, 4: len(" ".join(g)) * count(g) for the
    most frequent n-gram, the first one to occur among equals."""
    out = []
    repeats = None  # positions whose (n-1)-gram occurs twice or more in its document
    for n in TOP_N:
        if repeats is None:
            # A repeated pair of words concatenates to a repeated string: where it has 8 bytes or more,
            # its 8-byte prefix repeats.
            exists = ng.positions(n)
            k = len(exists)
            exists &= ng.prefix_groups[0][:k] | (ng.cum_bytes[2 : k + 2] - ng.cum_bytes[:k] < 8)
            pos = np.flatnonzero(exists)
        else:
            # an n-gram can only repeat where its (n-1)-gram prefix and suffix both repeat
            repeats.sort()
            pos = repeats[np.isin(repeats + 1, repeats, assume_unique=True)]
            pos = pos[ng.left[pos] >= n]
        groups = _group(ng.tuple_key(pos, n))
        sizes = groups.sizes
        multi = sizes >= 2
        repeats = pos[groups.order[groups.in_multi]]

        # Without a repeated n-gram every count is 1 and the first n-gram of the document wins.
        value = np.zeros(ng.buf.n)
        first_word = ng.words.doc_words[:-1]
        long_enough = np.diff(ng.words.doc_words) >= n
        f = first_word[long_enough]
        value[long_enough] = ng.span_chars(f, n) + (n - 1)
        if multi.any():
            first = pos[groups.order[groups.starts[:-1][multi]]]
            count = sizes[multi]
            by_pos = np.argsort(first)
            first, count = first[by_pos], count[by_pos]
            doc = ng.doc[first]
            seg = np.flatnonzero(np.concatenate(([True], doc[1:] != doc[:-1])))
            best = np.maximum.reduceat(count, seg)
            seg_of = np.repeat(np.arange(len(seg)), np.diff(np.append(seg, len(doc))))
            winner = np.flatnonzero(count == best[seg_of])
            winner = winner[np.concatenate(([True], seg_of[winner][1:] != seg_of[winner][:-1]))]
            value[doc[winner]] = (ng.span_chars(first[winner], n) + (n - 1)) * count[winner]
        out.append(value)
    return out


def _concat_groups(ng: _Ngrams) -> Iterator[tuple[int, np.ndarray, _Groups]]:
    """(n, positions, groups of their concatenation keys) for n = 5..10, the positions holding every
    n-gram that repeats in its document.

    Let the n-grams at i and j concatenate to the same string S. If their first words have the same
    length they are the same word, and the (n-1)-grams at i+1 and j+1 repeat; if their last words do,
    the (n-1)-grams at i and j repeat. Otherwise the first words differ in length, and when S has 8
    bytes or more, the 8 concatenated bytes from word i equal those from word j: i's group of 8-byte
    prefixes holds first words of different lengths. So an n-gram can repeat only where the (n-1)-gram
    at i or i+1 repeats, or i's prefix group is mixed, or the 5 words from i have fewer than 8 bytes;
    for n = 5 only where i's 8-byte prefix repeats or the 5-gram is that short.
    """
    n_words = ng.n_words
    repeated, shifted = ng.prefix_groups
    m = max(n_words - 4, 0)
    short = np.flatnonzero(ng.cum_bytes[5 : m + 5] - ng.cum_bytes[:m] < 8)
    shifted = np.union1d(np.flatnonzero(shifted), short)
    repeats = None
    for n in DUP_N:
        if repeats is None:
            pos = ng.candidates(n, np.flatnonzero(repeated), short)
        else:
            pos = ng.candidates(n, repeats, repeats - 1, shifted)
        groups = _group(ng.concat_key(pos, n))
        repeats = pos[groups.order[groups.in_multi]]  # positions whose n-gram repeats
        yield n, pos, groups


def _prefix8(ng: _Ngrams) -> tuple[np.ndarray, np.ndarray]:
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


@dataclass(frozen=True)
class _Lanes:
    """The copies of repeated keys in the documents left to ``_replay`` for one n: positions ascending
    (document after document), their group (key) ids, and their n-grams' characters."""

    n: int
    pos: np.ndarray
    group: np.ndarray
    chars: np.ndarray


def _datatrove_scan(ng: _Ngrams, n: int, pos: np.ndarray, groups: _Groups) -> tuple[np.ndarray, _Lanes]:
    """datatrove's find_all_duplicate(words, n) for every document: the characters of duplicated n-grams.

    ``groups`` groups the concatenation keys of the n-grams at ``pos``, which must hold every n-gram
    that occurs twice in its document (others may be left out: a key seen once is never a hit).
    Returns the characters per document, and the documents this shortcut cannot decide, for ``_replay``.

    The scan visits positions left to right; at a position whose key was recorded before it adds the
    n-gram's characters ("a hit") and jumps n ahead, else it records the key and steps 1. A position
    can only be a hit if an earlier position has its key ("a candidate"). When the first copy of every
    repeated key is visited, the hits are exactly the candidates the scan lands on, and these follow
    from the candidates alone: the first candidate is a hit, and after a hit at p the next one is the
    first candidate at or after p + n (a candidate inside the jump is not visited, and a visited
    candidate is a hit since the key's first copy was recorded). ``_chain`` follows that for all
    documents at once; a document's chain never runs into the next document's, because the last
    n-gram of a document ends where the next document's first one starts. Whether every first copy
    was visited is then checked against the chain; where one lies inside a jump, a later copy need not
    be a hit: ``_settle`` tries a couple of corrections, and the documents still undecided go to
    ``_replay``.
    """
    in_multi = groups.in_multi
    hits = _chain(np.sort(pos[groups.order[in_multi & ~groups.is_first]]), n)
    firsts = pos[groups.order[in_multi & groups.is_first]]
    hidden = _covered(hits, firsts, n)
    hidden_per_doc = np.bincount(ng.doc[firsts[hidden]], minlength=ng.buf.n)
    hard = hidden_per_doc > 0
    multi = np.flatnonzero(in_multi)
    copies = pos[groups.order[multi]]
    keep = hard[ng.doc[copies]]
    group = (np.cumsum(groups.is_first[multi]) - 1)[keep]
    # by position: one sort of (position | group) instead of an argsort
    bits = _U64(max(int(group.max()) + 1 if len(group) else 1, 1).bit_length())
    packed = np.sort((copies[keep].astype(np.uint64) << bits) | group.astype(np.uint64))
    copies = (packed >> bits).view(np.int64)
    group = (packed & ((_U64(1) << bits) - _U64(1))).view(np.int64)
    # Few hidden first copies for its length: likely settled by a correction or two. Many (a document
    # looping on itself): corrections would not converge, replay it directly.
    words = np.diff(ng.words.doc_words)
    few = hard & ((hidden_per_doc <= _FEW_HIDDEN) | (hidden_per_doc * 50 <= words))
    settled, hits = _settle(ng, n, few, hits, copies, group)
    hard &= ~settled
    hits = hits[~hard[ng.doc[hits]]]
    dup = ng.per_doc(hits, ng.span_chars(hits, n).astype(np.float64))
    keep = hard[ng.doc[copies]]
    return dup, _Lanes(n, copies[keep], group[keep], ng.span_chars(copies[keep], n))


def _settle(ng: _Ngrams, n: int, hard: np.ndarray, hits: np.ndarray, copies: np.ndarray, group: np.ndarray,
            rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Try to decide the ``hard`` documents without ``_replay``: take as candidates the copies with an
    earlier *visited* copy under the current hits, chain again, and repeat. A document whose hits come
    back unchanged is decided (the scan's decisions are the only ones consistent with themselves, each
    depending on earlier ones only); each round fixes at least a document's leftmost wrong decision,
    and natural text settles within three. Returns the settled documents and the hits of every
    document that is not still hard (``copies``: the hard documents' copies of repeated keys, by position,
    with their key's ``group``)."""
    settled = np.zeros(ng.buf.n, bool)
    is_hard = hard[ng.doc[hits]]
    easy, mine = hits[~is_hard], hits[is_hard]
    mask = hard[ng.doc[copies]]
    copies, group = copies[mask], group[mask]
    for _ in range(rounds):
        visited = ~_covered(mine, copies, n)
        seen_group, first = np.unique(group[visited], return_index=True)
        first_seen = np.full(int(group.max()) + 1 if len(group) else 0, np.iinfo(np.int64).max, np.int64)
        first_seen[seen_group] = copies[visited][first]
        again = _chain(copies[copies > first_seen[group]], n)
        changed = np.zeros(ng.buf.n, bool)
        changed[ng.doc[np.setxor1d(again, mine, assume_unique=True)]] = True
        settled = hard & ~changed
        mine = again
        if not changed.any():
            break
    return settled, np.sort(np.concatenate((easy, mine[settled[ng.doc[mine]]])))


def _chain(candidates: np.ndarray, n: int) -> np.ndarray:
    """The candidates the scan lands on: the first one, then repeatedly the first at or after the last
    one + n (candidates sorted ascending)."""
    m = len(candidates)
    if m < 2:
        return candidates
    # A candidate n or more after the previous one is always landed on (no jump can cover it).
    on = np.zeros(m + 1, bool)
    on[0] = True
    np.greater_equal(np.diff(candidates), n, out=on[1:m])
    if on[:m].all():
        return candidates
    jump = np.append(np.searchsorted(candidates, candidates + n), m)  # m: past the end, maps to itself
    on[m] = True
    members = np.flatnonzero(on[:m])
    # Invariant: `members` holds every node reached from a sure node in fewer than 2**j jumps and
    # `jump` jumps 2**j times; reaching nothing new means the chains are complete.
    while True:
        reached = jump[members]
        fresh = reached[~on[reached]]
        if not len(fresh):
            break
        on[fresh] = True
        members = np.flatnonzero(on[:m])
        jump = jump[jump]
    return candidates[on[:m]]


def _covered(hits: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Bool per position: inside the jump of a hit (hit < position < hit + n)."""
    if not len(hits):
        return np.zeros(len(positions), bool)
    k = np.searchsorted(hits, positions, side="right") - 1
    hit = hits[np.maximum(k, 0)]
    return (k >= 0) & (hit < positions) & (positions < hit + n)


def _replay(ng: _Ngrams, lanes: list[_Lanes], out: dict[str, np.ndarray]) -> None:
    """datatrove's scan, step by step, for the documents ``_datatrove_scan`` left over; writes their
    characters of duplicated n-grams into ``out``.

    Each (document, n) is a lane, and one numpy step advances every lane: positions whose key occurs
    once are always recorded and stepped over, so a lane goes straight to the first copy of a repeated
    key at or after its next position, and a step takes a whole run of hits or of records at once (up to
    16, see ``_replay_hits`` and ``_replay_records``). Such documents are highly repetitive: once their
    few keys are recorded, the scan is mostly long runs of hits.

    Positions live in a compact space: the words of these documents only, one block per n, so that
    "the copy at position q" and "the first copy at or after q" are lookups in a table, not searches.
    """
    lanes = [lane for lane in lanes if len(lane.pos)]
    if not lanes:
        return
    docs = np.unique(np.concatenate([ng.doc[lane.pos] for lane in lanes]))
    first_word = ng.words.doc_words[docs]
    size = ng.words.doc_words[docs + 1] - first_word
    start = np.zeros(len(docs), np.int64)  # where each document's words begin in a block
    np.cumsum(size[:-1], out=start[1:])
    block = int(size.sum()) + 16 * max(DUP_N) + 1  # room for the look-ahead past the last document
    where = np.empty(ng.buf.n, np.int64)
    where[docs] = start - first_word  # word index -> place in a block
    key, doc, n_of, group, chars = [], [], [], [], []
    base = 0
    for b, lane in enumerate(lanes):
        d = ng.doc[lane.pos]
        key.append(b * block + lane.pos + where[d])
        doc.append(d)
        n_of.append(np.full(len(d), lane.n))
        group.append(lane.group + base)  # group ids made distinct across n
        base += int(lane.group.max()) + 1
        chars.append(lane.chars)
    key, doc, n_of, group = (np.concatenate(a) for a in (key, doc, n_of, group))
    chars = np.concatenate(chars).astype(np.float64)
    copies = len(key)
    # next_copy[q]: the first copy at or after place q (copies if none)
    next_copy = np.full(len(lanes) * block + 1, copies, np.int64)
    next_copy[key] = np.arange(copies)
    next_copy = np.minimum.accumulate(next_copy[::-1])[::-1]
    key = np.append(key, -1)  # the "no copy" index reads a key that matches no place
    first = np.flatnonzero(np.concatenate(([True], (doc[1:] != doc[:-1]) | (n_of[1:] != n_of[:-1]))))
    end = np.append(first[1:], copies)
    lane_n, lane_doc = n_of[first], doc[first]
    total = np.zeros(len(first))
    recorded = np.zeros(base, bool)
    cur = first.copy()
    active = np.arange(len(first))
    group = np.append(group, 0)
    while len(active):
        at = cur[active]
        hit = recorded[group[at]]
        # Looking ahead pays for the per-call cost of numpy when few lanes are left (long repetitive
        # documents); with many lanes the calls are amortised and it would be wasted work.
        ahead = int(np.clip(_REPLAY_WORK // len(active), 1, len(_AHEAD)))
        if hit.any():
            _replay_hits(active[hit], at[hit], key, next_copy, end, group, chars, lane_n, recorded, cur, total,
                         ahead)
        if not hit.all():
            _replay_records(active[~hit], at[~hit], group, end, recorded, cur, ahead)
        active = active[cur[active] < end[active]]
    for n in DUP_N:
        mine = lane_n == n
        out[f"dup_{n}gram_char_frac"][lane_doc[mine]] = total[mine]


def _replay_hits(lanes: np.ndarray, at: np.ndarray, key: np.ndarray, next_copy: np.ndarray, end: np.ndarray,
                 group: np.ndarray, chars: np.ndarray, lane_n: np.ndarray, recorded: np.ndarray, cur: np.ndarray,
                 total: np.ndarray, width: int) -> None:
    """Lanes standing on a hit: add it, and the hits that follow at p + n, p + 2n, ... as long as each
    lands on a copy of a recorded key in the same lane (hits record nothing, so ``recorded`` holds for
    the whole run), up to ``width`` of them; move to the first copy at or after the place that ends the run."""
    here = key[at]
    n = lane_n[lanes]
    ahead = here[:, None] + n[:, None] * _AHEAD[:width]
    found = next_copy[ahead]
    run = (key[found] == ahead) & (found < end[lanes][:, None])
    run &= recorded[group[found]]
    np.logical_and.accumulate(run, axis=1, out=run)
    total[lanes] += chars[at] + (chars[np.minimum(found, len(chars) - 1)] * run).sum(axis=1)
    cur[lanes] = next_copy[here + n * (run.sum(axis=1) + 1)]


def _replay_records(lanes: np.ndarray, at: np.ndarray, group: np.ndarray, end: np.ndarray, recorded: np.ndarray,
                    cur: np.ndarray, width: int) -> None:
    """Lanes standing on a new key: record it, and the copies that follow it in the lane as long as each
    is a new key too (after a record the scan steps to the next copy), up to ``width`` of them; a key met
    twice in that window is recorded by its second copy, which ends the run."""
    window = at[:, None] + (_AHEAD[:width] - 1)
    inside = window < end[lanes][:, None]
    keys = group[np.minimum(window, len(group) - 1)]
    fresh = inside & ~recorded[keys]
    if width > 1:
        fresh &= ~((keys[:, :, None] == keys[:, None, :]) & _EARLIER[:width, :width]).any(axis=2)
    np.logical_and.accumulate(fresh, axis=1, out=fresh)
    recorded[keys[fresh]] = True
    cur[lanes] = at + fresh.sum(axis=1)


# ============================================================================ variant: gopher


def _gopher_fractions(buf: TextBuffer) -> dict[str, np.ndarray]:
    ng = _Ngrams(buf)
    out: dict[str, np.ndarray] = {}
    w = ng.words
    # lines: text.split("\n") without blank lines; a line holds a word unless it is blank
    nl = np.flatnonzero(buf.data == 10)
    nl_doc = np.searchsorted(buf.offsets, nl, side="right") - 1
    l_start, l_end, l_doc = _split_at(buf.offsets[:-1], buf.offsets[1:], nl, nl + 1, nl_doc)
    filled = np.searchsorted(w.starts, l_end) > np.searchsorted(w.starts, l_start)
    dups, dup_chars, units, unit_chars = _all_copies(buf, l_start[filled], l_end[filled], l_doc[filled])
    out["dup_line_frac"] = _ratio(dups, units)
    out["dup_line_char_frac"] = _ratio(dup_chars, unit_chars)

    # paragraphs: runs of non-blank lines, from the first one's start to the last one's end
    prev_blank = np.concatenate(([True], ~filled[:-1] | (l_doc[1:] != l_doc[:-1])))
    next_blank = np.concatenate((~filled[1:] | (l_doc[1:] != l_doc[:-1]), [True]))
    p_start = l_start[filled & prev_blank]
    p_end = l_end[filled & next_blank]
    p_doc = l_doc[filled & prev_blank]
    dups, dup_chars, units, unit_chars = _all_copies(buf, p_start, p_end, p_doc)
    out["dup_para_frac"] = _ratio(dups, units)
    out["dup_para_char_frac"] = _ratio(dup_chars, unit_chars)

    word_chars = (ng.cum_chars[w.doc_words[1:]] - ng.cum_chars[w.doc_words[:-1]]).astype(np.float64)
    repeats = None
    for n in (*TOP_N, *DUP_N):
        exists = ng.positions(n)
        if repeats is not None:
            exists &= repeats[: len(exists)] & repeats[1 : len(exists) + 1]
        pos = np.flatnonzero(exists)
        groups = _group(ng.tuple_key(pos, n))
        copies = pos[groups.order[groups.in_multi]]  # every copy of a repeated n-gram, group after group
        repeats = np.zeros(max(ng.n_words - n + 1, 0), bool)
        repeats[copies] = True
        if n in TOP_N:
            value = _top_coverage(ng, n, copies, groups.sizes[groups.sizes >= 2])
            out[f"top_{n}gram_char_frac"] = _ratio(value, word_chars)
        else:
            covered = _union_chars(ng, np.sort(copies), n)
            out[f"dup_{n}gram_char_frac"] = _ratio(covered, word_chars)
    empty = buf.doc_chars() == 0
    for v in out.values():
        v[empty] = np.nan
    return out


def _union_chars(ng: _Ngrams, starts: np.ndarray, n: int) -> np.ndarray:
    """Per document, the characters of the words covered by n-grams starting at ``starts`` (ascending),
    each word once. Windows of different documents never overlap, so one pass serves all documents."""
    if not len(starts):
        return np.zeros(ng.buf.n)
    stop = np.minimum(starts + n, np.append(starts[1:], starts[-1] + n))
    return ng.per_doc(starts, (ng.cum_chars[stop] - ng.cum_chars[starts]).astype(np.float64))


def _top_coverage(ng: _Ngrams, n: int, copies: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per document: among the most frequent repeated n-grams, the most characters covered by one's copies.

    ``copies`` lists the copies of each repeated n-gram, group after group, ascending inside a group.
    """
    value = np.zeros(ng.buf.n)
    if not len(sizes):
        return value
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    nxt = np.append(copies[1:], 0)
    last = bounds[1:] - 1
    nxt[last] = copies[last] + n  # the last copy of a group is not cut by the next group's first
    stop = np.minimum(copies + n, nxt)
    covered = np.add.reduceat(ng.cum_chars[stop] - ng.cum_chars[copies], bounds[:-1])
    first = copies[bounds[:-1]]
    by_pos = np.argsort(first)
    first, count, covered = first[by_pos], sizes[by_pos], covered[by_pos]
    doc = ng.doc[first]
    seg = np.flatnonzero(np.concatenate(([True], doc[1:] != doc[:-1])))
    seg_of = np.repeat(np.arange(len(seg)), np.diff(np.append(seg, len(doc))))
    best = np.maximum.reduceat(count, seg)
    covered = np.where(count == best[seg_of], covered, -1)
    value[doc[seg]] = np.maximum.reduceat(covered, seg)
    return value
