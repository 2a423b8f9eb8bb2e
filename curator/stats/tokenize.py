r"""Tokenizers for corpus n-gram statistics: text in, stable 64-bit token hashes out.

A tokenizer turns N documents (an Arrow string array) into one flat ``uint64`` array of token
hashes plus ``doc_offsets`` (int64, length N+1: the tokens of document i are
``hashes[doc_offsets[i]:doc_offsets[i+1]]``). Hashes are persisted and compared across runs, so
they are defined here bit for bit and never depend on a library's own hash function.

Tokenizers (``get_tokenizer(spec)``):

``word_v1`` (the default)
    1. Unicode lowercase: the full lowercase mapping of Rust's ``str::to_lowercase`` (used by
       polars), which equals Python's ``str.lower()`` (both apply SpecialCasing and the final
       sigma rule; they can differ only on code points encoded after the older Unicode version).
    2. A token is a maximal run of code points whose Unicode general category is a letter,
       a mark or a number (``[\p{L}\p{M}\p{N}]+``), with categories frozen at Unicode 14.0
       (``_WORD_RANGES``; decoded by ``word_char_ranges()``), so a newer Python or Rust never
       moves a token boundary. Everything else (whitespace, punctuation, apostrophes, symbols,
       control characters) separates tokens and is dropped. Tokens never cross documents.
       "Don't stop: 3.5 café!" -> ["don", "t", "stop", "3", "5", "café"].
    3. Token hash, over the token's UTF-8 bytes b (length L >= 1): split b into
       m = ceil(L / 8) little-endian 64-bit words w_0..w_{m-1}, the last one zero-padded; then
       ``s = (WORD_SEED + L * GOLDEN) mod 2**64``, and for each word ``s = mix64(s XOR w_k)``.
       The token hash is the final s.

``hf:PATH``
    A Hugging Face ``tokenizers`` tokenizer from ``PATH`` (a folder holding ``tokenizer.json``, or
    the file itself), loaded offline, with truncation and padding turned off and no special
    tokens added. Token hash: ``mix64(id XOR HF_SEED)`` of the integer id. Its name is
    ``hf:<folder name>@<first 12 hex digits of sha256(tokenizer.json)>``, so a changed vocabulary
    gets a new name. Token strings (for top-k texts) are the vocabulary's own strings
    (``id_to_token``: "Ġthe", "##ing").

``mix64`` is the splitmix64 finaliser (Stafford's Mix13)::

    z = (z XOR (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z XOR (z >> 27)) * 0x94D049BB133111EB
    z =  z XOR (z >> 31)                       (all mod 2**64)

Null documents count as empty documents.
"""
from __future__ import annotations

import base64
import hashlib
import zlib
from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.errors import InputError, UsageError
from curator.stats import kernels
from curator.stats.buffers import Buffers

__all__ = [
    "GOLDEN",
    "HF_SEED",
    "WORD_SEED",
    "HFTokenizer",
    "TokenBatch",
    "Tokenizer",
    "WordTokenizer",
    "get_tokenizer",
    "mix64",
    "tokenizer_choices",
    "word_char_ranges",
]

GOLDEN = 0x9E3779B97F4A7C15
WORD_SEED = 0x243F6A8885A308D3  # pi's fraction, so word and hf hashes differ by construction
HF_SEED = 0x13198A2E03707344
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_U64 = np.uint64

# Bytes per chunk of the byte-level passes and tokens per chunk of the hashing pass: small
# enough that numpy temporaries stay in L2, which makes these memory-bound passes 2-3x faster.
_BYTE_CHUNK = 1 << 18
_EMPTY_I64 = np.zeros(0, np.int64)
_TOKEN_CHUNK = 1 << 16

