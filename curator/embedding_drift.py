"""Embedding drift between two generations, from running sums over unit vectors (exact, O(n d)).

Used by `curator shift` when `scores_embedding_v1` exists; the metric definitions are in the docstrings
below (`embedding_drift`), the alarm rules in `curator.shift`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError
from .store import catalog

# Rows per Arrow batch read from DuckDB: bounds memory (16k x 384 float64 = 50 MB) on a large generation.
_EMBEDDING_BATCH = 1 << 14


# Groups of the jackknife estimate of the pairwise similarity's standard error: 32 gives its
# variance estimate 31 degrees of freedom (about +-13% on the standard error) at O(32 d) memory.
_JACKKNIFE_GROUPS = 32


@dataclass
class EmbeddingSums:
    """Running sums over one side's unit vectors: n, S = sum u, q = sum ||u||^2 (float64), and the
    same per jackknife group (the i-th vector added goes to group i mod `groups`)."""

    n: int = 0
    total: np.ndarray | None = None
    sq: float = 0.0
    groups: int = _JACKKNIFE_GROUPS
    group_n: np.ndarray | None = None
    group_total: np.ndarray | None = None
    group_sq: np.ndarray | None = None

    def add(self, vectors: np.ndarray) -> None:
        v = np.asarray(vectors, dtype=np.float64)
        if v.ndim != 2:
            raise UsageError(f"embeddings must be a 2-d array (rows x dimension), got shape {v.shape}")
        if not len(v):  # an empty batch carries no dimension worth checking
            return
        d, k = v.shape[1], self.groups
        if self.total is None:
            self.total = np.zeros(d)
            self.group_n = np.zeros(k, np.int64)
            self.group_total = np.zeros((k, d))
            self.group_sq = np.zeros(k)
        elif self.total.shape[0] != d:
            raise UsageError(f"embeddings of dimension {d} mixed with dimension {self.total.shape[0]}")
        norms = np.linalg.norm(v, axis=1)
        # Zero or non-finite vectors have no direction: they cannot be normalised, so they are left out.
        keep = np.isfinite(norms) & (norms > 0)
        u = v[keep] / norms[keep, None]
        sq = np.einsum("ij,ij->i", u, u)
        m = len(u)
        # Round-robin groups without a per-row loop: pad so that padded row p is vector n - r + p, whose
        # group is p mod k, then fold the rows k at a time.
        r = self.n % k
        rows = -(-(r + m) // k) * k
        padded = np.zeros((rows, d))
        padded[r:r + m] = u
        padded_sq = np.zeros(rows)
        padded_sq[r:r + m] = sq
        ones = np.zeros(rows, np.int64)
        ones[r:r + m] = 1
        self.group_total += padded.reshape(-1, k, d).sum(axis=0)
        self.group_sq += padded_sq.reshape(-1, k).sum(axis=0)
        self.group_n += ones.reshape(-1, k).sum(axis=0)
        self.n += m
        self.total += u.sum(axis=0)
        self.sq += float(sq.sum())

    def pairwise_similarity(self) -> float | None:
        """Mean cosine similarity over the n(n-1) ordered pairs i != j, exactly, in O(n d)."""
        if self.n < 2 or self.total is None:
            return None
        return (float(self.total @ self.total) - self.sq) / (self.n * (self.n - 1))

    def pairwise_similarity_se(self) -> float | None:
        """Delete-a-group jackknife standard error of `pairwise_similarity`:
        sqrt((G - 1) / G * sum_k (s_(-k) - mean_k s_(-k))^2) over the G non-empty groups, s_(-k) = the
        pairwise similarity of all vectors but group k's (from S - S_k, q - q_k, n - n_k). None when
        n < 3. With n < groups every group holds at most one vector: the delete-one jackknife."""
        if self.n < 3 or self.group_n is None:
            return None
        used = self.group_n > 0
        n = self.n - self.group_n[used]
        rest = self.total - self.group_total[used]
        s = (np.einsum("ij,ij->i", rest, rest) - (self.sq - self.group_sq[used])) / (n * (n - 1.0))
        g = len(s)
        return float(math.sqrt((g - 1) / g * float(((s - s.mean()) ** 2).sum())))


def drift_from_sums(g: EmbeddingSums, b: EmbeddingSums) -> dict[str, Any]:
    """The embedding-drift figures from the two sides' sums (see `embedding_drift`)."""
    out: dict[str, Any] = {"size": g.n, "baseline_size": b.n, "centroid_distance": None, "noise_floor": None,
                           "pairwise_similarity": g.pairwise_similarity(),
                           "baseline_pairwise_similarity": b.pairwise_similarity(),
                           "pairwise_similarity_se": g.pairwise_similarity_se(),
                           "baseline_pairwise_similarity_se": b.pairwise_similarity_se()}
    if g.n and b.n and g.total is not None and b.total is not None:
        if g.total.shape != b.total.shape:
            raise UsageError(f"embeddings of the generation (dimension {g.total.shape[0]}) and the baseline "
                             f"(dimension {b.total.shape[0]}) differ")
        norm = float(np.linalg.norm(g.total) * np.linalg.norm(b.total))
        if norm > 0:
            # Clamped: rounding can take the cosine of (nearly) parallel sums a hair past 1.
            out["centroid_distance"] = min(2.0, max(0.0, 1.0 - float(g.total @ b.total) / norm))
    s_b = out["baseline_pairwise_similarity"]
    if g.n and b.n and s_b is not None and s_b > 0:
        out["noise_floor"] = (1.0 - s_b) * (1.0 / g.n + 1.0 / b.n) / (2.0 * s_b)
    return out


