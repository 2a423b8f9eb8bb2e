"""Shard writers: Parquet (default) and JSONL. Each writes one shard table to one file, deterministically.

Byte-identity: the files depend only on the rows and on the fixed options below (no timestamps, no
hostnames, no row-group sizes that depend on how batches arrived: a shard is written in one call). Parquet
does carry its writer's `created_by` string ("parquet-cpp-arrow version X"), so identical bytes are promised
for the same pyarrow version, not across upgrades (the sha256 in the manifest is what a reader checks).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

# The columns of a Parquet/JSONL shard, in order. `text` is the training text; the rest keep it useful
# (prompt/reference for SFT, provenance for analysis). `copy` says which repeat of a weighted row this is.
SHARD_SCHEMA = pa.schema([
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("prompt", pa.string()),
    pa.field("reference", pa.string()),
    pa.field("generation", pa.int32(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("model", pa.string()),
    pa.field("parent_id", pa.string()),
    pa.field("weight", pa.float64(), nullable=False),
    pa.field("copy", pa.int32(), nullable=False),
])
SAMPLE_COLUMNS = ["sample_id", "text", "prompt", "reference", "generation", "origin", "model", "parent_id"]
# Rows per Parquet row group: small enough that a reader (datasets, the torch reader) streams a shard in
# pieces, fixed so the layout never depends on anything but the rows.
ROW_GROUP_ROWS = 8192
EXTENSIONS = {"parquet": ".parquet", "jsonl": ".jsonl"}


def write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(
        table, path,
        row_group_size=ROW_GROUP_ROWS,
        compression="zstd", compression_level=3,
        use_dictionary=["origin", "model"],  # low-cardinality columns only; texts gain nothing from it
        write_statistics=["generation", "weight", "copy"],  # min/max of texts are large and useless
        data_page_version="1.0",  # the widest-read page format
        version="2.6",
    )


def write_jsonl(table: pa.Table, path: Path) -> None:
    import polars as pl

    # polars writes NDJSON natively (no per-row Python), keys in column order, nulls as null, UTF-8 as is.
    pl.from_arrow(table).write_ndjson(path)


WRITERS = {"parquet": write_parquet, "jsonl": write_jsonl}
