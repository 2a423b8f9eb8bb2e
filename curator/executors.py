"""Where plugin work runs: one interface, the local executor by default.

An executor takes a *task* (a pinned slice of a Lance table: dataset URI, version, columns, a filter and,
for incremental work, the row ids still to do) and a plugin, and yields the plugin's output batches. The
driver (`curator.scoring`) owns the store transaction and writes what the executor yields, so an executor
never touches the store's commit protocol.

The task is expressed in Lance terms on purpose: a Ray Data executor can split it by fragment (a row id's
upper 32 bits are its fragment id), read each part on a worker, ship the scorer there (scorers are
picklable until `setup()`), call `setup()` once per worker and `score()` per batch, and return the same
batches. Nothing in a scorer changes between executors.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import lance
import numpy as np
import pyarrow as pa

from .errors import CuratorError, UsageError
from .scorers.base import Scorer

ROW_ID = "_rowid"


class ScoringError(CuratorError):
    """A scorer failed on a batch; the message names the scorer and the batch's sample ids."""

    exit_code = 1


@dataclass(frozen=True)
class ScanTask:
    """A pinned slice of a Lance table for a plugin to process."""

    uri: str
    version: int
    columns: tuple[str, ...]
    filter: str | None = None
    # Sorted Lance row ids still to process; None means every row the filter selects.
    row_ids: np.ndarray | None = None
    batch_size: int = 256

    @property
    def rows(self) -> int | None:
        return None if self.row_ids is None else len(self.row_ids)


class Executor(Protocol):
    name: str

    def run(self, scorer: Scorer, task: ScanTask) -> Iterator[pa.Table]:
        """Yield `sample_id` + the scorer's columns for every row of the task, in any order."""
        ...


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Batches of exactly `size` rows (the last one shorter), whatever the scan produced."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - rows, batch.num_rows)
            pending.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if rows == size:
                yield pa.Table.from_batches(pending)
                pending, rows = [], 0
    if rows:
        yield pa.Table.from_batches(pending)


def _wanted(batches: Iterator[pa.RecordBatch], row_ids: np.ndarray | None) -> Iterator[pa.RecordBatch]:
    """Keep the rows whose row id is in the sorted `row_ids` (a binary search per batch, no hash set rebuilt)."""
    for batch in batches:
        if row_ids is not None:
            ids = batch.column(ROW_ID).to_numpy()
            pos = np.searchsorted(row_ids, ids)
            keep = (pos < len(row_ids)) & (row_ids[np.minimum(pos, len(row_ids) - 1)] == ids)
            if not keep.all():
                batch = batch.filter(pa.array(keep))
        yield batch.drop_columns([ROW_ID])


def run_batch(scorer: Scorer, batch: pa.Table) -> pa.Table:
    """Score one batch: `sample_id` plus the scorer's checked columns; failures name the batch's samples."""
    try:
        out = scorer.check_output(batch, scorer.score(batch))
    except CuratorError as exc:
        raise ScoringError(f"scorer {scorer.name} failed on a batch of {batch.num_rows} samples "
                           f"({_ids(batch)}): {exc}") from exc
    except Exception as exc:  # a plugin's own bug: name the samples so it can be reproduced
        raise ScoringError(f"scorer {scorer.name} failed on a batch of {batch.num_rows} samples "
                           f"({_ids(batch)}): {type(exc).__name__}: {exc}") from exc
    return out.add_column(0, "sample_id", batch.column("sample_id"))


def _ids(batch: pa.Table, shown: int = 5) -> str:
    ids = batch.column("sample_id").slice(0, shown).to_pylist()
    more = f" and {batch.num_rows - shown} more" if batch.num_rows > shown else ""
    return "sample ids " + ", ".join(ids) + more


class LocalExecutor:
    """Runs in this process: scan, score, yield. Models load once (`setup`) for the whole task."""

    name = "local"

    def run(self, scorer: Scorer, task: ScanTask) -> Iterator[pa.Table]:
        if task.row_ids is not None and len(task.row_ids) == 0:
            return
        ds = lance.dataset(task.uri, version=task.version)
        scan = ds.to_batches(columns=list(task.columns), filter=task.filter, with_row_id=True,
                             batch_size=max(task.batch_size, 1024))
        scorer.setup()
        for batch in _rebatch(_wanted(scan, task.row_ids), task.batch_size):
            yield run_batch(scorer, batch)


