"""The boosting label budget (Amin et al., "Escaping Collapse"): spend a little outside signal per round
on the hardest prompts.

Per prompt of a generation (definitions in the named query `select/difficulty`): k = its samples,
difficulty = 1 - pass rate of its k samples under a verifier's `correct` (a sample without a verdict counts
as not passed). `label_queue` writes the hardest prompts, unsolved first, then by difficulty descending,
ties by prompt_id, up to the budget, as JSONL for labelers: `prompt_id`, `prompt`, an empty `reference` for
the labeler to fill, and `generation`, `k`, `pass_rate`, `difficulty` for context. Prompts that already
have a labeled sample (origin `labeled` with that prompt_id or parent_id) are left out unless
`include_labeled`, so asking again after labels came back spends the budget on new prompts.

The labels come back with
    curator ingest to_label.jsonl --generation N --origin labeled --text-field reference \
        --prompt-field prompt --reference-field reference --parent-field prompt_id
so each labeled sample has the prompt's `prompt_id` (the md5 of the same prompt text) and `parent_id`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..store import Store, catalog
from ..store.query import connect, run_sql
from .base import SelectContext, parse_column


@dataclass
class LabelQueue:
    path: Path
    rows: int
    prompts: int  # prompts of the generation (before the budget)
    unsolved: int  # unsolved prompts among those written
    already_labeled: int  # prompts left out because they have labels


def default_verifier(con, generation: int) -> str:
    """The one verifier (a score table with a boolean `correct`) that scored samples of `generation`."""
    tables = run_sql(con, "SELECT table_name FROM information_schema.columns WHERE starts_with(table_name, 'scores_') "
                          "AND column_name = 'correct' AND data_type = 'BOOLEAN' ORDER BY 1").column(0).to_pylist()
    used = [t for t in tables if run_sql(
        con, f'SELECT count(*) AS n FROM "{t}" JOIN samples USING (sample_id) WHERE generation = $g',
        {"g": generation}).column(0)[0].as_py()]
    if len(used) != 1:
        names = ", ".join(t.removeprefix("scores_") for t in used) or "none"
        raise UsageError(f"name the verifier with --verifier: generation {generation} is scored by "
                         f"{len(used)} verifiers ({names})")
    return used[0].removeprefix("scores_")


def difficulty(store: Store, generation: int, verifier: str | None = None, verifier_config: str | None = None,
               as_of: int | str | None = None) -> pa.Table:
    """Per-prompt k, passed, pass_rate, difficulty, unsolved, labeled; hardest first. `verifier` defaults to
    the only verifier that scored the generation."""
    con = connect(store, as_of)
    verifier = verifier or default_verifier(con, generation)
    col = parse_column(verifier, default_column="correct")
    ctx = SelectContext(store, con, generation=generation)
    vhash = ctx.resolve_config(col, verifier_config)
    q = catalog.get("select/difficulty")
    out = run_sql(con, q.sql, q.bind({"generation": generation, "verifier": col.scorer, "verifier_config": vhash}))
    con.close()
    return out


def label_queue(store: Store, generation: int, budget: int, verifier: str | None, out: str | Path, *,
                verifier_config: str | None = None, include_labeled: bool = False) -> LabelQueue:
    """Write the `budget` hardest prompts of `generation` to `out` (JSONL) for labeling."""
    if budget < 0:
        raise UsageError(f"--budget must be >= 0, got {budget}")
    table = difficulty(store, generation, verifier, verifier_config)
    if table.num_rows == 0:
        raise UsageError(f"generation {generation} has no non-human samples with a prompt; nothing to label")
    labeled = pc.fill_null(table.column("labeled"), False)
    todo = table if include_labeled else table.filter(pc.invert(labeled))
    top = todo.slice(0, budget)
    frame = pl.from_arrow(top).select(
        "prompt_id", "prompt", pl.lit("").alias("reference"), pl.lit(generation, pl.Int64).alias("generation"),
        "k", "pass_rate", "difficulty")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_ndjson(path)
    return LabelQueue(path, top.num_rows, table.num_rows, int(pc.sum(top.column("unsolved")).as_py() or 0),
                      table.num_rows - todo.num_rows)
