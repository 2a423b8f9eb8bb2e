"""The selector plugin contract: candidate rows in, kept rows with a weight and a reason out.

A selector is a small class, the same shape as a scorer (`curator/scorers/base.py`):

    @register
    class Threshold(Selector):
        name = "threshold_v1"                         # the version is part of the name
        description = "keep rows whose score passes a comparison"
        Config = ThresholdConfig                      # frozen dataclass of options

        def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
            values = ctx.score_values(rows, self.config.column, ...)
            return keep(rows, mask, "threshold text_stats_v1.words >= 20")

The rows a selector sees and returns have the columns of `CANDIDATE_SCHEMA`: the sample's keys
(`sample_id`, `generation`, `origin`, `prompt_id`, `text_hash`) plus `weight` (1.0 = train once) and
`reason` (the rules that kept the row so far, joined by "; "). A selector returns a subset of its input
rows (it may reorder them and change `weight`) and appends its own reason with `keep`, so every kept row
says which rules kept it, like datatrove's removed documents keep the reason they were removed.

Selectors read scores through `SelectContext`, a DuckDB connection over the store pinned at the version
the select run started from: scores never go into the rows, and a chain is deterministic given the store
version, the config and the seed.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..config import config_hash, make_config  # noqa: F401  (config_hash: used by the selector modules)

NAME_RE = re.compile(r"[a-z][a-z0-9_]*_v[0-9]+")

CANDIDATE_SCHEMA = pa.schema([
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("generation", pa.int32(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("prompt_id", pa.string()),
    pa.field("text_hash", pa.string(), nullable=False),
    pa.field("weight", pa.float64(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
])
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class NoConfig:
    """A selector without options."""


class Selector:
    """Base class of every selector. Subclasses set the class attributes and implement `select`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        if config is not None and options:
            raise TypeError("give either a config object or keyword options, not both")
        self.config = config if config is not None else make_config(self.Config, options, plugin=self.name, kind="selector")

    def select(self, rows: pa.Table, ctx: "SelectContext") -> pa.Table:
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else dict(self.config)

    @property
    def config_hash(self) -> str:
        return config_hash({"selector": self.name, "config": self.config_dict()})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.config_dict()})"


def keep(rows: pa.Table, which: np.ndarray | pa.Array, reason: str, weight: np.ndarray | None = None) -> pa.Table:
    """The rows picked by `which` (a boolean mask or row indices, in the order given) with `reason` appended."""
    which = np.asarray(which)
    out = rows.filter(pa.array(which, pa.bool_())) if which.dtype == bool else rows.take(pa.array(which, pa.int64()))
    n = out.num_rows
    old = out.column("reason")
    # "" means no rule yet: the first reason stands alone, later ones are joined by "; ".
    sep = pc.if_else(pc.equal(old, ""), "", "; ")
    joined = pc.binary_join_element_wise(old, sep, pa.array([reason] * n, pa.string()), "")
    out = out.set_column(out.schema.get_field_index("reason"), "reason", joined)
    if weight is not None:
        out = out.set_column(out.schema.get_field_index("weight"), "weight", pa.array(weight, pa.float64()))
    return out.cast(CANDIDATE_SCHEMA)


def empty_candidates() -> pa.Table:
    return CANDIDATE_SCHEMA.empty_table()


@dataclass(frozen=True)
class ScoreColumn:
    """A score column: `scores_<scorer>.<column>` (the `scores_` prefix may be left out)."""

    table: str
    column: str

    @property
    def scorer(self) -> str:
        return self.table.removeprefix("scores_")

    def __str__(self) -> str:
        return f"{self.scorer}.{self.column}"


def parse_column(spec: str, *, default_column: str | None = None) -> ScoreColumn:
    """`text_stats_v1.words`, `scores_text_stats_v1.words`, or a bare scorer name with `default_column`."""
    table, _, column = spec.strip().partition(".")
    column = column or (default_column or "")
    if not _IDENT.fullmatch(table) or not _IDENT.fullmatch(column):
        raise UsageError(f"score column {spec!r}: expected scorer.column, e.g. text_stats_v1.words "
                         f"or scores_text_stats_v1.words")
    if not table.startswith("scores_"):
        table = "scores_" + table
    return ScoreColumn(table, column)


