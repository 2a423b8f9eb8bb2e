"""The export plan: which samples, how many copies of each, in which order, in which shard.

Everything here is a pure function of (the selection's rows, the seed), so the same selection and seed
give the same plan, and therefore the same shard bytes, on any machine.

Decisions:

- **Canonical order first.** The selection's rows are sorted by (sample_id, reason, weight) before any
  random draw: the order rows happen to have in Lance fragments (which depends on how the select run
  wrote them) never leaks into the result.
- **Weights.** A row of weight w gets ``floor(w)`` copies plus one more with probability ``w - floor(w)``
  (one seeded Bernoulli draw per row, in canonical order). So 1.0 = once, 2.0 = twice, 0.5 = kept in about
  half the exports of different seeds (always the same half for one seed), 2.5 = twice or three times,
  0 = dropped. The expected number of copies is exactly w. Negative, NaN or infinite weights are refused.
- **Shuffle.** All copies are shuffled together by one permutation of a numpy ``Generator(PCG64(seed))``
  (the same generator, after the Bernoulli draws), so two copies of a sample land at independent positions
  and usually in different shards.
- **Sharding.** Shard k holds the contiguous slice ``[k*N//S, (k+1)*N//S)`` of the shuffled order: every
  shard is itself a uniform shuffle, and shard sizes differ by at most one document.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StoreError, UsageError


@dataclass(frozen=True)
class Plan:
    """`order[i]` is the selection row (canonical index) of output document i; `copy[i]` is which copy of
    that row it is (0-based); `bounds[k]:bounds[k+1]` are shard k's documents."""

    rows: pa.Table          # the selection's rows in canonical order (+ `position` in samples)
    order: np.ndarray       # int64, output document -> row
    copy: np.ndarray        # int32, output document -> copy number of its row
    bounds: np.ndarray      # int64, shards + 1 boundaries into `order`

    @property
    def documents(self) -> int:
        return int(len(self.order))

    @property
    def shards(self) -> int:
        return int(len(self.bounds) - 1)

    def shard(self, k: int) -> slice:
        return slice(int(self.bounds[k]), int(self.bounds[k + 1]))


def canonical(rows: pa.Table) -> pa.Table:
    """The selection's rows in a storage-independent order."""
    idx = pc.sort_indices(rows, sort_keys=[("sample_id", "ascending"), ("reason", "ascending"),
                                           ("weight", "ascending")])
    return rows.take(idx)


def copies(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies per row: floor(w) plus a Bernoulli(frac(w)) draw (see the module docstring)."""
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise UsageError(f"selection weights must be finite and >= 0; got {weights[bad][:5].tolist()} "
                         f"({int(bad.sum())} row(s))")
    whole = np.floor(weights)
    # One draw per row, even for integer weights: a row's draw does not depend on other rows' weights.
    extra = rng.random(len(weights)) < (weights - whole)
    return whole.astype(np.int64) + extra


def make_plan(rows: pa.Table, *, seed: int, shards: int) -> Plan:
    """The plan of `rows` (canonical order, with a float64 `weight` column) for `seed` and `shards`."""
    if shards < 1:
        raise UsageError(f"--shards must be at least 1, got {shards}")
    rng = np.random.Generator(np.random.PCG64(seed))
    weights = rows.column("weight").to_numpy().astype(np.float64, copy=False)
    n_copies = copies(weights, rng)
    total = int(n_copies.sum())
    expanded = np.repeat(np.arange(len(n_copies), dtype=np.int64), n_copies)
    # Copy number within each row's run of repeats: position minus the start of its run.
    starts = np.cumsum(n_copies) - n_copies
    copy_no = (np.arange(total, dtype=np.int64) - np.repeat(starts, n_copies)).astype(np.int32)
    perm = rng.permutation(total)
    if total and shards > total:
        raise UsageError(f"--shards {shards} is more than the {total} document(s) to export; use at most {total}")
    bounds = (np.arange(shards + 1, dtype=np.int64) * total) // shards
    return Plan(rows=rows, order=expanded[perm], copy=copy_no[perm], bounds=bounds)


def sample_positions(sample_ids: pa.ChunkedArray | pa.Array, wanted: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Position in the samples table (scan order) of each wanted sample id; a missing one is a store error."""
    pos = pc.index_in(wanted, value_set=pa.chunked_array(sample_ids).combine_chunks())
    if pos.null_count:
        missing = pc.filter(wanted, pc.is_null(pos)).to_pylist()
        raise StoreError(f"{len(missing)} selected sample(s) are not in samples at this store version, "
                         f"e.g. {missing[:3]}")
    return pos.to_numpy(zero_copy_only=False).astype(np.int64)
