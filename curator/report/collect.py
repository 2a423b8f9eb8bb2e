"""Read a store into the report's plain data model (no HTML here).

Arms and rounds follow the contract of the loop: the "loop" start run names the arms in order, arm number i
(1-based) round r lives in generation 100 * i + r, and round 0 of every arm is the human data (generation 0)
with the base model. Each round carries

- `heldout_ppl`: the held-out perplexity of that round's model (the summary of the latest "eval" run marked
  with the round's arm and round; the base model's, arm "base", for round 0);
- `metrics`: the value of every shift metric of `curator.shift.shift_report(con, generation, 0)` (round 0:
  generation 0 against itself, so distinct-n and the other levels are the human reference and divergences 0),
  with `status` ('ok', 'alarm', 'n/a') beside it;
- `ppl_hist`: document perplexities under the reference model (`scores_perplexity_v1`, the config of the
  latest run that scored the generation, as shift reads it) counted into bins shared by every generation
  scored under that config, and the human generation's counts under the same config and bins.

Each arm also carries the most over-represented bigrams of its last round (`curator.shift.overrepresented`).
A store without a loop run is one arm, "store", whose rounds are its non-zero generations in order.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from curator.errors import UsageError
from curator.shift import PERPLEXITY_TABLE, overrepresented, score_config, shift_report
from curator.store import Store
from curator.store.query import connect, run_sql

HIST_BINS = 24  # perplexity histogram bins (log-spaced)
TOP_NGRAMS = 15  # over-represented bigrams shown per arm
STORE_ARM = "store"  # the one arm of a store made without the loop

# Runs of the store, newest last, with the loop's marks pulled out of their args (one row per run: a few
# hundred at most, so the grouping below is plain Python over them).
_RUNS_SQL = """
SELECT
    seq, run_id, command, generations, started_at, ended_at,
    epoch(ended_at) - epoch(started_at) AS seconds,
    json_extract_string(args, '$.context.loop') AS loop,
    json_extract_string(args, '$.context.arm') AS arm,
    TRY_CAST(json_extract_string(args, '$.context.round') AS INTEGER) AS round,
    json_extract_string(args, '$.context.step') AS step,
    TRY_CAST(json_extract_string(args, '$.context.generation') AS INTEGER) AS context_generation,
    CASE WHEN command = 'loop' THEN args END AS loop_args,
    CASE WHEN command = 'eval' THEN TRY_CAST(json_extract_string(summary, '$.perplexity') AS DOUBLE) END AS perplexity
FROM runs
ORDER BY seq
"""

# Per-sample perplexities of some generations under one scorer config, a sample scored twice counting once
# with its latest row (the rule of sql/shift/scores/perplexity.sql, which returns only quantiles).
_PPL_VALUES_SQL = f"""
SELECT x.generation, s.perplexity
FROM {PERPLEXITY_TABLE} AS s
JOIN samples AS x ON x.sample_id = s.sample_id
WHERE s.config_hash = $config_hash
  AND list_contains($generations, x.generation)
  AND isfinite(s.perplexity) AND s.perplexity > 0
QUALIFY row_number() OVER (PARTITION BY s.sample_id ORDER BY s.run_id DESC) = 1
"""


@dataclass
class PplHistogram:
    """Counts of document perplexities in the bins `edges` (log-spaced, shared by every generation scored
    under `config_hash`); `human` = generation 0's counts under the same config (None when not scored)."""

    config_hash: str
    edges: list[float]
    counts: list[int]
    human: list[int] | None


@dataclass
class Round:
    round: int
    generation: int  # the store's generation number
    samples: int
    heldout_ppl: float | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    ppl_hist: PplHistogram | None = None


@dataclass
class Arm:
    name: str
    rounds: list[Round]
    overrepresented: list[dict[str, Any]]  # rows of shift.overrepresented for the last round (bigrams)


@dataclass
class LineageRow:
    arm: str | None
    round: int | None
    generation: int | None
    steps: list[str]
    runs: int
    seconds: float
    first_seq: int
    last_seq: int
    selected: int | None = None


