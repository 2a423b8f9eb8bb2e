"""The compiled loops of the statistics engine (``_kernels.c``), loaded with ctypes.

Why compiled code: the engine's hot paths walk every byte and every n-gram occurrence of the
corpus. numpy does each step as a separate whole-array pass (classify bytes, find token bounds,
gather words, hash; per block: gather, compare, compress, count...), and at ingest sizes those
passes, not the arithmetic, are what costs. The C loops fuse them into one pass each.

The library is optional. ``hatch_build.py`` compiles ``_kernels.c`` with the system C compiler
when the package is installed (into the wheel, or beside the source in an editable install); no
compiler, a failed build, or ``CURATOR_KERNELS=0`` in the environment leave ``LIB`` as None and
the engine uses its numpy code, which computes the very same numbers (the tests compare the two).
``status()`` says which is in use and why.

Every function here takes C-contiguous numpy arrays of the documented dtypes (nothing is checked
per call, since they are called per block). Most write into arrays the caller allocated and return
counts; ``md5_hex``, ``newlines``, ``non_ascii`` and ``top_rows`` return arrays of their own. The
same library also serves the ingest side: the reader's newline index and the md5 loop of the ids.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

# Must equal CURATOR_KERNELS_ABI in _kernels.c: a library built from another version is refused.
ABI = 7
_PATH = Path(__file__).with_name("_kernels.so")

_P = ctypes.c_void_p
_I = ctypes.c_int64
_U = ctypes.c_uint64
_SIGNATURES = {
    "curator_kernels_abi": [],
    "curator_tokenize_words": [_P, _I, _P, _I, _P, _P, _P, _P, _P],
    "curator_md5_hex": [_P, _P, _I, _U, _P],
    "curator_newlines": [_P, _I, _P, _I],
    "curator_non_ascii": [_P, _P, _I, _P, _P, _I, _P],
    "curator_block_keys": [_P, _P, _P, _I, _I, _U, _P, _U, _P],
    "curator_block_occurrences": [_P, _I, _U, _P, _P, _P, _P, _P, _P, _P, _P],
    "curator_block_rows": [_P, _I, _U, _P, _P, _P, _P, _P, _P, _P, _P, _P],
    "curator_run_counts": [_P, _I, _P, _P],
    "curator_gather": [_P, _P, _P, _I, _P],
    "curator_fold_rows": [_P, _P, _I, _U, _U, _P, _U, _P, _P],
    "curator_top_rows": [_P, _P, _I, _I, _U, _P, _P, _P],
}


def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("CURATOR_KERNELS", "1") == "0":
        return None, "numpy (CURATOR_KERNELS=0)"
    if not _PATH.is_file():
        return None, f"numpy (no compiled kernels at {_PATH}: the package was installed without a C compiler)"
    try:
        lib = ctypes.CDLL(str(_PATH))
        for name, args in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = _I
    except (OSError, AttributeError) as exc:
        return None, f"numpy (cannot load {_PATH}: {exc})"
    abi = lib.curator_kernels_abi()
    if abi != ABI:
        return None, f"numpy ({_PATH} is ABI {abi}, this code needs {ABI}: reinstall the package to rebuild it)"
    return lib, f"compiled ({_PATH})"


LIB, _STATUS = _load()


def status() -> str:
    """Which implementation the engine uses, and why."""
    return _STATUS


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def tokenize_words(data: np.ndarray, offsets: np.ndarray, cp_word: np.ndarray | None, starts: np.ndarray,
                   ends: np.ndarray, hashes: np.ndarray, doc_tok: np.ndarray) -> int:
    """word_v1 tokens of the documents ``data[offsets[d]:offsets[d+1]]`` (uint8 data, int64 offsets;
    ``cp_word``: uint8 per code point, or None for all-ASCII data) into int64 ``starts``/``ends``,
    uint64 ``hashes`` (each of at least len(data) // 2 + len(offsets) elements) and int64
    ``doc_tok`` (len(offsets)); returns the token count."""
    return LIB.curator_tokenize_words(_ptr(data), len(data), _ptr(offsets), len(offsets) - 1,
                                      None if cp_word is None else _ptr(cp_word), _ptr(starts), _ptr(ends),
                                      _ptr(hashes), _ptr(doc_tok))


def md5_hex(data: np.ndarray, offsets: np.ndarray, md5: int) -> np.ndarray:
    """The md5 hex digest of each string ``data[offsets[i]:offsets[i+1]]`` (uint8 data, int64 offsets), 32
    bytes each, back to back (uint8); ``md5`` is the address of a function with OpenSSL's ``MD5()`` signature."""
    n = len(offsets) - 1
    out = np.empty(32 * n, np.uint8)
    LIB.curator_md5_hex(_ptr(data), _ptr(offsets), n, md5, _ptr(out))
    return out


def newlines(data: np.ndarray) -> np.ndarray:
    """Positions (int64, ascending) of the newline bytes of the uint8 array ``data``."""
    out = np.empty(len(data) // 64 + 1024, np.int64)  # lines of text are longer than 64 bytes, mostly
    count = LIB.curator_newlines(_ptr(data), len(data), _ptr(out), len(out))
    if count > len(out):
        out = np.empty(count, np.int64)
        LIB.curator_newlines(_ptr(data), len(data), _ptr(out), len(out))
    return out[:count]


def non_ascii(data: np.ndarray, offsets: np.ndarray, lead: np.ndarray) -> tuple[np.ndarray, int]:
    """The documents ``data[offsets[d]:offsets[d+1]]`` that hold a byte >= 0x80 (int64, ascending), and how
    many lead bytes (>= 0xC0) they hold: their positions fill ``lead`` (int64) as far as it has room."""
    ndocs = len(offsets) - 1
    docs = np.empty(max(ndocs, 0), np.int64)
    out = np.zeros(1, np.int64)
    nd = LIB.curator_non_ascii(_ptr(data), _ptr(offsets), ndocs, _ptr(docs), _ptr(lead), len(lead), _ptr(out))
    return docs[:nd], int(out[0])


def block_keys(prev: np.ndarray, s: np.ndarray, tok: np.ndarray, n: int, mult: int, doc_end: np.ndarray, low: int,
               key: np.ndarray | None) -> int:
    """Advance the block's values ``s[:len(s)]`` to n (from ``prev``) and build its sort keys into ``key``
    (or only the values, with key None); ``doc_end``: int64 end position of each document of the block.
    Returns how many positions start no n-gram (see ``_kernels.c``)."""
    return LIB.curator_block_keys(_ptr(prev), _ptr(s), _ptr(tok), len(s), n, mult, _ptr(doc_end), int(low),
                                  None if key is None else _ptr(key))


def block_occurrences(order: np.ndarray, low: int, s: np.ndarray, doc: np.ndarray, hs: np.ndarray,
                      repeats: np.ndarray, top_v: np.ndarray, top_c: np.ndarray, top_first: np.ndarray,
                      out: np.ndarray) -> bool:
    """The occurrence form of a block from its sorted keys ``order`` (masked with ``low`` in place: they
    are positions afterwards; see ``_kernels.c``); False when the order needs repair."""
    return LIB.curator_block_occurrences(_ptr(order), len(order), int(low), _ptr(s), _ptr(doc), _ptr(hs), _ptr(repeats),
                                         _ptr(top_v), _ptr(top_c), _ptr(top_first), _ptr(out)) == 0


def block_rows(order: np.ndarray, low: int, s: np.ndarray, doc: np.ndarray, singles: np.ndarray,
               single_pos: np.ndarray, multi: np.ndarray, count: np.ndarray, doc_freq: np.ndarray, first: np.ndarray,
               out: np.ndarray) -> bool:
    """The row form of a block from its sorted keys, as ``block_occurrences``; False when the order needs
    repair."""
    return LIB.curator_block_rows(_ptr(order), len(order), int(low), _ptr(s), _ptr(doc), _ptr(singles), _ptr(single_pos),
                                  _ptr(multi), _ptr(count), _ptr(doc_freq), _ptr(first), _ptr(out)) == 0


def run_counts(sorted_values: np.ndarray, values: np.ndarray, counts: np.ndarray) -> int:
    """Distinct values of a sorted uint64 array and their counts; returns how many."""
    return LIB.curator_run_counts(_ptr(sorted_values), len(sorted_values), _ptr(values), _ptr(counts))


def addresses(arrays: list[np.ndarray]) -> np.ndarray:
    """The data addresses of ``arrays`` (uint64), for ``gather``; the arrays must outlive its calls."""
    return np.array([a.ctypes.data for a in arrays], np.uint64)


def gather(addrs: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray) -> int:
    """Copy the slices [lo[i], hi[i]) of the arrays of 8-byte elements at ``addrs`` (``addresses``) one
    after another into ``out``; returns the elements written. lo, hi: contiguous int64."""
    return LIB.curator_gather(_ptr(addrs), _ptr(lo), _ptr(hi), len(addrs), _ptr(out))


def fold_rows(v: np.ndarray, c: np.ndarray, salt: int, buckets: int, hist: np.ndarray, limit: int, h: np.ndarray,
              keep: np.ndarray) -> int:
    """Final hashes ``h = mix64(v ^ salt)``, ``hist[h % buckets] += c`` (int64 hist) and the indices of the
    rows with h < limit (none for limit 0) into ``keep``; returns how many. v uint64, c int64, h and keep
    as long as v."""
    return LIB.curator_fold_rows(_ptr(v), _ptr(c), len(v), salt, buckets, _ptr(hist), limit, _ptr(h), _ptr(keep))


def top_rows(values: np.ndarray, counts: np.ndarray, k: int, salt: int) -> np.ndarray:
    """Indices (ascending) of the k rows of highest count, ties by the smallest ``mix64(value ^ salt)``:
    ``sorting._top_selection`` for distinct uint64 ``values`` and int64 ``counts``, len > k >= 1."""
    m = len(values)
    out = np.empty(k, np.int64)
    # One scratch array for both of the kernel's scratch arguments, which it never uses at once
    # (held here: a pointer does not keep its array alive).
    tmp = np.empty(m, np.uint64)
    LIB.curator_top_rows(_ptr(values), _ptr(counts), m, k, salt, _ptr(out), _ptr(tmp), _ptr(tmp))
    return out
