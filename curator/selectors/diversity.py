"""Diversity: a greedy cover of embedding space (over `embedding_v1.embedding`, cosine geometry).

- `farthest_point` (default): start from the sample nearest the centroid, then repeatedly add the sample
  farthest (cosine distance) from everything chosen so far: k-center greedy, a 2-approximation of the
  smallest covering radius. O(n k d) time, O(n) extra memory: fine for large candidate sets.
- `facility_location`: maximise sum_i max_{j chosen} sim(i, j) with sim = (1 + cos) / 2 in [0, 1]; the greedy
  gain is (1 - 1/e)-optimal for this submodular objective. It holds the n x n similarity matrix, so it is
  limited to `MAX_FACILITY` candidates.

Keeps k rows (or round-half-up(fraction * n)). Rows are processed in sample_id order and `argmax` takes the
first maximum, so ties and the result are deterministic. Rows without an embedding are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import UsageError
from .base import SelectContext, Selector, count_from, keep, parse_column
from .registry import register

METHODS = ("farthest_point", "facility_location")
MAX_FACILITY = 8192


@dataclass(frozen=True)
class DiversityConfig:
    """k or fraction: rows kept; method: farthest_point or facility_location; column: the embedding column."""

    k: int | None = None
    fraction: float | None = None
    method: str = "farthest_point"
    column: str = "embedding_v1.embedding"
    config_hash: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"diversity_v1 method={self.method!r}: expected one of {', '.join(METHODS)}")
        count_from(self.k, self.fraction, 0, "diversity_v1")


def farthest_point(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of k rows of unit vectors `x` chosen by farthest-point (k-center) greedy."""
    if k == 0 or len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    centroid = x.mean(axis=0)
    first = int(np.argmax(x @ centroid))
    chosen = [first]
    dist = 1.0 - x @ x[first]
    dist[first] = -np.inf
    for _ in range(k - 1):  # k steps, each vectorised over all n rows
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, 1.0 - x @ x[j])
        dist[chosen] = -np.inf
    return np.asarray(chosen, dtype=np.int64)


def facility_location(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of k rows of unit vectors `x` chosen by the greedy facility-location rule."""
    if len(x) > MAX_FACILITY:
        raise UsageError(f"diversity_v1 method=facility_location holds an n x n matrix: {len(x)} candidates is over "
                         f"the limit {MAX_FACILITY}; use method=farthest_point")
    sim = (1.0 + x @ x.T) / 2.0
    cover = np.zeros(len(x), dtype=sim.dtype)
    chosen: list[int] = []
    taken = np.zeros(len(x), dtype=bool)
    for _ in range(min(k, len(x))):
        gain = np.maximum(sim - cover[:, None], 0.0).sum(axis=0)
        gain[taken] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        taken[j] = True
        cover = np.maximum(cover, sim[:, j])
    return np.asarray(chosen, dtype=np.int64)


@register
class Diversity(Selector):
    name = "diversity_v1"
    description = "greedy coverage of embedding space (farthest point or facility location), k or a fraction"
    Config = DiversityConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        c = self.config
        col = parse_column(c.column)
        order = np.argsort(rows.column("sample_id").to_numpy(zero_copy_only=False), kind="stable")
        ordered = rows.take(pa.array(order))
        emb = ctx.score_values(ordered, col, c.config_hash, dtype=None)
        valid = emb.is_valid().to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(valid)
        present = emb.filter(pa.array(valid))
        dim = present.type.list_size if pa.types.is_fixed_size_list(present.type) else None
        if dim is None:
            raise UsageError(f"diversity_v1 column {col}: expected a fixed-size vector column, got {emb.type}")
        x = present.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        k = count_from(c.k, c.fraction, len(x), self.name)
        pick = (farthest_point if c.method == "farthest_point" else facility_location)(x, k)
        size = f"k={c.k}" if c.k is not None else f"fraction={c.fraction:g}"
        return keep(ordered, idx[pick], f"diversity {c.method} {size} by {col}")