class SelectContext:
    """What a selector may read: the store pinned at the select run's starting version, plus the seed."""

    def __init__(self, store: Any, con: duckdb.DuckDBPyConnection, *, generation: int, seed: int = 0,
                 lineage: tuple[int, ...] | None = None) -> None:
        self.store = store
        self.con = con
        self.generation = generation
        self.seed = seed
        # The generations a selector may compare against ("earlier" data); None = every generation. The loop
        # keeps its arms in one store and passes each arm's own line (0 and its earlier rounds), so that one
        # arm's samples never count as duplicates of another arm's.
        self.lineage = None if lineage is None else tuple(sorted({int(g) for g in lineage}))
        # Rows a selector wants stored with the selection (the MinHash index, say): table -> batches,
        # written by the select run in its transaction.
        self.writes: dict[str, list[pa.Table]] = {}

    def sql(self, query: str, params: dict[str, Any] | None = None, **tables: pa.Table) -> pa.Table:
        """Run `query` with Arrow tables registered under the given names (dropped afterwards)."""
        for name, table in tables.items():
            self.con.register(name, table)
        try:
            return self.con.sql(query, params=params or None).to_arrow_table()
        finally:
            for name in tables:
                self.con.unregister(name)

    def in_lineage(self, column: str = "generation") -> str:
        """A SQL condition keeping rows of the lineage's generations ("true" when there is no lineage)."""
        if self.lineage is None:
            return "true"
        return f"{column} IN ({', '.join(str(g) for g in self.lineage)})" if self.lineage else "false"

    def score_tables(self) -> dict[str, dict[str, str]]:
        """Score table -> {column: DuckDB type} of every `scores_*` view on the connection."""
        rows = self.con.sql("SELECT table_name, column_name, data_type FROM information_schema.columns "
                            "WHERE starts_with(table_name, 'scores_')").fetchall()
        out: dict[str, dict[str, str]] = {}
        for table, column, dtype in rows:
            out.setdefault(table, {})[column] = dtype
        return out

    def resolve_config(self, col: ScoreColumn, config_hash: str | None, sample_ids: pa.Array | None = None) -> str:
        """The config hash to read: the one given, or the only one the table holds for these samples."""
        tables = self.score_tables()
        if col.table not in tables:
            have = ", ".join(sorted(t.removeprefix("scores_") for t in tables)) or "none"
            raise UsageError(f"no scores of scorer '{col.scorer}' in the store (scored: {have}); "
                             f"run curator score --scorer {col.scorer} first")
        if col.column not in tables[col.table] or col.column in ("sample_id", "config_hash", "run_id"):
            cols = ", ".join(c for c in tables[col.table] if c not in ("sample_id", "config_hash", "run_id"))
            raise UsageError(f"scorer {col.scorer} has no score column '{col.column}'; columns: {cols}")
        ids = pa.table({"sample_id": sample_ids if sample_ids is not None else pa.array([], pa.string())})
        found = self.sql(
            f'SELECT DISTINCT config_hash FROM "{col.table}" '
            f"WHERE $all OR sample_id IN (SELECT sample_id FROM __ids) ORDER BY 1",
            {"all": sample_ids is None}, __ids=ids).column(0).to_pylist()
        if config_hash is not None:
            if config_hash not in found:
                raise UsageError(f"scorer {col.scorer} has no rows of config_hash {config_hash!r} for these "
                                 f"samples; configs: {', '.join(found) or 'none'}")
            return config_hash
        if len(found) > 1:
            raise UsageError(f"scorer {col.scorer} holds {len(found)} configs for these samples "
                             f"({', '.join(found)}); choose one with config_hash")
        return found[0] if found else ""

    def score_values(self, rows: pa.Table, col: ScoreColumn, config_hash: str | None = None,
                     dtype: str | None = "DOUBLE") -> pa.Array:
        """The score column for each row of `rows`, in row order (null where the sample has no score).

        A sample counts once, with its latest row (largest run_id) of that config, like the shift queries.
        `dtype` None reads the column as stored (an embedding vector, say)."""
        ids = rows.column("sample_id")
        chosen = self.resolve_config(col, config_hash, ids)
        # Identifiers were checked against information_schema above; values go in as parameters.
        value = f'"{col.column}"' if dtype is None else f'CAST("{col.column}" AS {dtype})'
        query = (f'WITH s AS (SELECT sample_id, {value} AS v FROM "{col.table}" '
                 f"WHERE config_hash = $h QUALIFY row_number() OVER (PARTITION BY sample_id ORDER BY run_id DESC) = 1) "
                 f"SELECT c.i, s.v FROM __cand AS c LEFT JOIN s USING (sample_id) ORDER BY c.i")
        cand = pa.table({"sample_id": ids, "i": pa.array(np.arange(rows.num_rows, dtype=np.int64))})
        return self.sql(query, {"h": chosen}, __cand=cand).column("v").combine_chunks()


def count_from(k: int | None, fraction: float | None, n: int, selector: str) -> int:
    """Rows to keep out of n: `k` (at most n), or round-half-up(fraction * n)."""
    if (k is None) == (fraction is None):
        raise UsageError(f"{selector} needs exactly one of k or fraction, got k={k}, fraction={fraction}")
    if k is not None:
        if k < 0:
            raise UsageError(f"{selector} k={k}: expected k >= 0")
        return min(k, n)
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f"{selector} fraction={fraction}: expected a number in [0, 1]")
    return int(np.floor(fraction * n + 0.5))
