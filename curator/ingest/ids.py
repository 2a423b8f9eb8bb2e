"""Content addressing, vectorised in DuckDB.

- `sample_id` = md5 hex of `generation`, `external_id`, `prompt_id` and `text_hash` (below), joined by
  the ASCII unit separator (U+001F), NULLs as empty strings; hashing the hashes, not the text again,
  reads every byte of the text once. Same generation + same content = same id, so re-ingesting a
  file adds nothing; the same text in another generation is another sample. The prompt is part of the
  content because a sample is a (prompt, completion) pair: the same answer to two questions is two
  samples. A file's own id field (`--id-field`) is part of it too, so deliberately repeated completions
  (k identical samples of one prompt) stay distinct when the file numbers them.
- `text_hash` = md5 hex of the text alone: the key for deduplication across generations.
- `prompt_id` = md5 hex of the prompt text (NULL without a prompt): groups the k samples of one prompt.

md5 is used as a content address, not for security; DuckDB computes it in C++ over the Arrow batch.
"""
from __future__ import annotations

import duckdb
import pyarrow as pa

_SQL = """
WITH h AS (
  SELECT external_id, md5(text) AS text_hash, CASE WHEN prompt IS NULL THEN NULL ELSE md5(prompt) END AS prompt_id
  FROM batch
)
SELECT
  md5(concat($g::VARCHAR, chr(31), coalesce(external_id, ''), chr(31), coalesce(prompt_id, ''), chr(31), text_hash))
    AS sample_id,
  text_hash,
  prompt_id
FROM h
"""


class IdHasher:
    """Holds one DuckDB connection for the whole ingest (a connection per batch costs milliseconds)."""

    def __init__(self) -> None:
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET threads = 1")

    def ids(self, batch: pa.Table, generation: int) -> pa.Table:
        self._con.register("batch", batch.select(["external_id", "prompt", "text"]))
        try:
            return self._con.sql(_SQL, params={"g": int(generation)}).to_arrow_table()
        finally:
            self._con.unregister("batch")