@dataclass
class ReportData:
    store: str
    store_version: int
    loop: dict[str, Any] | None  # {"name", "rounds", "arms", "config"} of the loop start run
    arms: list[Arm]
    metrics: list[str]  # every shift metric name, in shift_report's order
    lineage: list[LineageRow]
    human_samples: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: non-finite floats become the strings 'Infinity', '-Infinity', 'NaN'."""
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def collect(store: Store | str | Path, *, loop: str | None = None, as_of: int | str | None = None,
            top_ngrams: int = TOP_NGRAMS) -> ReportData:
    """Everything the report shows, read from the store (see the module docstring)."""
    store = store if isinstance(store, Store) else Store(Path(store))
    con = connect(store, as_of)
    runs = run_sql(con, _RUNS_SQL).to_pylist()
    sizes = {r["generation"]: r["n"] for r in run_sql(
        con, "SELECT generation, count(*) AS n FROM samples GROUP BY generation").to_pylist()}

    starts = [r for r in runs if r["command"] == "loop"]
    if loop is not None:
        starts = [r for r in starts if json.loads(r["loop_args"]).get("name") == loop]
        if not starts:
            names = sorted({json.loads(r["loop_args"]).get("name") for r in runs if r["command"] == "loop"})
            raise UsageError(f"no loop named '{loop}' in the store; loops: {', '.join(map(str, names)) or 'none'}")
    loop_args = json.loads(starts[-1]["loop_args"]) if starts else None  # the latest loop of the store
    name = loop_args.get("name") if loop_args else None
    mine = [r for r in runs if loop_args is not None and r["loop"] == name]

    evals: dict[tuple[str, int], float | None] = {}
    for r in mine:  # runs are in seq order: a later eval of the same round replaces an earlier one
        if r["command"] == "eval" and r["arm"] is not None and r["round"] is not None:
            evals[(r["arm"], r["round"])] = r["perplexity"]
    evals_by_generation = {r["context_generation"]: r["perplexity"] for r in runs
                           if r["command"] == "eval" and r["context_generation"] is not None}

    if loop_args is not None:
        base_ppl = evals.get(("base", 0))
        plan = []
        for i, arm in enumerate(loop_args.get("arms", []), start=1):
            gens = [(r, 100 * i + r) for r in range(1, int(loop_args.get("rounds", 0)) + 1)
                    if 100 * i + r in sizes or (arm, r) in evals]
            plan.append((arm, [(r, g, evals.get((arm, r))) for r, g in gens]))
    else:
        base_ppl = evals_by_generation.get(0)
        gens = sorted(g for g in sizes if g != 0)
        plan = [(STORE_ARM, [(r, g, evals_by_generation.get(g)) for r, g in enumerate(gens, start=1)])] if gens else []

    human = _round(con, 0, 0, sizes, base_ppl)
    arms = []
    for arm, rounds in plan:
        rows = [human] + [_round(con, r, g, sizes, ppl) for r, g, ppl in rounds]
        last = rows[-1].generation
        over = overrepresented(con, last, 0, n=2, limit=top_ngrams).to_pylist() if last != 0 else []
        arms.append(Arm(arm, rows, over))
    _histograms(con, arms)
    metrics = list(human.metrics)
    for arm in arms:
        metrics += [m for r in arm.rounds for m in r.metrics if m not in metrics]
    return ReportData(store=str(store.root), store_version=store.version() if as_of is None else store.resolve(as_of),
                      loop=loop_args, arms=arms, metrics=metrics, lineage=_lineage(con, runs, mine, loop_args),
                      human_samples=sizes.get(0, 0))


def _round(con: duckdb.DuckDBPyConnection, rnd: int, generation: int, sizes: dict[int, int],
           heldout_ppl: float | None) -> Round:
    rows = shift_report(con, generation, 0)
    return Round(round=rnd, generation=generation, samples=sizes.get(generation, 0), heldout_ppl=heldout_ppl,
                 metrics={r.metric: r.value for r in rows}, status={r.metric: r.status for r in rows})


def _histograms(con: duckdb.DuckDBPyConnection, arms: list[Arm]) -> None:
    """Fill each round's `ppl_hist`: one read per scorer config, bins shared by all its generations."""
    if not run_sql(con, "SELECT 1 FROM information_schema.tables WHERE table_name = $t",
                   {"t": PERPLEXITY_TABLE}).num_rows:
        return
    by_config: dict[str, set[int]] = {}
    config_of: dict[int, str] = {}
    for arm in arms:
        for r in arm.rounds:
            if r.generation not in config_of:
                config = score_config(con, PERPLEXITY_TABLE, r.generation)
                if config is None:
                    continue
                config_of[r.generation] = config
            by_config.setdefault(config_of[r.generation], set()).add(r.generation)
    hists: dict[int, PplHistogram] = {}
    for config, gens in by_config.items():
        table = run_sql(con, _PPL_VALUES_SQL, {"config_hash": config, "generations": sorted(gens | {0})})
        if not table.num_rows:
            continue
        generation = table.column("generation").to_numpy()
        ppl = table.column("perplexity").to_numpy()
        edges = log_bins(ppl, HIST_BINS)
        human = np.histogram(ppl[generation == 0], edges)[0] if (generation == 0).any() else None
        for g in gens:
            counts = np.histogram(ppl[generation == g], edges)[0]
            hists[g] = PplHistogram(config, edges.tolist(), counts.tolist(), None if human is None else human.tolist())
    for arm in arms:
        for r in arm.rounds:
            r.ppl_hist = hists.get(r.generation)