@dataclass(frozen=True)
class Chunk:
    """Rows `offset .. offset + limit` of what the task's filter selects in one fragment, in scan order."""

    fragment_id: int
    offset: int
    limit: int
    # The chunk's sorted row ids still to do (None: all of them).
    row_ids: np.ndarray | None


def plan_chunks(task: ScanTask, rows_per_chunk: int) -> list[Chunk]:
    """Split a task into fragment-local chunks. Reads only row ids; chunks that have nothing left to do are
    dropped, so an incremental run ships no work for rows already scored."""
    ds = lance.dataset(task.uri, version=task.version)
    chunks = []
    for frag in ds.get_fragments():
        ids = frag.to_table(columns=[], filter=task.filter, with_row_id=True).column(ROW_ID).to_numpy()
        for offset in range(0, len(ids), rows_per_chunk):
            span = ids[offset:offset + rows_per_chunk]
            todo = None
            if task.row_ids is not None:
                lo = np.searchsorted(task.row_ids, span[0], side="left")
                hi = np.searchsorted(task.row_ids, span[-1], side="right")
                todo = task.row_ids[lo:hi]
                if len(todo) == 0:
                    continue
            chunks.append(Chunk(frag.fragment_id, offset, len(span), todo))
    return chunks


# The worker process's scorer (unpickled by the initializer) and whether its `setup` ran: setup happens on
# the first chunk, so a failing setup surfaces as that chunk's error instead of breaking the pool.
_WORKER_SCORER: Scorer | None = None
_WORKER_READY = False


def _worker_init(blob: bytes) -> None:
    import pickle

    global _WORKER_SCORER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER_SCORER = pickle.loads(blob)


def _worker_chunk(task: ScanTask, chunk: Chunk) -> pa.Table | None:
    global _WORKER_READY
    scorer = _WORKER_SCORER
    assert scorer is not None, "worker started without _worker_init"
    if not _WORKER_READY:
        scorer.setup()
        _WORKER_READY = True
    frag = lance.dataset(task.uri, version=task.version).get_fragment(chunk.fragment_id)
    scan = frag.to_batches(columns=list(task.columns), filter=task.filter, offset=chunk.offset, limit=chunk.limit,
                           with_row_id=True, batch_size=max(task.batch_size, 1024))
    outs = [run_batch(scorer, batch) for batch in _rebatch(_wanted(scan, chunk.row_ids), task.batch_size)]
    return pa.concat_tables(outs) if outs else None


class ProcessExecutor:
    """Runs a scorer in worker processes, one chunk of a fragment at a time.

    The scorer is pickled once per worker (after `fit`, before `setup`), exactly what a cluster executor
    does; the driver keeps at most two chunks per worker in flight, so memory stays bounded. Workers are
    spawned, not forked: a forked copy of a process that already started torch or Lance threads can hang.
    """

    name = "processes"

    def __init__(self, workers: int = 0, rows_per_chunk: int | None = None) -> None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.workers = workers or cores
        self.rows_per_chunk = rows_per_chunk

    def run(self, scorer: Scorer, task: ScanTask) -> Iterator[pa.Table]:
        import multiprocessing
        import pickle
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        chunks = plan_chunks(task, self.rows_per_chunk or max(task.batch_size * 8, 4096))
        if not chunks:
            return
        blob = pickle.dumps(scorer)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_worker_init, initargs=(blob,)) as pool:
            pending = set()
            todo = iter(chunks)
            for chunk in todo:
                pending.add(pool.submit(_worker_chunk, task, chunk))
                if len(pending) >= 2 * self.workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from _results(done, pool)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from _results(done, pool)


def _results(done, pool) -> Iterator[pa.Table]:
    for fut in done:
        try:
            out = fut.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
        if out is not None:
            yield out


EXECUTORS = {"local": LocalExecutor, "processes": ProcessExecutor}


def executor(name: str = "local", workers: int = 0) -> Executor:
    """An executor by name: `local` (this process) or `processes` (`workers` processes; 0 = one per core)."""
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor '{name}'; available: {', '.join(sorted(EXECUTORS))}")
    if workers < 0:
        raise UsageError(f"--workers must be 0 (one per core) or more, got {workers}")
    return ProcessExecutor(workers) if name == "processes" else LocalExecutor()
