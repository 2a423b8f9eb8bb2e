"""Streaming, vectorised readers: input files -> Arrow batches of documents, with exact error locations.

Formats (``discover`` picks one from ``--format`` or the file extension)::

    jsonl    .jsonl .ndjson .json   one JSON object per line
    csv      .csv                   header line, then one record per row (quoted fields may span lines)
    tsv      .tsv                   the same, tab-separated
    parquet  .parquet
    text     .txt .text .md         plain text, documents separated by blank lines (or ``text_separator``)

jsonl, csv, tsv and text may carry a trailing ``.gz``, ``.zst`` or ``.bz2``; they are decompressed while
streaming. Folders are walked recursively in sorted order; hidden files and folders (name starting with
``.``) and files of unknown extension inside a folder are skipped.

Every format yields ``DocBatch`` objects whose ``table`` has the columns of ``DOC_SCHEMA``:

    text         the document text (never null)
    prompt       the ``FieldMap.prompt`` field, or null
    external_id  the ``FieldMap.id`` field, or null
    reference    the ``FieldMap.reference`` field (gold answer), or null
    parent_id    the ``FieldMap.parent`` field, or null
    metadata     JSON object text of every other top-level field when ``FieldMap.extra`` is true, else null.
                 Fields whose value is null are left out (Arrow cannot tell a null from a missing field);
                 a row with no other non-null field gets null.
    source_file  the path as given
    source_row   where the document came from:
                   jsonl   1-based physical line number (blank lines are counted, so it matches an editor)
                   text    1-based line number of the document's first (non-blank) line
                   csv/tsv 1-based data record number, the header excluded (a record may span lines)
                   parquet 1-based row number

Value rules. The text field must be a JSON string (csv: any cell; parquet: a string or UTF-8 binary
column): a missing, null or non-string text is a bad row. prompt/id/reference/parent may be strings,
numbers or booleans; numbers and booleans are cast to strings (``7`` -> ``"7"``, ``3.0`` -> ``"3"``,
``true`` -> ``"true"``); arrays and objects there are bad rows. In csv/tsv every cell is read as text
(nothing is type-guessed, so ``007`` stays ``007``) and an empty cell outside the text column is null.
Text documents are stripped of surrounding ASCII whitespace (space, tab, CR, LF, VT, FF); a "blank line"
is a line holding only those; runs of blank lines are one separator; empty documents are dropped. The
size limit ``max_doc_bytes`` applies to the raw jsonl line, the stripped text document, or the csv /
parquet text value. ``text_separator`` is ignored by the other formats.

Errors. ``on_error="fail"`` (default) raises ``InputError(file=..., line=...)`` at the first bad row;
``on_error="skip"`` keeps the good rows and reports each bad one as a ``Reject`` in ``DocBatch.rejects``
(``Reject.line`` uses the same numbering as ``source_row``; for an invalid UTF-8 byte in a text document
it is the line of that byte). Bad rows are: malformed JSON or a non-object line, a missing / null /
non-string text, a nested prompt/id/reference/parent, invalid UTF-8, a document over ``max_doc_bytes``,
a csv record with the wrong number of fields. An empty file (0 bytes or only whitespace; for csv/tsv
also a header without records; for parquet 0 rows) raises "file is empty", or in skip mode yields one
Reject with line 0. Problems with the whole file raise in both modes: unknown format, missing or
unreadable file, a csv/parquet without the text column (or another mapped column), a parquet text column
that is not a string.

Streaming and speed. jsonl and text are read in blocks of ``batch_bytes`` (through
``pyarrow.input_stream(compression="detect")``), cut at the last complete line / separator, with the rest
carried into the next block, so memory stays bounded by about ``max_doc_bytes + 2 * batch_bytes``
whatever the file size. There is no per-line Python on the happy path: a jsonl block is parsed by
``pyarrow.json.read_json`` and its rows are mapped to line numbers with numpy over the block bytes; text
documents are located with numpy (newline positions, blank-line mask) and cut out of the block buffer
with Arrow. Only when the vectorised parse or checks of a block fail is the block diagnosed line by line
in Python, to give the exact line and reason. Two slower cases that are not errors: Arrow turns
date-like strings into timestamps, so a block holding some is parsed a second time with them declared as
strings (values stay verbatim); a block that Arrow cannot type as a whole (a field that is a number in one
row and a string in another) is built in Python, with the same output. csv uses ``pyarrow.csv.open_csv``
(streaming, block size ``batch_bytes``; Arrow needs each record inside one block, so when one is not the
file is read again with a bigger block, skipping the rows already yielded, up to about
``2 * (max_doc_bytes + batch_bytes)``), parquet ``ParquetFile.iter_batches`` (about ``batch_bytes`` per
batch). Arrow reads run with ``use_threads=False``: parallelism belongs to the caller (a file per worker).

Modules: ``formats`` (format names, extensions, ``discover``), ``documents`` (the public types and the
per-file state the readers share), ``blocks`` (block streaming, line index and UTF-8 checks for jsonl and
text), ``jsonl``, ``text``, ``tabular`` (csv / tsv and parquet), ``values`` (mapped fields -> strings),
``metadata`` (the other fields -> JSON).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curator.errors import InputError, UsageError

from .blocks import read_blocks
from .documents import DOC_SCHEMA, DocBatch, FieldMap, ReadContext, Reject
from .formats import FORMATS, discover, normalise_format
from .jsonl import JsonlSplitter
from .tabular import read_csv, read_parquet
from .text import BlankSplitter, SepSplitter

__all__ = [
    "DOC_SCHEMA",
    "FORMATS",
    "DocBatch",
    "FieldMap",
    "Reject",
    "discover",
    "read_documents",
]

_ON_ERROR = ("fail", "skip")


def read_documents(path: Path, fmt: str, fields: FieldMap, *, on_error: str = "fail",
                   text_separator: str | None = None, batch_bytes: int = 16 << 20,
                   max_doc_bytes: int = 32 << 20) -> Iterator[DocBatch]:
    """Stream the documents of one file as ``DocBatch``es (see the module docstring for every rule)."""
    if on_error not in _ON_ERROR:
        raise UsageError(f"unknown on_error {on_error!r}: expected one of {', '.join(_ON_ERROR)}")
    fmt = normalise_format(fmt)
    # text_separator only concerns the text format; other formats ignore it, so that one setting can be
    # passed for a folder of mixed files.
    if text_separator == "":
        raise UsageError("text_separator must not be empty")
    if batch_bytes < 1:
        raise UsageError(f"batch_bytes must be positive, got {batch_bytes}")
    if max_doc_bytes < 1:
        raise UsageError(f"max_doc_bytes must be positive, got {max_doc_bytes}")
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", file=str(path))
    if not path.is_file():
        raise InputError("not a regular file", file=str(path))
    ctx = ReadContext(str(path), fields, on_error == "skip", max_doc_bytes, batch_bytes)
    if fmt == "jsonl":
        return read_blocks(path, ctx, JsonlSplitter(ctx))
    if fmt == "text":
        splitter = SepSplitter(ctx, text_separator) if text_separator is not None else BlankSplitter(ctx)
        return read_blocks(path, ctx, splitter)
    if fmt in ("csv", "tsv"):
        return read_csv(path, ctx, "\t" if fmt == "tsv" else ",")
    return read_parquet(path, ctx)
