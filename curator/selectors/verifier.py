"""Verifier selection (Feng et al., "Beyond Model Collapse"): prune what a verifier rejects, or keep the
best of the k samples of each prompt.

- `verifier_v1` keeps the samples a verifier accepts: its boolean `correct` is true (null, "could not
  judge", is not accepted), or, for a scored verifier (`reward_model_v1.reward`, `python_v1.score`), the
  score column is >= `threshold`.
- `best_of_k_v1` keeps the best `n` (default 1) samples of each prompt (`prompt_id`) by a score column,
  ties broken by `sample_id` (ascending), so the pick is the same on every run; a sample without a prompt
  is its own group; samples without the score are never picked. For a boolean verifier put `verifier_v1`
  first: best-of-k alone would keep one sample of a prompt even when all k are wrong.

How good the verifier's selection is (keep-rates, precision) is `curator audit` (`audit.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from .base import SelectContext, Selector, keep, parse_column
from .registry import register
from .rules import ranks


@dataclass(frozen=True)
class VerifierConfig:
    """verifier: the verifier scorer (gsm8k_answer_v1); column: its verdict column (correct) or, with
    threshold, a score column; config_hash: the verifier config (needed when its table holds several)."""

    verifier: str = ""
    column: str = "correct"
    threshold: float | None = None
    config_hash: str | None = None

    def __post_init__(self) -> None:
        if not self.verifier:
            raise UsageError("verifier_v1 needs verifier (a verifier scorer, e.g. gsm8k_answer_v1)")


@register
class Verifier(Selector):
    name = "verifier_v1"
    description = "keep the samples a verifier accepts (correct, or score >= threshold)"
    Config = VerifierConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        c = self.config
        col = parse_column(c.verifier, default_column=c.column)
        if c.threshold is None:
            values = ctx.score_values(rows, col, c.config_hash, dtype="BOOLEAN")
            reason = f"verifier {col.scorer}: {col.column}"
        else:
            values = pc.greater_equal(ctx.score_values(rows, col, c.config_hash), pa.scalar(c.threshold, pa.float64()))
            reason = f"verifier {col.scorer}: {col.column} >= {c.threshold:g}"
        return keep(rows, pc.fill_null(values, False).to_numpy(zero_copy_only=False), reason)


@dataclass(frozen=True)
class BestOfKConfig:
    """column: scorer.column ranked within each prompt; n: samples kept per prompt; descending: higher is better."""

    column: str = ""
    n: int = 1
    descending: bool = True
    config_hash: str | None = None

    def __post_init__(self) -> None:
        if not self.column:
            raise UsageError("best_of_k_v1 needs column (scorer.column, e.g. reward_model_v1.reward)")
        if self.n < 1:
            raise UsageError(f"best_of_k_v1 n={self.n}: expected n >= 1")


@register
class BestOfK(Selector):
    name = "best_of_k_v1"
    description = "keep the best n samples of each prompt by a score column (ties: smallest sample_id)"
    Config = BestOfKConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        c = self.config
        col = parse_column(c.column)
        values = ctx.score_values(rows, col, c.config_hash)
        r, _ = ranks(ctx, rows, values, descending=c.descending, group_by="prompt_id")
        label = "best" if c.n == 1 else f"best {c.n}"
        return keep(rows, (r >= 1) & (r <= c.n), f"{label} of k by {col}")
