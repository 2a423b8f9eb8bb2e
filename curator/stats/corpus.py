"""N-gram statistics of whole generations, read from and written to the store.

Statistics are a function of a generation's samples, so they are recomputed for a generation whenever its
samples change (an ingest into it) or on demand (`curator stats`), and replace that generation's rows for
the tokenizer. They are computed for every origin of the generation and for all origins together
(origin '*'), which is what `curator shift` compares by default.

An ingest into a generation that had no samples yet feeds its batches to the accumulator while it writes
them (`StreamingStats`), so the text is tokenized straight from the input and never read back; an
ingest that adds to an existing generation recomputes it from the store (`compute_stats`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..progress import NullReporter, Reporter
from ..store import Transaction
from .ngrams import NgramAccumulator, NgramStats
from .tokenize import Tokenizer, get_tokenizer

STATS_TABLES = ("ngram_totals", "ngram_buckets", "ngram_top", "ngram_sample")
DEFAULTS = {"buckets": 10_000, "top_k": 100, "sample_rate": 16}
_SCAN_ROWS = 8192


def _tokenizer(spec: str) -> Tokenizer:
    tok = get_tokenizer(spec)
    if "'" in tok.name:  # names go into Lance delete predicates
        raise UsageError(f"tokenizer name must not contain quotes: {tok.name!r}")
    return tok


def _accumulator(tx: Transaction, tok: Tokenizer, buckets: int, top_k: int, sample_rate: int) -> NgramAccumulator:
    if buckets < 1 or top_k < 1 or sample_rate < 1:
        raise UsageError(f"buckets, top_k and sample_rate must be >= 1, got {buckets}, {top_k}, {sample_rate}")
    # Partial counts past the memory budget spill under <store>/tmp, which the commit removes.
    return NgramAccumulator(tok, buckets=buckets, top_k=top_k, sample_rate=sample_rate, spill_dir=tx.store.temp_dir())


def _scan(tx: Transaction, generation: int, origins: list[str]) -> Iterable[tuple[pa.Array, np.ndarray]]:
    value_set = pa.array(origins, pa.string())
    for batch in tx.dataset("samples").to_batches(columns=["text", "origin"], filter=f"generation = {generation}",
                                                  batch_size=_SCAN_ROWS):
        codes = pc.index_in(batch.column("origin"), value_set=value_set).to_numpy(zero_copy_only=False)
        yield batch.column("text"), codes.astype(np.int32)


def _finish(acc: NgramAccumulator, origins: list[str], rescan: Callable[[], Iterable[tuple[pa.Array, np.ndarray]]]) -> NgramStats:
    result = acc.finish(origins)
    if acc.missing_texts():
        # Rare: a global top-k n-gram never ranked high in any one batch; find its text in a second pass.
        for texts, codes in rescan():
            acc.fill_texts(texts, codes)
        result = acc.finish(origins)
    return result


def _write(tx: Transaction, generation: int, tok: Tokenizer, result: NgramStats) -> dict[str, Any]:
    for table in STATS_TABLES:
        tx.delete(table, f"generation = {generation} AND tokenizer = '{tok.name}'")
    for table, data in zip(STATS_TABLES, (result.totals, result.buckets, result.top, result.sample)):
        n = data.num_rows
        data = data.append_column("generation", pa.repeat(pa.scalar(generation, pa.int32()), n)) \
                   .append_column("tokenizer", pa.repeat(pa.scalar(tok.name), n))
        if table == "ngram_totals":
            data = data.append_column("stats_run", pa.repeat(pa.scalar(tx.run_id), n))
        tx.append(table, data)
    tx.generations.add(generation)
    totals = result.totals
    everything = totals.filter(pc.and_(pc.equal(totals["origin"], "*"), pc.equal(totals["n"], 1)))
    return {"documents": int(pc.sum(everything["documents"]).as_py() or 0)}


class StreamingStats:
    """Statistics of a generation that is being created, fed batch by batch during its ingest."""

    def __init__(self, tx: Transaction, generation: int, origin: str, tokenizer: str = "word_v1", **options: int) -> None:
        self.tx, self.generation, self.origin = tx, generation, origin
        self.tok = _tokenizer(tokenizer)
        self.acc = _accumulator(tx, self.tok, **{**DEFAULTS, **options})

    def update(self, texts: pa.Array | pa.ChunkedArray) -> None:
        self.acc.update(texts, np.zeros(len(texts), np.int32))

    def write(self) -> dict[str, Any]:
        """Finish and write; call after the samples are committed (a second text pass may read them)."""
        with self.acc:
            result = _finish(self.acc, [self.origin], lambda: _scan(self.tx, self.generation, [self.origin]))
        return {"tokenizer": self.tok.name, f"gen_{self.generation}": _write(self.tx, self.generation, self.tok, result)}


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
    """Recompute and write the statistics of `generations` from the store, inside the transaction `tx`."""
    tok = _tokenizer(tokenizer)
    progress = progress or NullReporter()
    samples = tx.dataset("samples")
    summary: dict[str, Any] = {"tokenizer": tok.name}
    for generation in generations:
        generation = int(generation)
        where = f"generation = {generation}"
        origins = sorted(pc.unique(samples.to_table(columns=["origin"], filter=where)["origin"]).to_pylist())
        if not origins:
            for table in STATS_TABLES:
                tx.delete(table, f"generation = {generation} AND tokenizer = '{tok.name}'")
            continue
        bar = progress.task(f"n-gram stats gen {generation}", total=samples.count_rows(filter=where))
        with _accumulator(tx, tok, buckets, top_k, sample_rate) as acc:
            for texts, codes in _scan(tx, generation, origins):
                acc.update(texts, codes)
                bar.advance(len(texts))
            result = _finish(acc, origins, lambda: _scan(tx, generation, origins))
        summary[f"gen_{generation}"] = {"origins": origins, **_write(tx, generation, tok, result)}
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
