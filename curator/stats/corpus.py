"""N-gram statistics of whole generations, read from and written to the store.

Statistics are a function of a generation's samples, so they are recomputed for a generation whenever its
samples change (an ingest into it) or on demand (`curator stats`), and replace that generation's rows for
the tokenizer. They are computed for every origin of the generation and for all origins together
(origin '*'), which is what `curator shift` compares by default.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..progress import NullReporter, Reporter
from ..store import Transaction
from .ngrams import NgramAccumulator
from .tokenize import get_tokenizer

STATS_TABLES = ("ngram_totals", "ngram_buckets", "ngram_top", "ngram_sample")
DEFAULTS = {"buckets": 10_000, "top_k": 100, "sample_rate": 16}
_SCAN_ROWS = 8192


def compute_stats(
    tx: Transaction,
    generations: Sequence[int],
    tokenizer: str = "word_v1",
    *,
    buckets: int = DEFAULTS["buckets"],
    top_k: int = DEFAULTS["top_k"],
    sample_rate: int = DEFAULTS["sample_rate"],
    progress: Reporter | None = None,
) -> dict[str, Any]:
    """Recompute and write the statistics of `generations` inside the transaction `tx`."""
    if buckets < 1 or top_k < 1 or sample_rate < 1:
        raise UsageError(f"buckets, top_k and sample_rate must be >= 1, got {buckets}, {top_k}, {sample_rate}")
    tok = get_tokenizer(tokenizer)
    if "'" in tok.name:
        raise UsageError(f"tokenizer name must not contain quotes: {tok.name!r}")
    progress = progress or NullReporter()
    samples = tx.dataset("samples")
    summary: dict[str, Any] = {"tokenizer": tok.name}
    for generation in generations:
        generation = int(generation)
        where = f"generation = {generation}"
        origins = sorted(pc.unique(samples.to_table(columns=["origin"], filter=where)["origin"]).to_pylist())
        for table in STATS_TABLES:
            tx.delete(table, f"generation = {generation} AND tokenizer = '{tok.name}'")
        if not origins:
            continue
        acc = NgramAccumulator(tok, buckets=buckets, top_k=top_k, sample_rate=sample_rate)
        value_set = pa.array(origins, pa.string())
        bar = progress.task(f"n-gram stats gen {generation}", total=samples.count_rows(filter=where))
        for batch in samples.to_batches(columns=["text", "origin"], filter=where, batch_size=_SCAN_ROWS):
            codes = pc.index_in(batch.column("origin"), value_set=value_set).to_numpy(zero_copy_only=False)
            acc.update(batch.column("text"), codes.astype(np.int32))
            bar.advance(batch.num_rows)
        result = acc.finish(origins)
        if hasattr(acc, "missing_texts") and acc.missing_texts():
            # Rare: a global top-k n-gram never ranked high in any one batch; find its text in a second pass.
            for batch in samples.to_batches(columns=["text", "origin"], filter=where, batch_size=_SCAN_ROWS):
                codes = pc.index_in(batch.column("origin"), value_set=value_set).to_numpy(zero_copy_only=False)
                acc.fill_texts(batch.column("text"), codes.astype(np.int32))
            result = acc.finish(origins)
        for table, data in zip(STATS_TABLES, (result.totals, result.buckets, result.top, result.sample)):
            n = data.num_rows
            data = data.append_column("generation", pa.repeat(pa.scalar(generation, pa.int32()), n)) \
                       .append_column("tokenizer", pa.repeat(pa.scalar(tok.name), n))
            if table == "ngram_totals":
                data = data.append_column("stats_run", pa.repeat(pa.scalar(tx.run_id), n))
            tx.append(table, data)
        tx.generations.add(generation)
        everything = result.totals.filter(pc.and_(pc.equal(result.totals["origin"], "*"), pc.equal(result.totals["n"], 1)))
        summary[f"gen_{generation}"] = {"origins": origins, "documents": int(pc.sum(everything["documents"]).as_py() or 0)}
    return summary


def recompute(store, generations: Sequence[int] | None, tokenizer: str = "word_v1", *, progress: Reporter | None = None,
              **options: int) -> dict[str, Any]:
    """`curator stats`: recompute statistics for existing data in its own run."""
    if generations is None:
        generations = sorted(pc.unique(store.read("samples", columns=["generation"])["generation"]).to_pylist())
    with store.transaction("stats", {"generations": list(generations), "tokenizer": tokenizer, **options}) as tx:
        summary = compute_stats(tx, generations, tokenizer, progress=progress, **options)
        tx.summary.update(summary)
    return summary
