"""What the readers produce: the public types (``FieldMap``, ``Reject``, ``DocBatch``, ``DOC_SCHEMA``), the
per-file reading state the format readers share, and how they build and hand out batches."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curator.errors import InputError

SNIPPET = 200  # characters of a raw row kept in a Reject


@dataclass(frozen=True)
class FieldMap:
    """Which input fields (jsonl keys, csv / parquet columns) feed which document column."""

    text: str = "text"
    prompt: str | None = None  # e.g. "question"
    id: str | None = None  # an external id field
    reference: str | None = None  # gold answer field
    parent: str | None = None  # parent id field
    extra: bool = True  # keep other fields as JSON metadata

    def mapped(self) -> list[tuple[str, str]]:
        """(output column, input field) of the optional fields that are set, in output order."""
        pairs = [("prompt", self.prompt), ("external_id", self.id), ("reference", self.reference),
                 ("parent_id", self.parent)]
        return [(out, src) for out, src in pairs if src is not None]

    def used(self) -> set[str]:
        return {self.text} | {src for _, src in self.mapped()}


@dataclass(frozen=True)
class Reject:
    """One rejected row (on_error="skip")."""

    file: str
    line: int
    reason: str
    snippet: str  # the first 200 characters of the raw row


@dataclass
class DocBatch:
    """A batch of documents (columns of DOC_SCHEMA) plus the rows of the same stretch that were rejected."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)


DOC_SCHEMA = pa.schema([
    pa.field("text", pa.string(), nullable=False),
    pa.field("prompt", pa.string()),
    pa.field("external_id", pa.string()),
    pa.field("reference", pa.string()),
    pa.field("parent_id", pa.string()),
    pa.field("metadata", pa.string()),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),
])


def snippet(raw: bytes | str) -> str:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: SNIPPET * 4]).decode("utf-8", errors="replace")
    return raw[:SNIPPET]


@dataclass
class ReadContext:
    """Per-file reading state shared by the format readers."""

    file: str
    fields: FieldMap
    skip: bool
    max_doc: int
    batch_bytes: int

    def bad(self, line: int, reason: str, raw: bytes | str) -> Reject:
        """Fail mode: raise. Skip mode: return the Reject for the caller to collect."""
        if not self.skip:
            raise InputError(reason, file=self.file, line=int(line))
        return Reject(self.file, int(line), reason, snippet(raw))

    def settle(self, rejects: list[Reject]) -> list[Reject]:
        """Fail mode: raise the first (lowest line) of the collected rejects. Skip mode: them, in order."""
        if rejects:
            rejects = sorted(rejects, key=lambda r: r.line)
            if not self.skip:
                raise InputError(rejects[0].reason, file=self.file, line=rejects[0].line)
        return rejects

    def too_large(self, detail: str) -> str:
        """The reason for a document over max_doc_bytes; ``detail`` says by how much."""
        return f"document is larger than max_doc_bytes ({self.max_doc} bytes): {detail}"


def doc_table(ctx: ReadContext, text: pa.Array, rows: np.ndarray, optional: dict[str, pa.Array] | None = None,
              metadata: pa.Array | None = None) -> pa.Table:
    n = len(text)
    optional = optional or {}
    cols = [text]
    for name in ("prompt", "external_id", "reference", "parent_id"):
        cols.append(optional.get(name, pa.nulls(n, pa.string())))
    cols.append(metadata if metadata is not None else pa.nulls(n, pa.string()))
    cols.append(pa.repeat(pa.scalar(ctx.file, pa.string()), n))
    cols.append(pa.array(np.asarray(rows, dtype=np.int64)))
    return pa.Table.from_arrays(cols, schema=DOC_SCHEMA)


def emit(table: pa.Table | None, rejects: list[Reject]) -> Iterator[DocBatch]:
    """The DocBatch of one stretch of a file, unless it holds neither documents nor rejects."""
    if table is not None or rejects:
        yield DocBatch(table if table is not None else DOC_SCHEMA.empty_table(), rejects)


def empty_file(ctx: ReadContext, detail: str = "") -> Iterator[DocBatch]:
    reason = "file is empty" + (f" ({detail})" if detail else "")
    if not ctx.skip:
        raise InputError(reason, file=ctx.file)
    yield DocBatch(DOC_SCHEMA.empty_table(), [Reject(ctx.file, 0, reason, "")])
