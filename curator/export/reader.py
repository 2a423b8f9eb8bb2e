"""Reading an export in a training loop: `ShardDataset`, a torch `IterableDataset` over the shards.

    from torch.utils.data import DataLoader
    from curator.export.reader import ShardDataset
    ds = ShardDataset("shards/gen3")                       # parquet/jsonl: dicts (sample_id, text, prompt, ...)
    ds = ShardDataset("shards/gen3-tok")                   # tokens: one document per item
    ds = ShardDataset("shards/gen3-tok", block_size=1025)  # tokens: fixed blocks (nanoGPT: x=b[:-1], y=b[1:])
    for batch in DataLoader(ds, batch_size=None, num_workers=2): ...

Semantics (one epoch = one pass of `iter`):

- Every exported document comes out exactly once per epoch. A sample appears as often as the export
  repeated it for its weight (`copy` says which repeat); weight-0 rows were never exported.
- Order: the export's own shuffled order (shard by shard); a different order is a different `--seed`.
- Splitting among consumers (DataLoader workers x distributed ranks; rank/world_size from the arguments or
  from an initialised `torch.distributed`): with at least as many shards as consumers, consumer c reads
  whole shards c, c + C, c + 2C, ... (each file is read by one consumer only); with fewer shards than
  consumers, every consumer reads every shard and keeps the documents (or blocks) whose index within the
  export is c modulo C. Either way the consumers' items are disjoint and together are the whole export.
- tokens: an item is {"input_ids": int64 tensor (the document's tokens and its eos), "sample_id", "copy"};
  with `block_size`, an item is {"input_ids": int64 tensor of block_size tokens}: each shard's token
  stream cut into consecutive blocks, the last incomplete block of each shard dropped.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import UsageError
from ..models import require
from .manifest import read_manifest
from .writers import SHARD_SCHEMA

torch = require("torch", "torch", "curator.export.reader")
_BATCH = 1024


class ShardDataset(torch.utils.data.IterableDataset):
    """An export folder as an iterable dataset (see the module docstring for what it yields and how
    workers split it)."""

    def __init__(self, folder: str | Path, *, columns: list[str] | None = None, block_size: int | None = None,
                 rank: int | None = None, world_size: int | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.format: str = self.manifest["format"]
        if block_size is not None and (self.format != "tokens" or block_size < 1):
            raise UsageError(f"block_size is for a tokens export and must be >= 1; got {block_size} "
                             f"for a {self.format} export")
        if columns is not None:
            unknown = [c for c in columns if c not in SHARD_SCHEMA.names]
            if unknown or self.format == "tokens":
                raise UsageError(f"columns {columns}: a parquet/jsonl export has {SHARD_SCHEMA.names}")
        self.columns = columns
        self.block_size = block_size
        self.rank, self.world_size = rank, world_size
        self.shards: list[dict[str, Any]] = self.manifest["shards"]
        # Index of each shard's first document within the whole export (for striding).
        self._first = np.concatenate(([0], np.cumsum([s["rows"] for s in self.shards]))).astype(np.int64)

    @property
    def num_documents(self) -> int:
        return int(self._first[-1])

    def _consumer(self) -> tuple[int, int]:
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized():
                rank, world = dist.get_rank(), dist.get_world_size()
            else:
                rank, world = 0, 1
        info = torch.utils.data.get_worker_info()
        wid, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * workers + wid, world * workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        me, count = self._consumer()
        whole_shards = len(self.shards) >= count
        blocks_seen = 0  # blocks mode with striding: the export-wide block index
        for k, shard in enumerate(self.shards):
            if whole_shards and k % count != me:
                continue
            stride = None if whole_shards else (me, count)
            if self.format == "tokens" and self.block_size:
                n_blocks = self._token_count(shard) // self.block_size
                yield from self._blocks(shard, stride, blocks_seen)
                blocks_seen += n_blocks
            elif self.format == "tokens":
                yield from self._documents(shard, stride, int(self._first[k]))
            else:
                yield from self._rows(shard, stride, int(self._first[k]))

    # ---- parquet / jsonl --------------------------------------------------------------------------
    def _tables(self, shard: dict[str, Any]) -> Iterator[pa.Table]:
        path = self.folder / shard["path"]
        if self.format == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH, columns=self.columns):
                yield pa.Table.from_batches([batch])
        else:
            import pyarrow.json as pj

            # Block size above the largest line (curator documents are at most 32 MiB): a row may not
            # straddle two blocks.
            size = path.stat().st_size
            table = pj.read_json(path, read_options=pj.ReadOptions(block_size=max(1 << 20, min(size + 1, 1 << 27))),
                                 parse_options=pj.ParseOptions(explicit_schema=SHARD_SCHEMA))
            if self.columns:
                table = table.select(self.columns)
            for batch in table.to_batches(max_chunksize=_BATCH):
                yield pa.Table.from_batches([batch])

    def _rows(self, shard: dict[str, Any], stride: tuple[int, int] | None, first: int) -> Iterator[dict[str, Any]]:
        seen = first
        for table in self._tables(shard):
            n = table.num_rows
            if stride is not None:
                keep = (np.arange(seen, seen + n) % stride[1]) == stride[0]
                table = table.filter(pa.array(keep))
            seen += n
            yield from table.to_pylist()

    # ---- tokens ------------------------------------------------------------------------------------
    def _token_files(self, shard: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        stem = (self.folder / shard["path"]).with_suffix("")
        dtype = np.dtype(self.manifest["tokenizer"]["dtype"]).newbyteorder("<")
        tokens = np.memmap(stem.with_suffix(".bin"), dtype=dtype, mode="r") if shard["bytes"] else np.zeros(0, dtype)
        offsets = np.fromfile(stem.with_suffix(".idx"), dtype="<i8")
        return tokens, offsets

    def _token_count(self, shard: dict[str, Any]) -> int:
        return shard["bytes"] // np.dtype(self.manifest["tokenizer"]["dtype"]).itemsize

    def _documents(self, shard: dict[str, Any], stride: tuple[int, int] | None, first: int) -> Iterator[dict[str, Any]]:
        import pyarrow.parquet as pq

        tokens, offsets = self._token_files(shard)
        sidecar = pq.read_table((self.folder / shard["path"]).with_suffix(".sidecar.parquet"),
                                columns=["sample_id", "copy"])
        ids, copies = sidecar.column("sample_id").to_pylist(), sidecar.column("copy").to_pylist()
        docs = np.arange(len(offsets) - 1)
        if stride is not None:
            docs = docs[((docs + first) % stride[1]) == stride[0]]
        for d in docs.tolist():
            yield {"input_ids": torch.from_numpy(tokens[offsets[d]:offsets[d + 1]].astype(np.int64)),
                   "sample_id": ids[d], "copy": copies[d]}

    def _blocks(self, shard: dict[str, Any], stride: tuple[int, int] | None, first: int) -> Iterator[dict[str, Any]]:
        tokens, _ = self._token_files(shard)
        n = len(tokens) // self.block_size
        blocks = np.arange(n)
        if stride is not None:
            blocks = blocks[((blocks + first) % stride[1]) == stride[0]]
        for b in blocks.tolist():
            lo = b * self.block_size
            yield {"input_ids": torch.from_numpy(tokens[lo:lo + self.block_size].astype(np.int64))}
