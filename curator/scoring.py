"""Scoring runs: attach versioned scores to the samples of chosen generations, incrementally.

`score(store, scorers, generations=...)` is one store transaction: for each scorer it finds the samples
of those generations that its table lacks for this config (`config_hash`), runs the scorer over them
through an executor, and appends the rows to `scores_<scorer>` (created on first use). The run commits
once, with every scorer's table, and is recorded in `runs`; a scorer that fails on a batch fails the run
with the batch's sample ids named, and the store keeps every score committed before.

Decisions:
- a score table holds one row per (sample, config): scoring again with other options adds rows under
  another `config_hash` instead of replacing; `--rescore` replaces the rows of this config only;
- rows are never updated in place: a rescore deletes the old rows and appends new ones in the same run;
- `dsir_v1`-style scorers that learn from the store (`fit`) see it pinned at the version the run started from.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError
from .executors import ROW_ID, Executor, LocalExecutor, ScanTask
from .progress import NullReporter, Reporter
from .scorers.base import SAMPLE_COLUMNS, Scorer
from .store import Store
from .store.store import validate_tag
from .store.faults import crash_point
from .store.schema import score_table_schema

# Score rows are buffered to about this many before a fragment is written: fewer, larger data files.
WRITE_ROWS = 1 << 16


@dataclass
class ScorerSummary:
    scorer: str
    config_hash: str
    table: str
    scored: int
    skipped: int
    replaced: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


class StoreContext:
    """What `Scorer.fit` may read: the store's samples at a pinned version."""

    def __init__(self, store: Store, version: int, target_generations: list[int] | None) -> None:
        self._store = store
        self._version = version
        self._targets = target_generations

    @property
    def target_generations(self) -> list[int] | None:
        return self._targets

    def samples(self, *, generations: list[int] | None = None, origins: list[str] | None = None,
                columns: list[str] | None = None) -> pa.Table:
        clauses = []
        if generations is not None:
            clauses.append(_in("generation", [int(g) for g in generations]))
        if origins is not None:
            clauses.append(_in("origin", [str(o) for o in origins]))
        return self._store.read("samples", columns=columns, filter=" AND ".join(clauses) or None,
                                as_of=self._version)


def _in(column: str, values: list[Any]) -> str:
    """A Lance predicate `column IN (...)` from validated ints or quoted strings."""
    if not values:
        return "false"
    items = ", ".join(str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({items})"


def score(store: Store, scorers: list[Scorer], *, generations: list[int] | None = None, rescore: bool = False,
          batch_size: int | None = None, executor: Executor | None = None, progress: Reporter | None = None,
          tags: tuple[str, ...] = (), args: dict[str, Any] | None = None) -> list[ScorerSummary]:
    """Score the samples of `generations` (None: all) with each scorer; one atomic run. Returns per-scorer counts.

    `batch_size` (samples per `score` call) defaults to each scorer's own `batch_size`."""
    if not scorers:
        raise UsageError("no scorer given; name at least one with --scorer")
    names = [s.name for s in scorers]
    if len(set(names)) != len(names):
        raise UsageError(f"scorer named twice in one run: {names}; run each config separately")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    for tag in tags:
        validate_tag(tag)
    executor = executor or LocalExecutor()
    progress = progress or NullReporter()
    for s in scorers:
        bad = [c for c in s.inputs if c not in SAMPLE_COLUMNS]
        if bad:
            raise UsageError(f"scorer {s.name} asks for sample columns {bad}; samples have {', '.join(SAMPLE_COLUMNS)}")
    run_args = {"scorers": {s.name: {"config": s.config_dict(), "config_hash": s.config_hash} for s in scorers},
                "generations": generations, "rescore": rescore, "batch_size": batch_size,
                "executor": executor.name, **(args or {})}
    summaries = []
    with store.transaction("score", run_args) as tx:
        version = store.version()
        samples = tx.dataset("samples")
        where = None if generations is None else _in("generation", [int(g) for g in generations])
        present = samples.to_table(columns=["sample_id", "generation"], filter=where, with_row_id=True)
        if present.num_rows == 0:
            which = "the store" if generations is None else f"generation(s) {', '.join(map(str, generations))}"
            raise UsageError(f"no samples in {which}; ingest them first")
        targets = sorted(set(present.column("generation").to_pylist()))
        context = StoreContext(store, version, targets)
        for scorer in scorers:
            summaries.append(_score_one(tx, scorer, samples, where, present, context, rescore, batch_size,
                                        executor, progress))
        tx.generations.update(targets)
        for tag in tags:
            tx.tag(tag)
        tx.summary = {s.scorer: {"config_hash": s.config_hash, "scored": s.scored, "skipped": s.skipped,
                                 "replaced": s.replaced, "seconds": round(s.seconds, 3)} for s in summaries}
    return summaries


def _score_one(tx, scorer: Scorer, samples, where: str | None, present: pa.Table, context: StoreContext,
               rescore: bool, batch_size: int, executor: Executor, progress: Reporter) -> ScorerSummary:
    started = time.perf_counter()
    table, config_hash = scorer.table, scorer.config_hash
    schema = score_table_schema(table, scorer.name, scorer.output_schema())
    ids = present.column("sample_id")
    replaced = 0
    if rescore:
        keys = pa.table({"sample_id": ids, "config_hash": pa.array([config_hash] * len(ids), pa.string())})
        replaced = tx.delete_keys(table, keys)
        todo_mask = np.ones(len(ids), dtype=bool)
    elif tx.exists(table):
        done = tx.dataset(table).to_table(columns=["sample_id"], filter=f"config_hash = '{config_hash}'")
        todo_mask = ~pc.is_in(ids, value_set=done.column("sample_id")).to_numpy(zero_copy_only=False)
    else:
        todo_mask = np.ones(len(ids), dtype=bool)
    todo = int(todo_mask.sum())
    skipped = len(ids) - todo
    if todo == 0 and tx.exists(table):
        return ScorerSummary(scorer.name, config_hash, table, 0, skipped, replaced, time.perf_counter() - started)
    row_ids = None
    if skipped:
        row_ids = np.sort(present.column(ROW_ID).to_numpy()[todo_mask])
    scorer.fit(context)
    task = ScanTask(uri=samples.uri, version=samples.version,
                    columns=tuple(dict.fromkeys(("sample_id", *scorer.inputs))), filter=where, row_ids=row_ids,
                    batch_size=batch_size or scorer.batch_size)
    bar = progress.task(f"score {scorer.name}", total=todo, unit="samples")
    run_id = tx.run_id
    fragments, pending, pending_rows = [], [], 0
    for out in executor.run(scorer, task):
        n = out.num_rows
        out = out.add_column(1, "config_hash", pa.repeat(pa.scalar(config_hash, pa.string()), n))
        out = out.add_column(2, "run_id", pa.repeat(pa.scalar(run_id, pa.string()), n))
        pending.append(out.cast(schema))  # the table's nullability and metadata (values are already typed)
        pending_rows += n
        bar.advance(n)
        crash_point("scoring-batch")  # a batch scored, nothing committed: the loop's resume tests kill here
        if pending_rows >= WRITE_ROWS:
            fragments += tx.write_fragments(table, pa.concat_tables(pending))
            pending, pending_rows = [], 0
    if pending:
        fragments += tx.write_fragments(table, pa.concat_tables(pending))
    tx.commit_fragments(table, fragments, schema)
    crash_point("after-scores-commit")
    return ScorerSummary(scorer.name, config_hash, table, todo, skipped, replaced, time.perf_counter() - started)
