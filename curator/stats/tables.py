"""The four statistics tables (definitions: ``curator.stats.ngrams``): their schemas, the result
type, and how their rows are collected."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curator.stats.fold import _Fold
from curator.stats.texts import _TopTexts

TOTALS_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("documents", pa.int64()), ("tokens", pa.int64()),
    ("total", pa.int64()), ("distinct", pa.int64()), ("buckets", pa.int32()),
    ("sample_rate", pa.int32()), ("top_k", pa.int32()),
])
BUCKETS_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("bucket", pa.int32()), ("count", pa.int64()),
])
TOP_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("rank", pa.int32()), ("ngram", pa.string()),
    ("hash", pa.uint64()), ("count", pa.int64()), ("doc_freq", pa.int64()),
])
SAMPLE_SCHEMA = pa.schema([
    ("origin", pa.string()), ("n", pa.int32()), ("hash", pa.uint64()), ("count", pa.int64()),
    ("doc_freq", pa.int64()),
])


@dataclass
class NgramStats:
    """The four statistics tables of one corpus (definitions: ``curator.stats.ngrams``)."""

    tokenizer: str
    totals: pa.Table
    buckets: pa.Table
    top: pa.Table
    sample: pa.Table
    missing_texts: int = 0

    def tables(self) -> dict[str, pa.Table]:
        return {"totals": self.totals, "buckets": self.buckets, "top": self.top, "sample": self.sample}


class _Rows:
    """Column-wise row collector: per column a list of parts, one conversion at the end."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {}

    def add(self, rows: int, origin: str, **cols) -> None:
        if not rows:
            return
        self.cols.setdefault("origin", []).append(pa.repeat(pa.scalar(origin, pa.string()), rows))
        for k, v in cols.items():
            self.cols.setdefault(k, []).append(v)

    def table(self, schema: pa.Schema) -> pa.Table:
        arrays = []
        for f in schema:
            chunks = [p if isinstance(p, pa.Array) else pa.array(p, type=f.type) for p in self.cols.get(f.name, [])]
            arrays.append(pa.concat_arrays(chunks) if chunks else pa.array([], type=f.type))
        return pa.Table.from_arrays(arrays, schema=schema)


def _emit(tables: dict[str, _Rows], origin: str, n: int, counts: tuple[int, int, int], fold: _Fold,
          options: tuple[int, int, int], texts: _TopTexts) -> None:
    """Add the rows of one (origin, n): ``counts`` = (documents, tokens, total), ``options`` =
    (buckets, sample_rate, top_k)."""
    documents, tokens, total = counts
    buckets, sample_rate, top_k = options
    tables["totals"].add(1, origin, n=[n], documents=[documents], tokens=[tokens], total=[total],
                         distinct=[fold.distinct], buckets=[buckets], sample_rate=[sample_rate], top_k=[top_k])
    if not fold.distinct:
        return
    nb = len(fold.bucket_ids)
    tables["buckets"].add(nb, origin, n=np.full(nb, n, np.int32), bucket=fold.bucket_ids, count=fold.bucket_counts)
    th, tv, tc, td = fold.top
    tables["top"].add(len(th), origin, n=np.full(len(th), n, np.int32),
                      rank=np.arange(1, len(th) + 1, dtype=np.int32), ngram=texts.lookup(n, th, tv), hash=th,
                      count=tc, doc_freq=td)
    sh, sc, sd = fold.sample
    tables["sample"].add(len(sh), origin, n=np.full(len(sh), n, np.int32), hash=sh, count=sc, doc_freq=sd)
