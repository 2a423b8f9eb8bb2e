"""DSIR importance resampling (Xie et al. 2023), a baseline: keep k rows drawn without replacement with
probability proportional to exp(`dsir_v1.log_weight`), the importance weight against the human reference.

Sampling uses the Gumbel-top-k trick (the k largest log_weight + Gumbel noise are a draw without
replacement proportional to the weights), with noise from numpy's PCG64 seeded by the run's seed plus
`seed`, assigned in sample_id order: the same store, config and seed give the same rows. ToEdit found that
selecting by these weights does not fix the distribution shift: it is here to be compared against.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .base import SelectContext, Selector, count_from, keep, parse_column
from .registry import register


@dataclass(frozen=True)
class DsirConfig:
    """k or fraction: rows kept; column: the log importance weight; seed: added to the run's seed."""

    k: int | None = None
    fraction: float | None = None
    column: str = "dsir_v1.log_weight"
    seed: int = 0
    config_hash: str | None = None

    def __post_init__(self) -> None:
        count_from(self.k, self.fraction, 0, "dsir_resample_v1")


@register
class DsirResample(Selector):
    name = "dsir_resample_v1"
    description = "importance resampling by DSIR log weights (seeded, without replacement), a baseline"
    Config = DsirConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        c = self.config
        col = parse_column(c.column)
        order = np.argsort(rows.column("sample_id").to_numpy(zero_copy_only=False), kind="stable")
        ordered = rows.take(pa.array(order))
        logw = ctx.score_values(ordered, col, c.config_hash).to_numpy(zero_copy_only=False)
        valid = np.flatnonzero(~np.isnan(logw.astype(np.float64)))
        k = count_from(c.k, c.fraction, len(valid), self.name)
        rng = np.random.default_rng(ctx.seed + c.seed)
        keys = logw[valid] + rng.gumbel(size=len(valid))
        pick = valid[np.argsort(-keys, kind="stable")[:k]]
        size = f"k={c.k}" if c.k is not None else f"fraction={c.fraction:g}"
        return keep(ordered, np.sort(pick), f"dsir_resample {size} seed={ctx.seed + c.seed}")
