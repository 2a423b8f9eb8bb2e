"""Rules on any score column: threshold, top-k, top-fraction.

A score column is `scorer.column` (`text_stats_v1.words`; the table prefix `scores_` may be written too),
read from the scorer's table under one config (`config_hash`, needed only when the table holds several)
with each sample's latest row; booleans read as 1/0 (as in the long `scores` view). Samples without a
score are dropped (a rule cannot say they pass), unless `keep_missing`.

Ranks (top-k, top-fraction) order by the score, then by `sample_id`, so ties are broken the same way on
every run; `group_by` ranks within each prompt (`prompt_id`, a sample without one is its own group) or
each generation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from .base import ScoreColumn, SelectContext, Selector, keep, parse_column
from .registry import register

OPS = {">=": pc.greater_equal, ">": pc.greater, "<=": pc.less_equal, "<": pc.less, "==": pc.equal, "!=": pc.not_equal}
GROUPS = ("none", "prompt_id", "generation")
_WHERE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<|=)\s*"
                    r"([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|true|false)\s*$", re.IGNORECASE)


def parse_where(text: str) -> tuple[str, str, float]:
    """`text_stats_v1.words >= 20` -> ("text_stats_v1.words", ">=", 20.0); `= true` compares booleans as 1."""
    m = _WHERE.match(text)
    if not m:
        raise UsageError(f"condition {text!r}: expected 'scorer.column OP number' with OP one of "
                         f"{', '.join(OPS)}, e.g. 'text_stats_v1.words >= 20'")
    column, op, raw = m.groups()
    value = {"true": 1.0, "false": 0.0}.get(raw.lower())
    return column, "==" if op == "=" else op, float(raw) if value is None else value


def _check_group(group_by: str) -> None:
    if group_by not in GROUPS:
        raise UsageError(f"group_by={group_by!r}: expected one of {', '.join(GROUPS)}")


def ranks(ctx: SelectContext, rows: pa.Table, values: pa.Array, *, descending: bool, group_by: str) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of each row within its group (score order, then sample_id) and the group's size;
    rows without a score get rank 0 and do not count in the size."""
    group = {"none": "NULL", "prompt_id": "coalesce(prompt_id, sample_id)", "generation": "generation"}[group_by]
    order = "DESC" if descending else "ASC"
    t = pa.table({"i": pa.array(np.arange(rows.num_rows, dtype=np.int64)), "sample_id": rows.column("sample_id"),
                  "prompt_id": rows.column("prompt_id"), "generation": rows.column("generation"), "v": values})
    out = ctx.sql(f"SELECT i, CASE WHEN v IS NULL THEN 0 ELSE row_number() OVER (PARTITION BY {group}, v IS NULL "
                  f"ORDER BY v {order}, sample_id) END AS r, "
                  f"count(v) OVER (PARTITION BY {group}) AS n FROM __t ORDER BY i", __t=t)
    return out.column("r").to_numpy(), out.column("n").to_numpy()


@dataclass(frozen=True)
class ThresholdConfig:
    """column: scorer.column; op: >=, >, <=, <, ==, !=; value: the threshold. Or where: the whole condition
    as text ('text_stats_v1.words >= 20'). config_hash: the scorer config (needed when several)."""

    column: str = ""
    op: str = ">="
    value: float = 0.0
    where: str | None = None
    config_hash: str | None = None
    keep_missing: bool = False

    def __post_init__(self) -> None:
        if self.where is None and not self.column:
            raise UsageError("threshold_v1 needs column (scorer.column) and value, or where ('scorer.column >= 20')")
        if self.op not in OPS:
            raise UsageError(f"threshold_v1 op={self.op!r}: expected one of {', '.join(OPS)}")


@register
class Threshold(Selector):
    name = "threshold_v1"
    description = "keep rows whose score column passes a comparison with a fixed value"
    Config = ThresholdConfig

    def condition(self) -> tuple[ScoreColumn, str, float]:
        if self.config.where is not None:
            column, op, value = parse_where(self.config.where)
            return parse_column(column), op, value
        return parse_column(self.config.column), self.config.op, self.config.value

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        col, op, value = self.condition()
        values = ctx.score_values(rows, col, self.config.config_hash)
        passed = pc.fill_null(OPS[op](values, pa.scalar(value, pa.float64())), self.config.keep_missing)
        return keep(rows, passed.to_numpy(zero_copy_only=False), f"threshold {col} {op} {value:g}")


@dataclass(frozen=True)
class TopKConfig:
    """column: scorer.column; k: rows kept (per group); descending: highest scores first;
    group_by: none, prompt_id or generation."""

    column: str = ""
    k: int = 1
    descending: bool = True
    group_by: str = "none"
    config_hash: str | None = None

    def __post_init__(self) -> None:
        if not self.column:
            raise UsageError("top_k_v1 needs column (scorer.column)")
        if self.k < 0:
            raise UsageError(f"top_k_v1 k={self.k}: expected k >= 0")
        _check_group(self.group_by)