# Letter/mark/number code points of Unicode 14.0 as (gap, width) pairs of 781 ranges, i.e.
# start = previous end + gap, end = start + width; zlib + base64. Regenerate only with a new
# tokenizer version (word_v2): changing it moves token boundaries and so every stored hash.
_WORD_RANGES = (
    "eNqNVwuy5CgMu0qOgMEYuP/FVpJNXvfb3amprqRJQvyVZcf3c5799Pksnnw/DZf2dPy7/vXjaTScfK5nPmaPYfPD3dxp"
    "eMUCS3sGfry19KhrjfsHp80rG5vnJYkLm7nVG6xwv5vr4M0eUDeo29oTzxrU3viU71IqdFOIwS6urDXaNrmx6cmA0TJA"
    "llNKp4laL66s7x9ZKZh+dGqJigTd2vWAexvfZzx4jzendHXp6xI/v6XYe+RGvxuwapLdM/a4nYHbN/qfIrxMzZ88j7Ip"
    "fdPvXz7cV68PKX1+iQzlVbe9pHslggJcB7djG7fcTaPSnZabX/sLNzal9xq8C1WZmrT8yMYhwz/ePK/Rny8vCRg3ZV8K"
    "5wWd0xsqtvQz7wIkntnflapQ9Kd2NOlfEDtSLLAe/KclgOgNhfweddEzTHkxZZS8UpI9zT31OI8pu4cActIoXSJ9jRgG"
    "JmEFMziWXogEsSIwbsij5HHtd/GfT+XAjPskFGcog3JXztazpxCMoJmcF4wm641ZNsISSMI/z6pmGz9BN17tUZE0xYBR"
    "tMwby+zZGzKcGIujghGmrLgE1yfRhujSEvERXiRZsGxDmrK+U7aLHiAGKV/MovRtGUanIGUKWU5SI3Kkf9yAd8oGuYxR"
    "xSsy4mJ9ZUu8hwf9gwxynaSgNPYqvBANJh1EmopneHeIW1px0ik5Xiz5aspojcLlTEwBDIwBYnoY/xjAIWMIyztCsuh0"
    "y2L6xAvc38kOfVxq+NMBsWJ/X4J1Ad+VlpkIseK2LQDTRlXpeFkQIo7KTmVgCiXE6JIFhCU9mIcnWG+AZWzyMwRzwWxj"
    "h8pYtcFXdrJWk06q/SjEl+k9oTQFxsQYUdgTlj1BMASMTkWR2GeKhMUpnNso9HZKX6oCqhWVFPGNOj5i6tnZlO5eHE8p"
    "ZrZkUBepwhGHuSMUzDaJ+uBjT+7tWVO/+6A12Ig4hCovhDq8Y1U/qmCcI2nbsLW3r64OqXsrQuM94FXplIuqVat0KQxT"
    "vtA4VzWFurwywjhZhhE+EWGs0aSwfhIXwdVImltyyhnGVZHR/TyxSDNt1tKAj4b56w4wMqxdJrJ0j/a7idRXexuxj+pa"
    "6sg9hwjVCEPj57ocLM5kHGPRiJUHN+TTtyNlixZ7e2IGQRjJF/CV0ecQokroKpWg1ZPb49lGOCGKU3UwyameDNXPrOHK"
    "3kaLWldgkKQu8qU7qo2ejNqY1Qz5PFnpTk1b4Z3ZPqsfZUiI1125t16tiFR+W1CIjiI+uke/7W+zM0Wm7v/ni169c1R/"
    "lzxGWHwGv0ACyyVHlGus1Bz0YEcoemr3nugIV/5Mcg+jR/eQpB7Z2LLmWT07aCFJYlcp5oCxyrh+qi7VIg6TvXI0fPds"
    "tpkja1bSBqJDDgjXvKABNfG+L74VAKrznzBcyklInkxIXY+7a+rRsEzojqLqRi1HzZZAytH60GECN7gHdIBdbXJYgIJA"
    "vc8QRyZrol/sWvS3qya9jfS92lVT3AAKpJdi1e5nRhl6YhYDmU6Isg0C1jpMcXXUM3KaiDfIsCzuUM6cwfLRjoSHursa"
    "8clhcuFucj8NHILILIyFqgs5Vt7IPpSi2jNo3czFau88Pd5PD7vdQeTsNfas6/QqXHv1YLU+TR9djd3vl85frFbyxCQ9"
    "0nI/go+pcedUyOFUTI87yQc5r3/UDLa4iiN7j0aELjWI4mRLmfOdj+2WpJ3IvgSuXTPDdjpr4M7KGCH9mnCy7Hu8n1ZJ"
    "kqfEtvebbX5NJP3X/t/HfXZBMD7knfQ1ntvTjCUqOPW1tz5YODH0RcJlQ5uay8Wdc4Uwt3yRZxvCy4Y30Qr9YCJYFgxc"
    "H+cfzl2A6w=="
)


