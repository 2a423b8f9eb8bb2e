"""The set of sample ids an ingest has already seen (in the store, or earlier in the same ingest).

Why not ``pc.is_in`` over the id strings: it rebuilds a hash table of every id seen so far for each
batch, and each filter copies the whole batch (text included) even when nothing is dropped. A
sample id is the md5 hex of its content (``ids.py``), so it is exactly a 128-bit number: the set
keeps those numbers as sorted (hi, lo) ``uint64`` runs, merged as they grow (an LSM tree: each id
is merged O(log n) times), and a batch is looked up with ``searchsorted``. Ids that are not 32
hex digits (never written by curator, but a store may hold anything) are first hashed with md5 to
such a number, so the set is exact for curator's ids and exact up to md5 collisions otherwise.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def id_numbers(ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) uint64 arrays: the 128-bit number of each id (no nulls)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks != 1 else ids.chunk(0)
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = ids.cast(pa.string())
    n = len(ids)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    width = np.int32 if pa.types.is_string(ids.type) else np.int64
    offsets = np.frombuffer(ids.buffers()[1], width, n + 1, ids.offset * np.dtype(width).itemsize)
    data = np.frombuffer(ids.buffers()[2], np.uint8) if ids.buffers()[2] is not None else np.zeros(0, np.uint8)
    if ids.null_count == 0 and np.all(np.diff(offsets) == 32):
        nibbles = _HEX[data[offsets[0] : offsets[0] + 32 * n]].reshape(n, 32)
        if not np.any(nibbles == 255):
            packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # (n, 16) bytes, big-endian halves
            both = np.ascontiguousarray(packed).view(">u8").astype(np.uint64)
            return np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])
    # Not curator's md5 ids: number them by their own md5 (a rare path: one hash per id).
    digests = [hashlib.md5((s or "").encode()).hexdigest() for s in ids.to_pylist()]
    return id_numbers(pa.array(digests, pa.string()))


def _lexsorted(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Positions in (hi, lo) order, ties in position order."""
    return np.lexsort((lo, hi))


class SeenIds:
    """A growing set of 128-bit ids; ``fresh`` says which of a batch are new and adds them."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray | None = None) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # sorted (hi, lo), largest first
        if ids is not None and len(ids):
            hi, lo = id_numbers(ids)
            keep = self._first_of_each(hi, lo)
            order = _lexsorted(hi[keep], lo[keep])
            self._runs.append((hi[keep][order], lo[keep][order]))

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self._runs)

    @staticmethod
    def _first_of_each(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Mask of the first occurrence of each distinct (hi, lo)."""
        order = _lexsorted(hi, lo)
        sh, sl = hi[order], lo[order]
        first = np.ones(len(order), bool)
        first[1:] = (sh[1:] != sh[:-1]) | (sl[1:] != sl[:-1])
        mask = np.empty(len(order), bool)
        mask[order] = first  # the stable sort puts the earliest occurrence first in each run
        return mask

    def _known(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Mask of the ids already in the set."""
        known = np.zeros(len(hi), bool)
        for rh, rl in self._runs:
            left = np.searchsorted(rh, hi, "left")
            right = np.searchsorted(rh, hi, "right")
            width = right - left
            one = np.flatnonzero(width == 1)
            known[one] |= rl[left[one]] == lo[one]
            # Several ids share the top 64 bits (as good as never for md5): check each one.
            for i in np.flatnonzero(width > 1):
                known[i] |= bool(np.any(rl[left[i] : right[i]] == lo[i]))
        return known

    def fresh(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
        """Mask of the ids of a batch not seen before and first in the batch (None: all of them);
        those are added to the set."""
        hi, lo = id_numbers(ids)
        mask = self._first_of_each(hi, lo)
        if self._runs:
            mask &= ~self._known(hi, lo)
        keep = np.flatnonzero(mask)
        if len(keep):
            order = _lexsorted(hi[keep], lo[keep])
            self._add(hi[keep][order], lo[keep][order])
        return None if len(keep) == len(hi) else mask

    def _add(self, hi: np.ndarray, lo: np.ndarray) -> None:
        self._runs.append((hi, lo))
        # Merge while the newest run is at least half the size of the one before it.
        while len(self._runs) > 1 and 2 * len(self._runs[-1][0]) >= len(self._runs[-2][0]):
            (h2, l2), (h1, l1) = self._runs.pop(), self._runs.pop()
            h, lo_ = np.concatenate([h1, h2]), np.concatenate([l1, l2])
            order = _lexsorted(h, lo_)
            self._runs.append((h[order], lo_[order]))


def filter_mask(table: pa.Table, mask: np.ndarray | None) -> pa.Table:
    """``table`` rows where ``mask`` is true; the table itself (no copy) for None."""
    return table if mask is None else table.filter(pa.array(mask))


