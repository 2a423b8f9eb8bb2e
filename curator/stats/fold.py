"""The outputs of one (group, n), folded in one value range after another (``finish``).

Every statistic is per distinct value (n-gram), and a value lives in exactly one range, so
folding ranges one by one is exact: ``distinct`` adds up, the bucket histogram sums counts, a
running top-k only admits rows that beat its current k-th, and the sample keeps the rows below
the sample limit.
"""
from __future__ import annotations

import numpy as np

from curator.stats import kernels
from curator.stats.buffers import Buffers
from curator.stats.sorting import _EMPTY_I64, _EMPTY_U64, _top_indices
from curator.stats.values import _FINALISE_ROWS, _finalise, finalise_salt

_U64 = np.uint64


class _Fold:
    """The outputs of one (group, n): distinct count, bucket histogram, running top-k candidates,
    sample rows. ``dense_buckets``: histograms up to this many buckets are dense arrays; larger
    ones are summed sparsely."""

    def __init__(self, n: int, buckets: int, top_k: int, sample_rate: int, dense_buckets: int) -> None:
        self.n = n
        self.buckets = buckets
        self.top_k = top_k
        self.limit = _U64((1 << 64) // sample_rate) if sample_rate > 1 else None
        self.distinct = 0
        # A dense histogram unless the histogram itself would be large.
        self.hist = np.zeros(buckets, np.int64) if buckets <= dense_buckets else None
        self.sparse: list[tuple[np.ndarray, np.ndarray]] = []
        # Current top-k: hash, value, count, doc_freq, in rank order.
        self.top = (_EMPTY_U64, _EMPTY_U64, _EMPTY_I64, _EMPTY_I64)
        self.samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.bucket_ids = np.zeros(0, np.int32)
        self.bucket_counts = _EMPTY_I64
        self.sample = (_EMPTY_U64, _EMPTY_I64, _EMPTY_I64)

    def add(self, v: np.ndarray, c: np.ndarray, d: np.ndarray, scratch: Buffers | None = None) -> None:
        """Fold the rows (value S, count, doc_freq) of one value range (distinct values). Nothing
        of the arguments is kept (they may lie in reused buffers); ``scratch`` holds temporaries."""
        if not len(v):
            return
        self.distinct += len(v)
        if kernels.LIB is not None and self.hist is not None:
            h, keep = self._hash_and_count_compiled(v, c, scratch)
        else:
            h = self._hash_and_count(v, c, scratch)
            keep = np.flatnonzero(h < self.limit) if self.limit is not None else None
        self._add_top(h, v, c, d)
        if keep is not None:
            self.samples.append((h[keep], c[keep], d[keep]))
        else:
            self.samples.append((h.copy(), c.copy(), d.copy()))

    def _hash_and_count(self, v, c, scratch: Buffers | None) -> np.ndarray:
        """The final hashes of the rows, with their counts added to the bucket histogram."""
        m = len(v)
        if scratch is None:
            h = _finalise(v, self.n)
        else:
            h = _finalise(v, self.n, scratch.get("fold.hash", m, np.uint64),
                          scratch.get("fold.tmp", min(m, _FINALISE_ROWS), np.uint64))
        # hash % buckets, as hash - (hash // buckets) * buckets: numpy divides by a scalar with a
        # multiply and a shift, but its remainder is a real division per element.
        b = _U64(self.buckets)
        bucket = np.floor_divide(h, b, out=None if scratch is None else scratch.get("fold.bucket", m, np.uint64))
        bucket *= b
        np.subtract(h, bucket, out=bucket)
        bucket = bucket.view(np.int64)
        if self.hist is not None:
            # float64 weights are exact: one range's sums are far below 2**53.
            self.hist += np.rint(np.bincount(bucket, weights=c, minlength=self.buckets)).astype(np.int64)
        else:
            ub, inv = np.unique(bucket, return_inverse=True)
            self.sparse.append((ub, np.bincount(inv, weights=c)))
        return h

    def _hash_and_count_compiled(self, v, c, scratch: Buffers | None) -> tuple[np.ndarray, np.ndarray | None]:
        """``_hash_and_count`` (dense histogram) and the sample rows' indices (None: all rows), in one
        compiled pass."""
        m = len(v)
        v = np.ascontiguousarray(v, np.uint64)
        c = np.ascontiguousarray(c, np.int64)
        h = np.empty(m, np.uint64) if scratch is None else scratch.get("fold.hash", m, np.uint64)
        keep = np.empty(m, np.int64) if scratch is None else scratch.get("fold.keep", m, np.int64)
        kept = kernels.fold_rows(v, c, finalise_salt(self.n), self.buckets, self.hist, 0 if self.limit is None else int(self.limit), h,
                                 keep)
        return h, (None if self.limit is None else keep[:kept])

    def _add_top(self, h, v, c, d) -> None:
        k = self.top_k
        if not k:
            return
        th, tv, tc, td = self.top
        if len(th) == k:
            # Only rows that beat the current k-th (count desc, hash asc) can enter.
            ck, hk = tc[-1], th[-1]
            sel = np.flatnonzero(c >= ck)
            if len(sel):
                sel = sel[(c[sel] > ck) | (h[sel] < hk)]
        else:
            sel = _top_indices(h, c, k)
        if not len(sel):
            return
        hh = np.concatenate([th, h[sel]])
        cc = np.concatenate([tc, c[sel]])
        idx = _top_indices(hh, cc, k)
        self.top = (hh[idx], np.concatenate([tv, v[sel]])[idx], cc[idx], np.concatenate([td, d[sel]])[idx])

    def close(self) -> None:
        """Turn the running sums into the final rows (and drop the running state)."""
        if self.hist is not None:
            nz = np.flatnonzero(self.hist)
            self.bucket_ids = nz.astype(np.int32)
            self.bucket_counts = self.hist[nz]
        elif self.sparse:
            ub, inv = np.unique(np.concatenate([b for b, _ in self.sparse]), return_inverse=True)
            sums = np.bincount(inv, weights=np.concatenate([s for _, s in self.sparse]))
            self.bucket_ids = ub.astype(np.int32)
            self.bucket_counts = np.rint(sums).astype(np.int64)
        self.hist = None
        self.sparse = []
        if self.samples:
            h = np.concatenate([s[0] for s in self.samples])
            order = np.argsort(h)
            self.sample = (h[order], np.concatenate([s[1] for s in self.samples])[order],
                           np.concatenate([s[2] for s in self.samples])[order])
        self.samples = []