def mix64(x: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """Apply the splitmix64 finaliser to a uint64 array in place and return it (a bijection)."""
    if tmp is None:
        tmp = np.empty_like(x)
    np.right_shift(x, _U64(30), out=tmp)
    x ^= tmp
    x *= _MIX_1
    np.right_shift(x, _U64(27), out=tmp)
    x ^= tmp
    x *= _MIX_2
    np.right_shift(x, _U64(31), out=tmp)
    x ^= tmp
    return x


@cache
def word_char_ranges() -> tuple[tuple[int, int], ...]:
    """The inclusive code point ranges that form ``word_v1`` tokens (Unicode 14.0 L, M, N)."""
    numbers = [int(v) for v in zlib.decompress(base64.b64decode("".join(_WORD_RANGES))).split()]
    ranges = []
    end = 0
    for gap, width in zip(numbers[0::2], numbers[1::2]):
        start = end + gap
        end = start + width
        ranges.append((start, end))
    return tuple(ranges)


@cache
def _word_char_table() -> np.ndarray:
    table = np.zeros(0x110000, dtype=bool)
    for start, end in word_char_ranges():
        table[start : end + 1] = True
    return table


# Per token length (capped at 8): the mask that keeps the token's bytes of its first word.
_WORD_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_ASCII_BIT5 = _U64(0x2020202020202020)
# (WORD_SEED + L * GOLDEN) mod 2**64 for L = 0..8: the initial state of tokens of <= 8 bytes.
_SHORT_SEEDS = np.array([(WORD_SEED + k * GOLDEN) & 0xFFFFFFFFFFFFFFFF for k in range(9)], dtype=np.uint64)


def _lowercase_ascii_words(w: np.ndarray, tmp: np.ndarray) -> None:
    # Inside a token every ASCII byte is a letter or a digit, and for those lowercase is "set
    # bit 5" (digits already have it). Bytes >= 0x80 must keep bit 5: (~w >> 2) moves each
    # byte's inverted bit 7 onto its bit 5.
    np.invert(w, out=tmp)
    tmp >>= _U64(2)
    tmp &= _ASCII_BIT5
    w |= tmp


class TokenBatch(ABC):
    """Tokens of one batch of documents: flat ``hashes`` (uint64) and ``doc_offsets`` (int64)."""

    hashes: np.ndarray
    doc_offsets: np.ndarray

    @abstractmethod
    def strings(self, positions: np.ndarray) -> list[str]:
        """The token strings at the given flat positions (only used for a few hundred tokens)."""


class Tokenizer(ABC):
    """Turns documents into token hashes. ``name`` is what the statistics tables record."""

    name: str

    @abstractmethod
    def encode(self, texts: pa.Array | pa.ChunkedArray) -> TokenBatch:
        """Tokenize N documents (a string array; nulls are empty documents)."""

    def encode_into(self, texts: pa.Array | pa.ChunkedArray, buffers: Buffers) -> TokenBatch:
        """Like ``encode``, but the batch's arrays may lie in ``buffers`` (owned by the caller and
        reused from call to call, which saves allocating them anew): the batch is then valid only
        until the next call with the same buffers. The default ignores them."""
        return self.encode(texts)

    def tokens(self, text: str) -> list[str]:
        """The tokens of one document, as strings (for inspection and tests, not hot paths)."""
        batch = self.encode(pa.array([text], pa.large_string()))
        return batch.strings(np.arange(len(batch.hashes)))


def _as_large_string(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not isinstance(texts, pa.Array):
        raise UsageError(f"texts must be a pyarrow Array or ChunkedArray of strings, got {type(texts).__name__}")
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)
            or pa.types.is_string_view(texts.type)):
        raise InputError(f"texts must be strings, got arrow type {texts.type}")
    if not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.large_string())
    # Null slots may hold arbitrary bytes in Arrow, so they are replaced, not just skipped.
    if texts.null_count:
        texts = texts.fill_null("")
    return texts


