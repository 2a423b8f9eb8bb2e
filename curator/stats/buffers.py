"""Reusable work buffers for the statistics engine.

Fresh memory is expensive: the first touch of each page is a page fault, and large arrays that
numpy allocates anew for every batch also come back cold from the allocator. The hot loops of the
tokenizer and the n-gram engine therefore write their temporaries, and where possible their
outputs, into buffers that live as long as the caller that owns them (an ``NgramAccumulator``).
"""
from __future__ import annotations

import mmap

import numpy as np

# Buffers from this size up get their own anonymous memory map: freeing one then always returns
# its memory to the system (a buffer allocated from the heap may stay resident after it is freed).
_MAPPED_BYTES = 1 << 20


def empty(size: int, dtype) -> np.ndarray:
    """``np.empty(size, dtype)``, in its own memory map when it is large (see ``_MAPPED_BYTES``)."""
    dtype = np.dtype(dtype)
    nbytes = size * dtype.itemsize
    if nbytes < _MAPPED_BYTES:
        return np.empty(size, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype, count=size)


class Buffers:
    """Named reusable arrays: ``get(name, size, dtype)`` returns the first ``size`` elements of a
    cached array, grown on demand (by at least an eighth, so that slowly growing sizes do not
    reallocate every time). Contents are undefined, and valid until the next ``get`` of the same
    name. Not thread-safe: one owner uses it at a time."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, size: int, dtype) -> np.ndarray:
        buf = self._arrays.get(name)
        if buf is None or len(buf) < size or buf.dtype != dtype:
            grown = 0 if buf is None or buf.dtype != dtype else len(buf) + len(buf) // 8
            self._arrays.pop(name, None)  # free the old one first
            buf = empty(max(size, grown), dtype)
            self._arrays[name] = buf
        return buf[:size]

    def at_least(self, name: str, size: int, dtype) -> np.ndarray:
        """Like ``get``, but the whole cached array: ``size`` elements or more (for a kernel that
        fills what room it is given and says how much it needed)."""
        self.get(name, size, dtype)
        return self._arrays[name]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())