def log_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """`bins` log-spaced edges spanning the positive `values` (perplexities span orders of magnitude)."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo * 1.0001:  # one value: a narrow band around it
        lo, hi = lo / 1.1, hi * 1.1
    edges = np.geomspace(lo, hi, bins + 1)
    edges[0], edges[-1] = lo, hi  # exactly the extremes, so np.histogram counts both ends
    return edges


def _lineage(con: duckdb.DuckDBPyConnection, runs: list[dict[str, Any]], mine: list[dict[str, Any]],
             loop_args: dict[str, Any] | None) -> list[LineageRow]:
    """Loop stores: one row per (arm, round) of the loop's runs, steps in the order they ran, with the size
    of the round's selection (`<arm>-r<round>`). Other stores: one row per run."""
    if loop_args is None:
        return [LineageRow(None, None, (r["generations"] or [None])[0] if len(r["generations"] or []) == 1 else None,
                           [r["command"]], 1, float(r["seconds"] or 0.0), r["seq"], r["seq"]) for r in runs]
    selected = {r["selection"]: r["n"] for r in run_sql(
        con, "SELECT selection, count(*) AS n FROM selections GROUP BY selection").to_pylist()}
    order = ["base", *loop_args.get("arms", [])]
    rows: dict[tuple[str, int], LineageRow] = {}
    for r in mine:
        if r["arm"] is None or r["round"] is None:
            continue
        key = (r["arm"], r["round"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = LineageRow(r["arm"], r["round"], r["context_generation"], [], 0, 0.0, r["seq"], r["seq"],
                                         selected.get(f"{r['arm']}-r{r['round']}"))
        step = r["step"] or r["command"]
        if step not in row.steps:
            row.steps.append(step)
        row.runs += 1
        row.seconds += float(r["seconds"] or 0.0)
        row.last_seq = r["seq"]
        if row.generation is None:
            row.generation = r["context_generation"]
    return sorted(rows.values(), key=lambda x: (order.index(x.arm) if x.arm in order else len(order), x.arm, x.round))


def summary_rows(data: ReportData) -> list[dict[str, Any]]:
    """One flat dict per arm and round: arm, generation (the ROUND number), store_generation, samples,
    heldout_ppl, then every shift metric (distinct_2, distinct_3, js_divergence_2, ...)."""
    out = []
    for arm in data.arms:
        for r in arm.rounds:
            row: dict[str, Any] = {"arm": arm.name, "generation": r.round, "store_generation": r.generation,
                                   "samples": r.samples, "heldout_ppl": r.heldout_ppl}
            row.update({m: r.metrics.get(m) for m in data.metrics})
            out.append(row)
    return out
