"""The set of sample ids an ingest has already seen (in the store, or earlier in the same ingest).

Why not ``pc.is_in`` over the id strings: it rebuilds a hash table of every id seen so far for each
batch, and each filter copies the whole batch (text included) even when nothing is dropped. A
sample id is the md5 hex of its content, so it is exactly a 128-bit number (``ids.id_numbers``): the set
keeps those numbers as sorted (hi, lo) ``uint64`` runs, merged as they grow (an LSM tree: each id
is merged O(log n) times), and a batch is looked up with ``searchsorted``. Exact for curator's
ids, and up to md5 collisions for any other id (numbered by its md5).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .ids import id_numbers


def _first_in_sorted(sh: np.ndarray, sl: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For ids sorted by hi (stably: ``order`` gives their positions), a mask of the first occurrence
    of each distinct (hi, lo). Runs of equal hi are rare (duplicates, or 64-bit collisions): only
    those rows are sorted again by (hi, lo, position)."""
    first = np.ones(len(sh), bool)
    same = np.flatnonzero(sh[1:] == sh[:-1])
    if not len(same):
        return first
    rows = np.unique(np.concatenate([same, same + 1]))
    sub = rows[np.lexsort((order[rows], sl[rows], sh[rows]))]
    dup = (sh[sub[1:]] == sh[sub[:-1]]) & (sl[sub[1:]] == sl[sub[:-1]])
    first[sub[1:][dup]] = False
    return first


class SeenIds:
    """A growing set of 128-bit ids; ``fresh`` says which of a batch are new and adds them."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray | None = None) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (hi, lo) sorted by hi, largest first
        if ids is not None and len(ids):
            self.fresh(ids)

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self._runs)

    def _known(self, sh: np.ndarray, sl: np.ndarray) -> np.ndarray:
        """Mask of the ids (sorted by hi) already in the set."""
        known = np.zeros(len(sh), bool)
        for rh, rl in self._runs:
            # Sorted queries: numpy's binary search starts from the previous answer.
            left = np.searchsorted(rh, sh, "left")
            right = np.searchsorted(rh, sh, "right")
            width = right - left
            one = np.flatnonzero(width == 1)
            known[one] |= rl[left[one]] == sl[one]
            # Several ids share the top 64 bits (as good as never for md5): check each one.
            for i in np.flatnonzero(width > 1):
                known[i] |= bool(np.any(rl[left[i] : right[i]] == sl[i]))
        return known

    def fresh(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
        """Mask of the ids of a batch not seen before and first in the batch (None: all of them);
        those are added to the set."""
        hi, lo = id_numbers(ids)
        order = np.argsort(hi, kind="stable")
        sh, sl = hi[order], lo[order]
        keep = _first_in_sorted(sh, sl, order)
        if self._runs:
            keep &= ~self._known(sh, sl)
        kept = int(np.count_nonzero(keep))
        if kept:
            self._add(sh[keep], sl[keep])
        if kept == len(hi):
            return None
        mask = np.empty(len(hi), bool)
        mask[order] = keep
        return mask

    def _add(self, hi: np.ndarray, lo: np.ndarray) -> None:
        self._runs.append((hi, lo))
        # Merge while the newest run is at least half the size of the one before it; a stable sort
        # of two sorted runs is one linear merge.
        while len(self._runs) > 1 and 2 * len(self._runs[-1][0]) >= len(self._runs[-2][0]):
            (h2, l2), (h1, l1) = self._runs.pop(), self._runs.pop()
            h = np.concatenate([h1, h2])
            order = np.argsort(h, kind="stable")
            self._runs.append((h[order], np.concatenate([l1, l2])[order]))


def filter_mask(table: pa.Table, mask: np.ndarray | None) -> pa.Table:
    """``table`` rows where ``mask`` is true; the table itself (no copy) for None."""
    return table if mask is None else table.filter(pa.array(mask))
