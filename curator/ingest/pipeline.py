"""Ingest: files -> `samples` rows (+ n-gram statistics), in one atomic store commit.

Streaming: each input batch is hashed, deduplicated and written as uncommitted Lance fragments; only
fragment metadata stays in memory. After the last batch the fragments are committed in one Lance append,
the n-gram statistics of the touched generation are written (counted from the stream for a new
generation, recomputed from the store when rows are added to an existing one), rejected rows (with
`--on-error skip`) go to `rejects`, and the run row commits everything together. With the default
`--on-error fail` the first bad row raises before anything is committed, so the store is unchanged.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..progress import NullReporter, Reporter
from ..store import Store
from ..store.faults import crash_point
from .ids import IdHasher
from .readers import FieldMap, Reject, discover, read_documents
from .seen import SeenIds, filter_mask

ORIGINS = ("human", "synthetic", "edited", "labeled")


@dataclass
class IngestResult:
    run_id: str
    store_version: int
    generation: int
    origin: str
    files: list[str]
    rows_read: int = 0
    rows_added: int = 0
    duplicates: int = 0
    rejected: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


def _validate(generation: int, origin: str, on_error: str) -> None:
    if not isinstance(generation, int) or generation < 0:
        raise UsageError(f"generation must be an integer >= 0, got {generation!r}")
    if origin not in ORIGINS:
        raise UsageError(f"unknown origin '{origin}'; expected one of {', '.join(ORIGINS)}")
    if on_error not in ("fail", "skip"):
        raise UsageError(f"--on-error must be 'fail' or 'skip', got '{on_error}'")


def ingest(
    store: Store,
    paths: Sequence[str | Path],
    *,
    generation: int,
    origin: str,
    fields: FieldMap = FieldMap(),
    fmt: str | None = None,
    model: str | None = None,
    decoding: dict[str, Any] | None = None,
    on_error: str = "fail",
    text_separator: str | None = None,
    tokenizer: str = "word_v1",
    stats: bool = True,
    tags: Sequence[str] = (),
    progress: Reporter | None = None,
    batch_bytes: int = 16 << 20,
) -> IngestResult:
    """Ingest files or folders into `generation` with `origin`; returns what was added."""
    _validate(generation, origin, on_error)
    progress = progress or NullReporter()
    files = discover(paths, fmt)
    args = {
        "paths": [str(p) for p in paths], "generation": generation, "origin": origin, "fields": fields.__dict__,
        "format": fmt, "model": model, "decoding": decoding, "on_error": on_error, "separator": text_separator,
        "tokenizer": tokenizer, "stats": stats,
    }
    hasher = IdHasher()
    decoding_json = json.dumps(decoding, sort_keys=True) if decoding is not None else None
    with store.transaction("ingest", args) as tx:
        result = IngestResult(tx.run_id, 0, generation, origin, [str(f) for f, _ in files])
        seen = SeenIds(tx.dataset("samples").to_table(columns=["sample_id"],
                                                      filter=f"generation = {generation}")["sample_id"])
        streaming = None
        if stats and len(seen) == 0:
            # A new generation: count its n-grams from the input stream instead of reading it back.
            from ..stats.corpus import StreamingStats

            streaming = StreamingStats(tx, generation, origin, tokenizer)
        rejects: list[Reject] = []
        fragments = []
        total_bytes = sum(f.stat().st_size for f, _ in files)
        bar = progress.task(f"ingest gen {generation}", total=total_bytes)
        for path, file_fmt in files:
            for batch in read_documents(path, file_fmt, fields, on_error=on_error, text_separator=text_separator,
                                        batch_bytes=batch_bytes):
                rejects.extend(batch.rejects)
                table = batch.table
                result.rows_read += table.num_rows
                if table.num_rows:
                    bar.advance(pc.sum(pc.binary_length(table["text"])).as_py() or 0)
                    table = _new_rows(table, hasher, generation, seen)
                    result.duplicates += batch.table.num_rows - table.num_rows
                if table.num_rows == 0:
                    continue
                table = _complete(table, generation, origin, model, decoding_json, tx.run_id)
                fragments.extend(tx.write_fragments("samples", table))
                if streaming is not None:
                    streaming.update(table["text"])
                result.rows_added += table.num_rows
                crash_point("ingest-mid-write")
        crash_point("before-samples-commit")
        tx.commit_fragments("samples", fragments)
        crash_point("after-samples-commit")
        if rejects:
            tx.append("rejects", pa.Table.from_pylist([
                {"ingest_run": tx.run_id, "file": r.file, "line": r.line, "reason": r.reason, "snippet": r.snippet}
                for r in rejects
            ]))
        result.rejected = len(rejects)
        if stats and result.rows_added:
            if streaming is not None:
                result.stats = streaming.write()
            else:
                from ..stats.corpus import compute_stats

                result.stats = compute_stats(tx, [generation], tokenizer, progress=progress)
            crash_point("after-stats")
        tx.generations.add(generation)
        tx.tag(f"gen-{generation}")
        for tag in tags:
            tx.tag(tag)
        tx.summary.update(rows_read=result.rows_read, rows_added=result.rows_added, duplicates=result.duplicates,
                          rejected=result.rejected, files=len(files))
    result.store_version = store.version()
    return result


def _new_rows(table: pa.Table, hasher: IdHasher, generation: int, seen: SeenIds) -> pa.Table:
    """Add content ids and drop rows already in the store or earlier in this ingest (of duplicates
    inside a batch, the first: the earliest line)."""
    ids = hasher.ids(table, generation)
    table = table.append_column("sample_id", ids["sample_id"]).append_column("text_hash", ids["text_hash"]) \
                 .append_column("prompt_id", ids["prompt_id"])
    return filter_mask(table, seen.fresh(table["sample_id"]))


def _complete(table: pa.Table, generation: int, origin: str, model: str | None, decoding: str | None,
              run_id: str) -> pa.Table:
    """Add the columns that are the same for every row of this ingest."""
    n = table.num_rows
    for name, value, type_ in (("generation", generation, pa.int32()), ("origin", origin, pa.string()),
                               ("model", model, pa.string()), ("decoding", decoding, pa.string()),
                               ("ingest_run", run_id, pa.string())):
        table = table.append_column(name, pa.repeat(pa.scalar(value, type_), n))
    return table
