"""Export: a selection as deterministic training shards (Parquet, JSONL, or tokens), a manifest, a reader.

    from curator.export import export, verify
    result = export(store, "gen3-curated", fmt="parquet", shards=8, seed=0, out="shards/gen3")
    assert verify("shards/gen3").ok
    from curator.export.reader import ShardDataset   # torch IterableDataset (imports torch)

Modules: `plan` (weights -> copies, shuffle, sharding), `writers` (Parquet/JSONL), `tokens` (token files),
`manifest` (_manifest.json + verify), `run` (the export run), `reader` (the torch dataset).
"""
from .manifest import VerifyError, VerifyReport, read_manifest, verify
from .run import FORMATS, ExportResult, ShardResult, export

__all__ = ["FORMATS", "ExportResult", "ShardResult", "VerifyError", "VerifyReport", "export", "read_manifest",
           "verify"]
