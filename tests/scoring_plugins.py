"""Scorers defined outside curator, loaded by the tests as `tests.scoring_plugins:Name` or by entry point."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curator.scorers import Scorer


@dataclass(frozen=True)
class LengthConfig:
    scale: float = 1.0
    model: str | None = None


class Length(Scorer):
    name = "length_v1"
    description = "characters times a scale"
    Config = LengthConfig
    columns = (pa.field("length", pa.float64()), pa.field("long", pa.bool_()), pa.field("label", pa.string()))

    def score(self, batch: pa.Table) -> pa.Table:
        n = pc.multiply(pc.utf8_length(batch["text"]).cast(pa.float64()), self.config.scale)
        return pa.table({"length": n, "long": pc.greater(n, 20.0), "label": pc.utf8_upper(batch["text"])})


class Boom(Scorer):
    """Fails on any batch that holds a text containing BOOM."""

    name = "boom_v1"
    columns = (pa.field("ok", pa.bool_()),)

    def score(self, batch: pa.Table) -> pa.Table:
        if pc.any(pc.match_substring(batch["text"], "BOOM")).as_py():
            raise RuntimeError("cannot score this")
        return pa.table({"ok": pa.array([True] * batch.num_rows)})


class ShortOutput(Scorer):
    name = "short_v1"
    columns = (pa.field("x", pa.int64()),)

    def score(self, batch: pa.Table) -> pa.Table:
        return pa.table({"x": pa.array([1] * (batch.num_rows - 1), pa.int64())})


class LengthChanged(Scorer):
    """Same versioned name as Length, other columns: must be refused, not mixed into its table."""

    name = "length_v1"
    columns = (pa.field("length", pa.int64()),)

    def score(self, batch: pa.Table) -> pa.Table:
        return pa.table({"length": pc.utf8_length(batch["text"]).cast(pa.int64())})


class ReferenceShare(Scorer):
    """Learns from the store in `fit`: the share of the human reference's texts equal to each sample."""

    name = "reference_share_v1"
    columns = (pa.field("in_reference", pa.bool_()),)

    def fit(self, context) -> None:
        self.reference = context.samples(generations=[0], columns=["text"]).column("text")
        self.targets = context.target_generations

    def score(self, batch: pa.Table) -> pa.Table:
        return pa.table({"in_reference": pc.is_in(batch["text"], value_set=self.reference)})


class NoVersion(Scorer):
    name = "unversioned"
