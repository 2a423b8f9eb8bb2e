"""Content addressing, vectorised in DuckDB.

- `sample_id` = md5 hex of `generation`, `external_id`, `prompt_id` and `text_hash` (below), joined by
  the ASCII unit separator (U+001F), NULLs as empty strings; hashing the hashes, not the text again,
  reads every byte of the text once. Same generation + same content = same id, so re-ingesting a
  file adds nothing; the same text in another generation is another sample. The prompt is part of the
  content because a sample is a (prompt, completion) pair: the same answer to two questions is two
  samples. A file's own id field (`--id-field`) is part of it too, so deliberately repeated completions
  (k identical samples of one prompt) stay distinct when the file numbers them.
- `text_hash` = md5 hex of the text alone: the key for deduplication across generations.
- `prompt_id` = md5 hex of the prompt text (NULL without a prompt): groups the k samples of one prompt.

md5 is used as a content address, not for security. DuckDB computes it in C++ over the Arrow batch;
where the compiled kernels and the one-shot `MD5()` of the OpenSSL library that Python's hashlib uses are both
available, a compiled loop (`curator.stats.kernels`) calls that instead, for all three ids: OpenSSL's assembly
is a third faster than DuckDB's md5 on the texts, and the digests are the same (tested).
`id_numbers` reads ids back as 128-bit numbers (for the seen-id set of ingest, edit and generate, and the
token editor's per-document noise keys).
"""
from __future__ import annotations

import ctypes
import hashlib
from functools import cache

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.stats import kernels

_SQL = """
WITH h AS (
  SELECT external_id, md5(text) AS text_hash, CASE WHEN prompt IS NULL THEN NULL ELSE md5(prompt) END AS prompt_id
  FROM batch
)
SELECT
  md5(concat($g::VARCHAR, chr(31), coalesce(external_id, ''), chr(31), coalesce(prompt_id, ''), chr(31), text_hash))
    AS sample_id,
  text_hash,
  prompt_id
FROM h
"""


# Shared-library names of OpenSSL's libcrypto, newest first (the one hashlib loaded is found first).
_LIBCRYPTO = ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so", "libcrypto.3.dylib", "libcrypto.dylib")


@cache
def openssl_md5() -> int | None:
    """The address of OpenSSL's one-shot ``MD5()``, checked against hashlib; None where the compiled
    kernels or the function are missing (a build without deprecated APIs, another platform)."""
    if kernels.LIB is None:
        return None
    for name in _LIBCRYPTO:
        try:
            address = ctypes.cast(ctypes.CDLL(name).MD5, ctypes.c_void_p).value
        except (OSError, AttributeError):
            continue
        if not address:
            continue
        probe = b"curator \xe2\x9c\x93"
        got = kernels.md5_hex(np.frombuffer(probe, np.uint8), np.array([0, len(probe)], np.int64), address)
        if got.tobytes() == hashlib.md5(probe).hexdigest().encode():
            return address
    return None


def _string_buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The int64 offsets (len + 1, not rebased) and the uint8 data buffer of a string or large_string array."""
    n = len(strings)
    width = np.int32 if pa.types.is_string(strings.type) else np.int64
    offsets = np.frombuffer(strings.buffers()[1], width, n + 1, strings.offset * np.dtype(width).itemsize)
    data = strings.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), data


def md5_hexes(strings: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """md5 hex of each string by OpenSSL's ``MD5()`` (see the module doc), nulls kept as nulls; None
    without that function, or for anything but strings (the caller then asks DuckDB)."""
    md5 = openssl_md5()
    if md5 is None:
        return None
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks() if strings.num_chunks != 1 else strings.chunk(0)
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        return None
    n = len(strings)
    if strings.null_count == n:  # no prompts at all, say: nothing to hash
        return pa.nulls(n, pa.string())
    offsets, data = _string_buffers(strings)
    # A null slot still gets a digest (of whatever bytes its offsets span), hidden by the validity bitmap.
    digests = kernels.md5_hex(data, offsets, md5)
    validity = pa.array(np.asarray(strings.is_valid())).buffers()[1] if strings.null_count else None
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(np.arange(0, 32 * n + 1, 32, dtype=np.int32)),
                                                 pa.py_buffer(digests)], null_count=strings.null_count)


def _ids_openssl(batch: pa.Table, generation: int) -> pa.Table | None:
    """The three ids of ``_SQL``, every md5 by OpenSSL; None where that is not available."""
    if batch.column("text").null_count or openssl_md5() is None:
        return None
    text_hash = md5_hexes(batch.column("text"))
    prompt_id = md5_hexes(batch.column("prompt"))
    external_id = batch.column("external_id")
    strings = pa.types.is_string(external_id.type) or pa.types.is_large_string(external_id.type)
    if text_hash is None or prompt_id is None or not strings:
        return None
    external_id = pc.fill_null(external_id.cast(pa.string()), "")
    content = pc.binary_join_element_wise(str(int(generation)), external_id, pc.fill_null(prompt_id, ""), text_hash,
                                          "\x1f")
    return pa.table({"sample_id": md5_hexes(content), "text_hash": text_hash, "prompt_id": prompt_id})


class IdHasher:
    """Holds one DuckDB connection for the whole ingest (a connection per batch costs milliseconds)."""

    def __init__(self) -> None:
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET threads = 1")

    def ids(self, batch: pa.Table, generation: int) -> pa.Table:
        fast = _ids_openssl(batch, generation)
        if fast is not None:
            return fast
        self._con.register("batch", batch.select(["external_id", "prompt", "text"]))
        try:
            return self._con.sql(_SQL, params={"g": int(generation)}).to_arrow_table()
        finally:
            self._con.unregister("batch")


_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):  # lowercase only: "AB.." and "ab.." are different ids
    _HEX[_c] = _i


def id_numbers(ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) uint64 arrays: the 128-bit number of each id. An id that is 32 lowercase hex digits is
    that number; any other id (or a null, as "") is numbered by its own md5, row by row, so that the
    same id gets the same number in every batch."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks != 1 else ids.chunk(0)
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = ids.cast(pa.string())
    n = len(ids)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    offsets, data = _string_buffers(ids)
    ok = np.diff(offsets) == 32
    if ids.null_count:
        ok &= ~np.asarray(ids.is_null())
    if ok.all():
        raw = data[offsets[0] : offsets[0] + 32 * n].reshape(n, 32)  # back to back: one slice
    else:
        raw = data[np.where(ok, offsets[:-1], 0)[:, None] + np.arange(32)[None, :]] if len(data) >= 32 \
            else np.zeros((n, 32), np.uint8)
    nibbles = _HEX[raw]
    ok &= ~np.any(nibbles == 255, axis=1)
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # (n, 16) bytes, big-endian halves
    both = np.ascontiguousarray(packed).view(">u8").astype(np.uint64)
    hi, lo = np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])
    other = np.flatnonzero(~ok)
    if len(other):
        # Not curator's md5 ids (a rare path: one hash per such id).
        texts = ids.take(pa.array(other)).to_pylist()
        dh, dl = id_numbers(pa.array([hashlib.md5((t or "").encode()).hexdigest() for t in texts], pa.string()))
        hi[other], lo[other] = dh, dl
    return hi, lo