@register
class TopK(Selector):
    name = "top_k_v1"
    description = "keep the k best rows by a score column (overall or per prompt / generation)"
    Config = TopKConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        c = self.config
        col = parse_column(c.column)
        values = ctx.score_values(rows, col, c.config_hash)
        r, _ = ranks(ctx, rows, values, descending=c.descending, group_by=c.group_by)
        per = "" if c.group_by == "none" else f" per {c.group_by}"
        return keep(rows, (r >= 1) & (r <= c.k), f"top_k {c.k} {col} {'desc' if c.descending else 'asc'}{per}")


@dataclass(frozen=True)
class TopFractionConfig:
    """column: scorer.column; fraction in [0, 1]: per group, the best round(fraction * n) rows are kept
    (n = the group's rows with a score; round half up)."""

    column: str = ""
    fraction: float = 0.5
    descending: bool = True
    group_by: str = "none"
    config_hash: str | None = None

    def __post_init__(self) -> None:
        if not self.column:
            raise UsageError("top_fraction_v1 needs column (scorer.column)")
        if not 0.0 <= self.fraction <= 1.0:
            raise UsageError(f"top_fraction_v1 fraction={self.fraction}: expected a number in [0, 1]")
        _check_group(self.group_by)


def round_half_up(x: np.ndarray | float) -> np.ndarray:
    """Counts from fractions: round half up (not numpy's half-to-even), so 0.5 * 5 keeps 3, as written."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


@register
class TopFraction(Selector):
    name = "top_fraction_v1"
    description = "keep the best fraction of rows by a score column (overall or per prompt / generation)"
    Config = TopFractionConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        c = self.config
        col = parse_column(c.column)
        values = ctx.score_values(rows, col, c.config_hash)
        r, n = ranks(ctx, rows, values, descending=c.descending, group_by=c.group_by)
        k = round_half_up(n * c.fraction)
        per = "" if c.group_by == "none" else f" per {c.group_by}"
        return keep(rows, (r >= 1) & (r <= k), f"top_fraction {c.fraction:g} {col} {'desc' if c.descending else 'asc'}{per}")




@dataclass(frozen=True)
class ReferenceBandConfig:
    """column: scorer.column; lower / upper: quantiles in [0, 1] of the reference rows' values (None: no bound
    on that side); reference_generation and reference_origin: the reference rows (default the human
    generation 0); config_hash: the scorer config (needed when several)."""

    column: str = ""
    lower: float | None = 0.05
    upper: float | None = 0.95
    reference_generation: int = 0
    reference_origin: str = "human"
    config_hash: str | None = None
    keep_missing: bool = False

    def __post_init__(self) -> None:
        if not self.column:
            raise UsageError("reference_band_v1 needs column (scorer.column), e.g. 'perplexity_v1.perplexity'")
        for side in ("lower", "upper"):
            q = getattr(self, side)
            if q is not None and not 0.0 <= q <= 1.0:
                raise UsageError(f"reference_band_v1 {side}={q}: expected a quantile in [0, 1] or none")
        if self.lower is None and self.upper is None:
            raise UsageError("reference_band_v1 needs lower, upper or both")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise UsageError(f"reference_band_v1 lower={self.lower} > upper={self.upper}")


@register
class ReferenceBand(Selector):
    """Thresholds fixed against the human reference, not relative to the batch being filtered.

    "Drop each batch's lowest quarter" keeps three quarters of a batch however degenerate it is; here the band
    is the reference rows' own quantiles of the same score under the same config (a human document's
    perplexity under the reference model, say), so a generation that drifts out of it loses every row that
    left, and a healthy one loses only its tails.
    """

    name = "reference_band_v1"
    description = "keep rows whose score lies inside the reference (human) rows' quantile band of that score"
    Config = ReferenceBandConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        c = self.config
        col = parse_column(c.column)
        ref = ctx.sql("SELECT sample_id FROM samples WHERE generation = $g AND origin = $o ORDER BY sample_id",
                      {"g": c.reference_generation, "o": c.reference_origin})
        # The reference values under the config the candidates are read with (resolved on the candidates).
        chosen = ctx.resolve_config(col, c.config_hash, rows.column("sample_id"))
        ref_values = np.zeros(0)
        if ref.num_rows:
            ref_values = ctx.score_values(ref, col, chosen).to_numpy(zero_copy_only=False).astype(np.float64)
            ref_values = ref_values[~np.isnan(ref_values)]
        if ref_values.size == 0:
            raise UsageError(f"reference_band_v1: no {col} scores for generation {c.reference_generation} "
                             f"(origin {c.reference_origin}); score the reference rows with the same config first")
        lo = float(np.quantile(ref_values, c.lower)) if c.lower is not None else -np.inf
        hi = float(np.quantile(ref_values, c.upper)) if c.upper is not None else np.inf
        values = ctx.score_values(rows, col, chosen)
        v = values.to_numpy(zero_copy_only=False).astype(np.float64)
        missing = np.isnan(v)
        mask = np.where(missing, c.keep_missing, (v >= lo) & (v <= hi))
        return keep(rows, mask, f"reference_band {col} in [{lo:.6g}, {hi:.6g}] "
                                f"(quantiles {c.lower}, {c.upper} of generation {c.reference_generation} {c.reference_origin})")