def _buffers(arr: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets rebased to 0 (int64, N+1) and the data bytes they index (uint8), zero-copy."""
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=n + 1, offset=8 * arr.offset)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    return offsets - offsets[0], data


def _chunks(n: int, size: int):
    for a in range(0, n, size):
        yield a, min(n, a + size)


def _non_ascii_docs(offsets: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the documents that hold at least one byte >= 0x80, and the positions of their
    code points' lead bytes (>= 0xC0)."""
    found = []
    for a, b in _chunks(len(data), _BYTE_CHUNK):
        seg = data[a:b]
        if seg.max(initial=0) >= 0xC0:
            found.append(np.flatnonzero(seg >= 0xC0) + a)
    if not found:
        return _EMPTY_I64, _EMPTY_I64
    # Every byte >= 0x80 of valid UTF-8 belongs to a code point whose lead byte is >= 0xC0.
    lead = np.concatenate(found)
    return np.unique(np.searchsorted(offsets, lead, side="right") - 1), lead


def _non_ascii_compiled(offsets: np.ndarray, data: np.ndarray, buffers: Buffers | None) -> tuple[np.ndarray, np.ndarray]:
    """``_non_ascii_docs`` in one compiled pass (the lead positions may lie in ``buffers``)."""
    def room(n: int) -> np.ndarray:
        return np.empty(n, np.int64) if buffers is None else buffers.at_least("tok.lead", n, np.int64)

    lead = room(1 << 12)
    docs, n = kernels.non_ascii(data, offsets, lead)
    if n > len(lead):  # more lead bytes than room: again, with room for all
        lead = room(n)
        docs, n = kernels.non_ascii(data, offsets, lead)
    return docs, lead[:n]


def _code_points(data: np.ndarray, lead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The code points that start at the lead bytes ``lead`` (>= 0xC0), and their UTF-8 widths."""
    # Arrow guarantees valid UTF-8, so every continuation byte exists; clip only to stay in range.
    last = len(data) - 1
    b0 = data[lead].astype(np.int64)
    b1 = data[np.minimum(lead + 1, last)].astype(np.int64) & 0x3F
    b2 = data[np.minimum(lead + 2, last)].astype(np.int64) & 0x3F
    b3 = data[np.minimum(lead + 3, last)].astype(np.int64) & 0x3F
    width = 2 + (b0 >= 0xE0) + (b0 >= 0xF0)
    cp = np.where(width == 2, ((b0 & 0x1F) << 6) | b1,
                  np.where(width == 3, ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                           ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3))
    return np.minimum(cp, 0x10FFFF), width


@cache
def _case_tables() -> tuple[np.ndarray, np.ndarray]:
    """(checked, differs) per code point: has it been compared, and do Arrow's and polars'
    lowercase mappings of it differ? Filled in lazily (see ``_lowercase_docs``)."""
    checked = np.zeros(0x110000, bool)
    differs = np.zeros(0x110000, bool)
    # Full mapping vs Arrow's one-to-one mapping: U+0130 (İ -> i + U+0307) and the final sigma
    # (U+03A3 lowers to U+03C2 at the end of a word: context that Arrow does not look at).
    differs[[0x130, 0x3A3]] = True
    checked[[0x130, 0x3A3]] = True
    return checked, differs


def _lowercase_docs(arr: pa.LargeStringArray, docs: np.ndarray, lead: np.ndarray) -> pa.LargeStringArray:
    """Full Unicode lowercase of the listed documents (``lead``: their lead bytes, see
    ``_non_ascii_docs``); ASCII-only ones are lowered while hashing.

    The definition is Rust's ``str::to_lowercase`` (polars). Arrow's ``utf8_lower`` gives the same
    result several times faster on any text whose code points it maps alike, which is every code
    point but U+0130, U+03A3 (final sigma) and those that only one of the two libraries' Unicode
    versions knows: each code point is compared once per process, on first sight, and documents
    holding one that differs (rare) go through polars.
    """
    offsets, data = _buffers(arr)
    cp, _ = _code_points(data, lead)
    checked, differs = _case_tables()
    new = np.unique(cp[~checked[cp]])
    if len(new):
        import polars as pl

        chars = [chr(c) for c in new.tolist()]
        arrow = pc.utf8_lower(pa.array(chars, pa.large_string())).to_pylist()
        rust = pl.Series(chars, dtype=pl.String).str.to_lowercase().to_list()
        differs[new] = [x != y for x, y in zip(arrow, rust)]
        checked[new] = True
    slow = np.unique(np.searchsorted(offsets, lead[differs[cp]], side="right") - 1)
    if len(slow):
        import polars as pl

        fast = np.setdiff1d(docs, slow, assume_unique=True)
        parts = [pc.utf8_lower(arr.take(pa.array(fast))),
                 pl.Series(arr.take(pa.array(slow))).str.to_lowercase().to_arrow().cast(pa.large_string())]
        lowered = pa.concat_arrays([p.combine_chunks() if isinstance(p, pa.ChunkedArray) else p for p in parts])
        lowered = lowered.take(pa.array(np.argsort(np.concatenate([fast, slow]), kind="stable")))
    else:
        lowered = pc.utf8_lower(arr.take(pa.array(docs)))
    mask = np.zeros(len(arr), dtype=bool)
    mask[docs] = True
    out = pc.replace_with_mask(arr, pa.array(mask), lowered)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _word_bytes(data: np.ndarray, has_non_ascii: bool, out: np.ndarray | None = None) -> np.ndarray:
    """Per byte: is it part of a token (a letter, mark or number code point)? Into ``out``
    (bool, len(data)) when given."""
    n = len(data)
    is_word = np.empty(n, dtype=bool) if out is None else out
    t1 = np.empty(min(n, _BYTE_CHUNK), np.uint8)
    t2 = np.empty_like(t1)
    c1 = np.empty(len(t1), bool)
    for a, b in _chunks(n, _BYTE_CHUNK):
        m = b - a
        seg = data[a:b]
        # ASCII letters of either case ((b | 0x20) in a..z) and digits; every byte >= 0x80
        # fails both tests and is decided below.
        np.bitwise_or(seg, 0x20, out=t1[:m])
        t1[:m] -= np.uint8(0x61)
        np.less(t1[:m], 26, out=c1[:m])
        np.subtract(seg, np.uint8(0x30), out=t2[:m])
        np.less(t2[:m], 10, out=is_word[a:b])
        is_word[a:b] |= c1[:m]
    if has_non_ascii:
        _mark_non_ascii(data, is_word)
    return is_word


def _mark_non_ascii(data: np.ndarray, is_word: np.ndarray) -> None:
    leads = [np.flatnonzero(data[a:b] >= 0xC0) + a for a, b in _chunks(len(data), _BYTE_CHUNK)
             if data[a:b].max(initial=0) >= 0xC0]
    if not leads:
        return
    lead = np.concatenate(leads)
    cp, width = _code_points(data, lead)
    word = _word_char_table()[cp]
    for k in range(4):
        sel = width > k
        is_word[lead[sel] + k] = word[sel]


def _token_bounds(is_word: np.ndarray, offsets: np.ndarray,
                  buffers: Buffers | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end byte of every token (int32 below 2 GiB of text, else int64), and the
    per-document token offsets (int64; starts and ends in ``buffers`` when given).

    A token is a maximal run of word bytes inside one document: a document start ends the
    previous token even when both neighbouring bytes are word bytes.
    """
    n = len(is_word)
    doc_tok = np.zeros(len(offsets), np.int64)
    if n == 0:
        return _EMPTY_I64, _EMPTY_I64, doc_tok
    # A token takes a byte and is followed by a separator byte or a document start, so there
    # are at most n / 2 + 1 + documents of them. Pages never written are never touched: the
    # generous size costs address space only, and no concatenation copies the results afterwards.
    bound = min(n, n // 2 + len(offsets)) + 1
    # Byte positions fit 32 bits in any batch below 2 GiB of text: half the memory and traffic.
    dtype = np.int32 if n < 2**31 - 1 else np.int64
    if buffers is None:
        starts = np.empty(bound, dtype)
        ends = np.empty(bound, dtype)
        flag = np.empty(min(n, _BYTE_CHUNK), bool)
    else:
        starts = buffers.get("tok.starts", bound, dtype)
        ends = buffers.get("tok.ends", bound, dtype)
        flag = buffers.get("tok.flag", min(n, _BYTE_CHUNK), bool)
    count = 0  # starts so far; ends lag behind while a token runs over a chunk edge
    n_ends = 0
    lo = 0
    for a, b in _chunks(n, _BYTE_CHUNK):
        m = b - a
        w = is_word[a:b]
        f = flag[:m]
        hi = int(np.searchsorted(offsets, b, side="left"))
        doc_starts = offsets[lo:hi] - a  # document starts inside [a, b); repeats = empty docs
        # A token starts at a word byte after a non-word byte, or at a document start.
        np.greater(w[1:], w[:-1], out=f[1:])
        f[0] = w[0] and not (a > 0 and is_word[a - 1])
        f[doc_starts] = w[doc_starts]
        k = int(np.count_nonzero(f))
        st = starts[count : count + k]
        st[:] = np.flatnonzero(f)
        doc_tok[lo:hi] = count + np.searchsorted(st, doc_starts)
        st += a
        count += k
        # A token ends (exclusive) before a non-word byte or before a document start.
        np.greater(w[:-1], w[1:], out=f[:-1])
        f[-1] = w[-1] and not (b < n and is_word[b])
        last = doc_starts[doc_starts > 0] - 1
        f[last] = w[last]
        if hi < len(offsets) and offsets[hi] == b:
            f[-1] = w[-1]
        k = int(np.count_nonzero(f))
        en = ends[n_ends : n_ends + k]
        en[:] = np.flatnonzero(f)
        en += a + 1
        n_ends += k
        lo = hi
    doc_tok[lo:] = count
    return starts[:count], ends[:count], doc_tok


def _hash_word_tokens(data: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                      buffers: Buffers | None = None) -> np.ndarray:
    """The token hashes (module docstring) of the tokens data[starts:ends] (in ``buffers`` when
    given)."""
    n = len(data)
    count = len(starts)
    out = np.empty(count, np.uint64) if buffers is None else buffers.get("tok.hashes", count, np.uint64)
    if count == 0:
        return out
    # An unaligned 8-byte window at every byte offset (a zero-padded copy of the tail serves the
    # last 7 bytes), so the first word of every token is one gather.
    tail_start = max(0, n - 8)
    padded_tail = np.zeros(16, np.uint8)
    padded_tail[: n - tail_start] = data[tail_start:]
    win = (np.ndarray((n - 7,), dtype="<u8", buffer=data, strides=(1,)) if n >= 8
           else np.zeros(0, np.uint64))
    tail_win = np.ndarray((9,), dtype="<u8", buffer=padded_tail, strides=(1,))
    chunk = min(count, _TOKEN_CHUNK)
    if buffers is None:
        tmp = np.empty(chunk, np.uint64)
        length = np.empty(chunk, np.int64)
    else:
        tmp = buffers.get("tok.tmp", chunk, np.uint64)
        length = buffers.get("tok.length", chunk, np.int64)
    longs = []
    for a, b in _chunks(count, _TOKEN_CHUNK):
        m = b - a
        capped = np.subtract(ends[a:b], starts[a:b], out=length[:m])
        if capped.max() > 8:
            longs.append(np.flatnonzero(capped > 8) + a)
            np.minimum(capped, 8, out=capped)
        w = _gather_words(win, tail_win, tail_start, starts[a:b])
        _lowercase_ascii_words(w, tmp[:m])
        w &= _WORD_MASKS[capped]
        # Seed by length from a table; tokens longer than 8 bytes are redone below.
        s = out[a:b]
        np.bitwise_xor(_SHORT_SEEDS[capped], w, out=s)
        mix64(s, tmp[:m])
    if longs:
        long = np.concatenate(longs)
        st = starts[long]
        ln = ends[long] - st
        w = _gather_words(win, tail_win, tail_start, st)
        _lowercase_ascii_words(w, np.empty_like(w))
        h = ln.astype(np.uint64) * _U64(GOLDEN)
        h += _U64(WORD_SEED)
        h ^= w
        mix64(h)
        # Word k of each token that has one; the active set shrinks every round.
        active = np.arange(len(long))
        k = 1
        while True:
            active = active[ln[active] > 8 * k]
            if not len(active):
                break
            if len(active) <= _FEW_TOKENS and int(ln[active].max()) > 8 * (k + _PY_TAIL_WORDS):
                # A few very long tokens (a base64 blob, a run of digits): one numpy round per 8 bytes would
                # cost ~70 us each (9 s for a 1 MB token); the chain is sequential, so finish it in Python ints.
                for i in active:
                    h[i] = _finish_long_token(data, int(st[i]) + 8 * k, int(ln[i]) - 8 * k, int(h[i]))
                break
            w = _gather_words(win, tail_win, tail_start, st[active] + 8 * k)
            _lowercase_ascii_words(w, np.empty_like(w))
            w &= _WORD_MASKS[np.minimum(ln[active] - 8 * k, 8)]
            hk = h[active]
            hk ^= w
            h[active] = mix64(hk)
            k += 1
        out[long] = h
    return out


# The Python finish for long tokens: when at most this many tokens remain with more than this many words.
_FEW_TOKENS = 4
_PY_TAIL_WORDS = 256
_M64 = (1 << 64) - 1


def _finish_long_token(data: np.ndarray, start: int, length: int, h: int) -> int:
    """The rest of one token's hash chain (words from byte `start`, `length` bytes), exactly as the numpy
    rounds compute it: lowercase ASCII, zero-pad the last word, h = mix64(h ^ word) per word."""
    raw = data[start:start + length]
    padded = np.zeros(-(-length // 8) * 8, np.uint8)
    padded[:length] = raw
    padded[:length] |= (~raw >> 2) & 0x20  # the per-byte form of _lowercase_ascii_words
    m1, m2 = int(_MIX_1), int(_MIX_2)
    for w in padded.view("<u8").tolist():
        x = h ^ w
        x ^= x >> 30
        x = (x * m1) & _M64
        x ^= x >> 27
        x = (x * m2) & _M64
        h = x ^ (x >> 31)
    return h


def _gather_words(win: np.ndarray, tail_win: np.ndarray, tail_start: int, at: np.ndarray) -> np.ndarray:
    """The 8 bytes at each (ascending) position, zero-padded past the end of the data."""
    limit = len(win)
    if not len(at) or at[-1] < limit:
        return win[at]
    inside = at < limit
    w = np.empty(len(at), np.uint64)
    w[inside] = win[at[inside]]
    w[~inside] = tail_win[at[~inside] - tail_start]
    return w


class _WordBatch(TokenBatch):
    def __init__(self, data: np.ndarray, starts: np.ndarray, ends: np.ndarray, hashes: np.ndarray,
                 doc_offsets: np.ndarray) -> None:
        self._data = data
        self._starts = starts
        self._ends = ends
        self.hashes = hashes
        self.doc_offsets = doc_offsets

    def strings(self, positions: np.ndarray) -> list[str]:
        data = self._data
        # ASCII-only documents were not lowered in the buffer (their hash lowers them), so lower
        # here; lowering an already lowered token changes nothing.
        return [data[s:e].tobytes().decode("utf-8").lower()
                for s, e in zip(self._starts[positions].tolist(), self._ends[positions].tolist())]


class WordTokenizer(Tokenizer):
    """``word_v1``: lowercased runs of Unicode letters, marks and digits (see the module doc)."""

    name = "word_v1"

    def encode(self, texts: pa.Array | pa.ChunkedArray) -> TokenBatch:
        return self._encode(texts, None)

    def encode_into(self, texts: pa.Array | pa.ChunkedArray, buffers: Buffers) -> TokenBatch:
        return self._encode(texts, buffers)

    def _encode(self, texts: pa.Array | pa.ChunkedArray, buffers: Buffers | None) -> TokenBatch:
        arr = _as_large_string(texts)
        offsets, data = _buffers(arr)
        if kernels.LIB is not None:
            non_ascii, lead = _non_ascii_compiled(offsets, data, buffers)
        else:
            non_ascii, lead = _non_ascii_docs(offsets, data)
        if len(non_ascii):
            arr = _lowercase_docs(arr, non_ascii, lead)
            offsets, data = _buffers(arr)
        if kernels.LIB is not None:
            return _encode_compiled(data, offsets, len(non_ascii) > 0, buffers)
        out = None if buffers is None else buffers.get("tok.is_word", len(data), bool)
        is_word = _word_bytes(data, len(non_ascii) > 0, out)
        starts, ends, doc_offsets = _token_bounds(is_word, offsets, buffers)
        del is_word
        hashes = _hash_word_tokens(data, starts, ends, buffers)
        return _WordBatch(data, starts, ends, hashes, doc_offsets)


def _encode_compiled(data: np.ndarray, offsets: np.ndarray, has_non_ascii: bool,
                     buffers: Buffers | None) -> _WordBatch:
    """The same tokens and hashes as the numpy passes, in one compiled walk (``kernels``)."""
    bound = len(data) // 2 + len(offsets) + 1
    if buffers is None:
        buffers = Buffers()
    starts = buffers.get("tok.starts", bound, np.int64)
    ends = buffers.get("tok.ends", bound, np.int64)
    hashes = buffers.get("tok.hashes", bound, np.uint64)
    doc_tok = np.empty(len(offsets), np.int64)
    table = _word_char_table().view(np.uint8) if has_non_ascii else None
    count = kernels.tokenize_words(np.ascontiguousarray(data), np.ascontiguousarray(offsets), table, starts, ends,
                                   hashes, doc_tok)
    return _WordBatch(data, starts[:count], ends[:count], hashes[:count], doc_tok)


class _HFBatch(TokenBatch):
    def __init__(self, tokenizer, ids: np.ndarray, hashes: np.ndarray, doc_offsets: np.ndarray) -> None:
        self._tokenizer = tokenizer
        self._ids = ids
        self.hashes = hashes
        self.doc_offsets = doc_offsets

    def strings(self, positions: np.ndarray) -> list[str]:
        return [self._tokenizer.id_to_token(i) for i in self._ids[positions].tolist()]


class HFTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers`` tokenizer from a local ``tokenizer.json`` (no download)."""

    def __init__(self, path: str | Path) -> None:
        try:
            from tokenizers import Tokenizer as _HFTok
        except ImportError as exc:  # pragma: no cover - tokenizers is a dependency
            raise UsageError("install tokenizers to use hf: tokenizers") from exc
        p = Path(path)
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.is_file():
            raise UsageError(f"hf tokenizer: no tokenizer.json at '{path}' (expected a folder holding "
                             "tokenizer.json, or the file itself)")
        raw = file.read_bytes()
        try:
            tok = _HFTok.from_str(raw.decode("utf-8"))
        except Exception as exc:
            raise UsageError(f"hf tokenizer: cannot load '{file}': {exc}") from exc
        # Shipped tokenizer.json files often enable truncation (MiniLM: 128) or padding, which
        # would silently cut or pad documents.
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        self.path = file
        self.name = f"hf:{file.resolve().parent.name}@{hashlib.sha256(raw).hexdigest()[:12]}"

    def encode(self, texts: pa.Array | pa.ChunkedArray) -> TokenBatch:
        from itertools import chain

        docs = _as_large_string(texts).to_pylist()
        # tokenizers returns one Encoding per document; there is no columnar API to avoid that.
        encodings = self._tok.encode_batch(docs, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        doc_offsets = np.zeros(len(encodings) + 1, np.int64)
        np.cumsum(lengths, out=doc_offsets[1:])
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.uint64,
                          count=int(doc_offsets[-1]))
        hashes = ids ^ _U64(HF_SEED)
        mix64(hashes)
        return _HFBatch(self._tok, ids, hashes, doc_offsets)


def tokenizer_choices() -> list[str]:
    return ["word_v1", "hf:PATH"]


def get_tokenizer(spec: str | Tokenizer = "word_v1") -> Tokenizer:
    """``word_v1`` or ``hf:PATH`` (PATH: a folder holding tokenizer.json, or the file); a
    Tokenizer instance is returned as it is."""
    if isinstance(spec, Tokenizer):
        return spec
    if spec == "word_v1":
        return WordTokenizer()
    if isinstance(spec, str) and spec.startswith("hf:") and len(spec) > 3:
        return HFTokenizer(spec[3:])
    raise UsageError(f"unknown tokenizer '{spec}'; valid choices: {', '.join(tokenizer_choices())}")