def _embedding_matrix(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if len(col) == 0:
        return np.zeros((0, col.type.list_size if pa.types.is_fixed_size_list(col.type) else 0))
    if pa.types.is_fixed_size_list(col.type):
        d = col.type.list_size
    else:
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        d = int(lengths[0])
        if (lengths != d).any():
            raise UsageError(f"embeddings of different lengths in one column: {sorted(set(lengths.tolist()))[:5]}")
    # Null components become NaN, which leaves that vector out (EmbeddingSums.add).
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    return values.reshape(len(col), d)


def embedding_drift(con: duckdb.DuckDBPyConnection, generation: int, baseline: int = 0, *, origin: str = "*",
                    config_hash: str) -> dict[str, Any]:
    """Embedding drift of a generation against the baseline, in one streaming pass, O(n d).

    Vectors: the sentence embeddings of each side's samples under one embedding config
    (sql/shift/scores/embeddings.sql: latest row per sample, NULL embeddings left out). Each vector v is
    normalised, u = v / ||v|| (vectors of norm 0 or with a non-finite component are left out), so
    the figures do not rely on the scorer having normalised them. Per side, with n vectors and
    S = sum_i u_i:

    - ``pairwise_similarity`` = mean over the n(n-1) ordered pairs i != j of the cosine
      similarity u_i . u_j, computed exactly as (||S||^2 - sum_i ||u_i||^2) / (n(n-1)) (because
      ||S||^2 = sum_i sum_j u_i . u_j); None when n < 2. A diversity measure: it rises as a
      generation's texts crowd together. ``baseline_pairwise_similarity`` likewise.
    - ``centroid_distance`` = the cosine distance 1 - cos(S_g, S_b) between the two sides' mean
      unit vectors (the mean is S / n; the cosine ignores the scale), in [0, 2]; None when a
      side is empty.
    - ``noise_floor`` = (1 - s_b)(1/n_g + 1/n_b) / (2 s_b), s_b = baseline_pairwise_similarity:
      the centroid distance that two independent samples of these sizes from the baseline's
      source show by chance. The mean of n unit vectors is mu + e with E||e||^2 = tr(Cov u) / n
      = (1 - ||mu||^2) / n, and 1 - cos(mu + e_g, mu + e_b) ~ ||e_g - e_b||^2 (its part
      orthogonal to mu) / (2 ||mu||^2); s_b estimates ||mu||^2 without bias. It errs high (it
      counts the spread along mu too). None when s_b <= 0 or undefined.
    - ``size`` / ``baseline_size`` = n of each side.
    """
    query = catalog.get("shift/scores/embeddings")
    params = query.bind({"generation": generation, "baseline": baseline, "origin": origin,
                         "config_hash": config_hash})
    g, b = EmbeddingSums(), EmbeddingSums()
    reader = con.sql(query.sql, params=params).to_arrow_reader(_EMBEDDING_BATCH)
    for batch in reader:
        gens = batch.column("generation").to_numpy(zero_copy_only=False)
        vectors = _embedding_matrix(batch.column("embedding"))
        # When generation == baseline a row belongs to both sides.
        if (gens == generation).any():
            g.add(vectors[gens == generation])
        if (gens == baseline).any():
            b.add(vectors[gens == baseline])
    return drift_from_sums(g, b)
