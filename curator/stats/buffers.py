"""Reusable work buffers for the statistics engine.

Fresh memory is expensive: the first touch of each page is a page fault, and large arrays that
numpy allocates anew for every batch also come back cold from the allocator. The hot loops of the
tokenizer and the n-gram engine therefore write their temporaries, and where possible their
outputs, into buffers that live as long as the caller that owns them (an ``NgramAccumulator``).
"""
from __future__ import annotations

import numpy as np


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
            buf = np.empty(max(size, grown), dtype)
            self._arrays[name] = buf
        return buf[:size]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())
