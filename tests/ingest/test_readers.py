"""Readers: formats, field mapping, exact error locations, streaming across block boundaries, real data."""
from __future__ import annotations

import bz2
import gzip
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator.errors import InputError, UsageError
from curator.ingest.readers import DOC_SCHEMA, DocBatch, FieldMap, Reject, discover, read_documents

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WS = " \t\r\x0b\x0c\n"


def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data folder beside the repository)")
    return path


def read_all(path: Path, fmt: str, fields: FieldMap = FieldMap(), **kw) -> tuple[pa.Table, list[Reject]]:
    batches = list(read_documents(path, fmt, fields, **kw))
    for b in batches:
        assert isinstance(b, DocBatch) and b.table.schema == DOC_SCHEMA
    table = pa.concat_tables([b.table for b in batches]) if batches else DOC_SCHEMA.empty_table()
    return table, [r for b in batches for r in b.rejects]


def rows(table: pa.Table, *cols: str) -> list[tuple]:
    data = table.to_pydict()
    return list(zip(*(data[c] for c in cols)))


def fail(path: Path, fmt: str, fields: FieldMap = FieldMap(), **kw) -> InputError:
    with pytest.raises(InputError) as err:
        read_all(path, fmt, fields, **kw)
    return err.value


# ------------------------------------------------------------------------------------------------ discover


def test_discover_extensions_folders_and_hidden(tmp_path: Path) -> None:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / ".hidden").mkdir()
    names = ["b.jsonl", "a.ndjson", "c.json", "d.parquet", "e.csv", "f.tsv", "g.txt", "h.text", "i.md",
             "j.jsonl.gz", "k.csv.zst", "l.txt.bz2", "sub/m.jsonl", "README", "notes.xyz", ".dot.jsonl",
             ".hidden/n.jsonl"]
    for n in names:
        (d / n).write_text("x")
    got = [(p.relative_to(d).as_posix(), f) for p, f in discover([d])]
    assert got == [("a.ndjson", "jsonl"), ("b.jsonl", "jsonl"), ("c.json", "jsonl"), ("d.parquet", "parquet"),
                   ("e.csv", "csv"), ("f.tsv", "tsv"), ("g.txt", "text"), ("h.text", "text"), ("i.md", "text"),
                   ("j.jsonl.gz", "jsonl"), ("k.csv.zst", "csv"), ("l.txt.bz2", "text"), ("sub/m.jsonl", "jsonl")]
    # a file named directly, even hidden; the same file twice is listed once
    assert discover([d / ".dot.jsonl", str(d / "b.jsonl"), d / "b.jsonl"]) == [(d / ".dot.jsonl", "jsonl"),
                                                                                (d / "b.jsonl", "jsonl")]
    # --format overrides the extension, folders then take every (non-hidden) file
    assert discover([d / "notes.xyz"], fmt="text") == [(d / "notes.xyz", "text")]
    assert len(discover([d], fmt="jsonl")) == 15


def test_discover_errors(tmp_path: Path) -> None:
    (tmp_path / "a.xyz").write_text("x")
    with pytest.raises(InputError) as err:
        discover([tmp_path / "a.xyz"])
    msg = str(err.value)
    assert "a.xyz" in msg and "'.xyz'" in msg and "--format" in msg and ".jsonl" in msg and ".parquet" in msg
    (tmp_path / "b.parquet.gz").write_text("x")
    with pytest.raises(InputError, match="--format"):
        discover([tmp_path / "b.parquet.gz"])
    with pytest.raises(InputError, match="no such file or folder") as err:
        discover([tmp_path / "missing.jsonl"])
    assert err.value.file == str(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.xyz").write_text("x")
    (empty / ".x.jsonl").write_text("x")
    with pytest.raises(InputError, match="folder has no readable files"):
        discover([empty])
    with pytest.raises(UsageError, match="unknown format 'yaml'"):
        discover([tmp_path / "a.xyz"], fmt="yaml")


def test_bad_arguments(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "x"}\n')
    with pytest.raises(UsageError, match="unknown on_error 'ignore'"):
        read_all(p, "jsonl", on_error="ignore")
    with pytest.raises(UsageError, match="unknown format 'xml'"):
        read_all(p, "xml")
    with pytest.raises(UsageError, match="text_separator must not be empty"):
        read_all(p, "text", text_separator="")
    with pytest.raises(InputError, match="no such file"):
        read_all(tmp_path / "nope.jsonl", "jsonl")
    # aliases, and a separator is ignored by formats other than text
    assert read_all(p, "ndjson", text_separator="###")[0].num_rows == 1


# ------------------------------------------------------------------------------------------------ jsonl


def test_jsonl_field_mapping_casts_and_metadata(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    lines = [
        {"q": "what?", "a": "answer one", "id": 7, "gold": 3.0, "par": "p1", "score": 0.5, "tags": ["x"]},
        {"q": "again?", "a": "answer two", "id": 8, "gold": 2.5, "flag": True, "nested": {"k": None, "v": [1, 2]}},
        {"a": "answer three", "id": 9, "gold": None, "score": None, "when": "2020-01-01T10:00:00Z"},
    ]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    fm = FieldMap(text="a", prompt="q", id="id", reference="gold", parent="par")
    t, rej = read_all(p, "jsonl", fm)
    assert rej == []
    assert rows(t, "text", "prompt", "external_id", "reference", "parent_id", "source_row") == [
        ("answer one", "what?", "7", "3", "p1", 1), ("answer two", "again?", "8", "2.5", None, 2),
        ("answer three", None, "9", None, None, 3)]
    meta = [json.loads(m) if m else None for m in t["metadata"].to_pylist()]
    assert meta == [{"score": 0.5, "tags": ["x"]}, {"flag": True, "nested": {"k": None, "v": [1, 2]}},
                    {"when": "2020-01-01T10:00:00Z"}]  # date-like strings are kept verbatim
    assert set(t["source_file"].to_pylist()) == {str(p)}
    t, _ = read_all(p, "jsonl", FieldMap(text="a", extra=False))
    assert t["metadata"].null_count == 3


def test_jsonl_mixed_types_across_rows(tmp_path: Path) -> None:
    # Arrow cannot type "id" (a number, then a string) or "x": the block is built in Python, same output.
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "a", "id": 1, "x": 1}\n{"text": "b", "id": "two", "x": "s"}\n{"text": "c", "id": 2.5}\n')
    t, _ = read_all(p, "jsonl", FieldMap(id="id"))
    assert rows(t, "text", "external_id", "metadata", "source_row") == [
        ("a", "1", '{"x":1}', 1), ("b", "two", '{"x":"s"}', 2), ("c", "2.5", None, 3)]


def test_jsonl_blank_lines_crlf_bom_and_no_final_newline(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"text": "one"}\r\n\r\n   \n\t\n{"text": "two \\u00e9"}\n\n{"text": "three"}')
    t, _ = read_all(p, "jsonl")
    assert rows(t, "text", "source_row") == [("one", 1), ("two \u00e9", 5), ("three", 7)]


@pytest.mark.parametrize("line, reason", [
    (b'{"text": "unterminated}', "malformed json"),
    (b'{"text": "a"} {"text": "b"}', "malformed json: extra data"),
    (b'["text", "a"]', "expected a json object, got an array"),
    (b'"just a string"', "expected a json object, got a string"),
    (b'{"body": "x", "title": "y"}', "missing text field 'text'; the line has 'body', 'title'"),
    (b'{"text": null}', "text field 'text' is null, expected a string"),
    (b'{"text": 42}', "text field 'text' must be a string, got a number: 42"),
    (b'{"text": ["a", "b"]}', "text field 'text' must be a string, got an array"),
    (b'{"text": {"a": 1}}', "text field 'text' must be a string, got an object"),
    (b'{"text": "ok", "id": [1]}', "field 'id' (external_id) must be a string or a number, got an array"),
    (b'{"text": "caf\xe9"}', "invalid utf-8: byte 0xe9"),
    (b'{"text": "lone \\ud800 surrogate"}', "lone surrogate"),
])
def test_jsonl_errors_name_the_line(tmp_path: Path, line: bytes, reason: str) -> None:
    p = tmp_path / "bad.jsonl"
    good = b'{"text": "fine", "id": 1}\n'
    p.write_bytes(good + b"\n" + good + line + b"\n" + good)
    err = fail(p, "jsonl", FieldMap(id="id"))
    assert err.file == str(p) and err.line == 4 and reason in err.reason
    assert str(err).startswith(f"{p}:4: ")
    t, rej = read_all(p, "jsonl", FieldMap(id="id"), on_error="skip")
    assert t["source_row"].to_pylist() == [1, 3, 5] and t["text"].to_pylist() == ["fine"] * 3
    assert len(rej) == 1 and rej[0].line == 4 and reason in rej[0].reason and rej[0].file == str(p)
    assert rej[0].snippet == line.decode("utf-8", errors="replace")


def test_jsonl_fail_reports_the_first_bad_line_and_skip_all(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"text": "ok"}\n{"text": 1}\n{oops\n{"text": "ok", "extra": "\xff"}\n{"text": "ok2"}\n')
    assert fail(p, "jsonl").line == 2
    t, rej = read_all(p, "jsonl", on_error="skip")
    assert rows(t, "text", "source_row") == [("ok", 1), ("ok2", 5)]
    assert [r.line for r in rej] == [2, 3, 4]
    long_line = json.dumps({"text": "x" * 1000})
    p.write_text('{"text": "a"}\n' + long_line + "\n" + "{bad\n")
    assert fail(p, "jsonl", max_doc_bytes=500).line == 2  # the over-size line comes before the malformed one


def test_jsonl_json_array_file_gets_a_hint(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text('[{"text": "a"}, {"text": "b"}]\n')
    err = fail(p, "jsonl")
    assert err.line == 1 and "json array" in err.reason


@pytest.mark.parametrize("content", [b"", b"   \n\n\t\r\n  "])
@pytest.mark.parametrize("fmt, ext", [("jsonl", "jsonl"), ("text", "txt"), ("csv", "csv"), ("tsv", "tsv")])
def test_empty_files(tmp_path: Path, content: bytes, fmt: str, ext: str) -> None:
    p = tmp_path / f"empty.{ext}"
    p.write_bytes(content)
    err = fail(p, fmt)
    assert err.reason == "file is empty" and err.file == str(p)
    t, rej = read_all(p, fmt, on_error="skip")
    assert t.num_rows == 0 and rej == [Reject(str(p), 0, "file is empty", "")]


def test_jsonl_document_over_max_doc_bytes(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    big = json.dumps({"text": "y" * 500})
    p.write_text('{"text": "a"}\n' + big + '\n{"text": "b"}\n')
    for batch_bytes in (16 << 20, 64):  # within a block, and spread over many blocks (carried)
        err = fail(p, "jsonl", max_doc_bytes=200, batch_bytes=batch_bytes)
        assert err.line == 2 and "larger than max_doc_bytes (200 bytes)" in err.reason
        assert str(len(big)) in err.reason or "at least" in err.reason
        t, rej = read_all(p, "jsonl", max_doc_bytes=200, batch_bytes=batch_bytes, on_error="skip")
        assert rows(t, "text", "source_row") == [("a", 1), ("b", 3)]
        assert [r.line for r in rej] == [2] and rej[0].snippet == big[:200]
    err = fail(p, "jsonl", max_doc_bytes=200, batch_bytes=64)
    assert "at least" in err.reason  # found while still reading the line: memory stays bounded


def test_compressed_inputs(tmp_path: Path) -> None:
    rows_ = [{"text": f"doc {i} \u00e9", "n": i} for i in range(300)]
    raw = "".join(json.dumps(r) + "\n" for r in rows_).encode()
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(raw)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "a.jsonl.bz2").write_bytes(bz2.compress(raw))
    expect, _ = read_all(plain, "jsonl")
    for name in ("a.jsonl.gz", "a.jsonl.bz2"):
        got, _ = read_all(tmp_path / name, "jsonl", batch_bytes=1000)
        assert got.drop(["source_file"]).equals(expect.drop(["source_file"]))
    csv_raw = "text,n\n" + "".join(f'"doc {i}\nline",{i}\n' for i in range(300))
    (tmp_path / "a.csv").write_text(csv_raw)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(csv_raw.encode()))
    got, _ = read_all(tmp_path / "a.csv.gz", "csv", batch_bytes=500)
    assert got.drop(["source_file"]).equals(read_all(tmp_path / "a.csv", "csv")[0].drop(["source_file"]))
    (tmp_path / "a.txt.bz2").write_bytes(bz2.compress(TEXT_SAMPLE.encode()))
    got, _ = read_all(tmp_path / "a.txt.bz2", "text", batch_bytes=50)
    assert rows(got, "text", "source_row") == reference_text_docs(TEXT_SAMPLE)
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="cannot"):
        read_all(tmp_path / "bad.jsonl.gz", "jsonl")


def test_jsonl_zstd(tmp_path: Path) -> None:
    raw = b"".join(json.dumps({"text": f"d{i}"}).encode() + b"\n" for i in range(50))
    codec = pa.Codec("zstd")
    with pa.CompressedOutputStream(str(tmp_path / "a.jsonl.zst"), "zstd") as out:
        out.write(raw)
    assert codec.name == "zstd"
    t, _ = read_all(tmp_path / "a.jsonl.zst", "jsonl")
    assert t["text"].to_pylist() == [f"d{i}" for i in range(50)]


# ------------------------------------------------------------------------------------------------ text


def reference_text_docs(data: str) -> list[tuple[str, int]]:
    """Plain per-line Python model of the text format (blank-line separated)."""
    docs, cur, start = [], [], 0
    for i, line in enumerate(data.split("\n"), 1):
        if line.strip(WS) == "":
            if cur:
                docs.append(("\n".join(cur).strip(WS), start))
                cur = []
        else:
            if not cur:
                start = i
            cur.append(line)
    if cur:
        docs.append(("\n".join(cur).strip(WS), start))
    return docs


def reference_sep_docs(data: str, sep: str) -> list[tuple[str, int]]:
    docs, offset = [], 0
    for piece in data.split(sep):
        stripped = piece.strip(WS)
        if stripped:
            lead = len(piece) - len(piece.lstrip(WS))
            docs.append((stripped, data.count("\n", 0, offset + lead) + 1))
        offset += len(piece) + len(sep)
    return docs


TEXT_SAMPLE = ("\n\n   Title line  \n  second line of doc one\n\n\n \t \nDoc two, café ünïcödé 😀\r\n"
               "continues here\r\n\r\nthree\n" + "\n".join(f"para {i} line a\npara {i} line b\n" for i in range(20))
               + "\n\n   last doc without newline   ")


def test_text_blank_line_documents(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text(TEXT_SAMPLE, encoding="utf-8", newline="")
    t, rej = read_all(p, "text", FieldMap(text="ignored", prompt="ignored"))
    assert rej == []
    assert rows(t, "text", "source_row") == reference_text_docs(TEXT_SAMPLE)
    got = rows(t, "text", "source_row")
    assert got[0] == ("Title line  \n  second line of doc one", 3)
    assert got[1] == ("Doc two, café ünïcödé 😀\r\ncontinues here", 8)
    assert got[-1] == ("last doc without newline", 73)
    assert t["prompt"].null_count == t.num_rows and t["metadata"].null_count == t.num_rows


def test_text_separator_documents(tmp_path: Path) -> None:
    data = "first <|end|> second\nline two <|end|><|end|>\n\n  third\n<|end|>   \n<|en"
    p = tmp_path / "a.txt"
    p.write_text(data)
    t, _ = read_all(p, "text", text_separator="<|end|>")
    assert rows(t, "text", "source_row") == reference_sep_docs(data, "<|end|>") == [
        ("first", 1), ("second\nline two", 1), ("third", 4), ("<|en", 6)]


def test_text_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(b"good doc\n\nbad doc starts\nbad \xff here\n\nlast doc\n")
    err = fail(p, "text")
    assert err.line == 4 and "invalid utf-8: byte 0xff" in err.reason and "starting at line 3" in err.reason
    t, rej = read_all(p, "text", on_error="skip")
    assert rows(t, "text", "source_row") == [("good doc", 1), ("last doc", 6)]
    assert [r.line for r in rej] == [4] and rej[0].snippet.startswith("bad doc starts")
    p.write_bytes(b"one\n---\n\n  two\nbad \xc3( here\n---\nthree")
    err = fail(p, "text", text_separator="---")
    assert err.line == 5 and "byte 0xc3" in err.reason and "starting at line 4" in err.reason
    t, rej = read_all(p, "text", text_separator="---", on_error="skip", batch_bytes=5)
    assert rows(t, "text", "source_row") == [("one", 1), ("three", 7)] and [r.line for r in rej] == [5]


def test_text_document_over_max_doc_bytes(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    big = "\n".join("w" * 50 for _ in range(10))  # 509 bytes, lines 3..12
    p.write_text("small one\n\n" + big + "\n\nsmall two\n")
    for batch_bytes in (16 << 20, 64, 7):
        err = fail(p, "text", max_doc_bytes=300, batch_bytes=batch_bytes)
        assert err.line == 3 and "larger than max_doc_bytes (300 bytes)" in err.reason
        t, rej = read_all(p, "text", max_doc_bytes=300, batch_bytes=batch_bytes, on_error="skip")
        assert rows(t, "text", "source_row") == [("small one", 1), ("small two", 14)]
        assert [r.line for r in rej] == [3]
    # a document of exactly the limit is fine, trailing whitespace does not count
    p.write_text("x" * 300 + "   \n   \n")
    assert read_all(p, "text", max_doc_bytes=300, batch_bytes=64)[0]["text"].to_pylist() == ["x" * 300]
    # separator mode, skipping the over-size document while streaming
    p.write_text("a<s>" + "b" * 400 + "<s>c\nd<s>")
    t, rej = read_all(p, "text", text_separator="<s>", max_doc_bytes=100, batch_bytes=16, on_error="skip")
    assert rows(t, "text", "source_row") == [("a", 1), ("c\nd", 1)] and [r.line for r in rej] == [1]


def test_tinyshakespeare_documents(tmp_path: Path) -> None:
    path = shared("tinyshakespeare.txt")
    data = path.read_text(encoding="utf-8")
    t, rej = read_all(path, "text")
    assert rej == [] and t.num_rows > 1000
    assert rows(t, "text", "source_row") == reference_text_docs(data)
    lines = data.split("\n")
    for text, first in rows(t, "text", "source_row")[:: max(1, t.num_rows // 25)]:
        assert lines[first - 1].strip() == text.split("\n")[0].strip()
        assert first == 1 or lines[first - 2].strip() == ""


def test_wikitext_documents_and_separator(tmp_path: Path) -> None:
    path = shared("wikitext2_valid.txt")
    data = path.read_text(encoding="utf-8")
    t, _ = read_all(path, "text")
    assert rows(t, "text", "source_row") == reference_text_docs(data)
    t, _ = read_all(path, "text", text_separator=" = = ", batch_bytes=100_000)
    assert rows(t, "text", "source_row") == reference_sep_docs(data, " = = ")


# ------------------------------------------------------------------------------------------------ csv / tsv


def test_csv_mapping_multiline_and_numbering(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text('id,text,question,label,note\n007,"hello, ""world""\nsecond line",q1,1,\n'
                 '\n8,plain,,2,n\n009,"x",q3,3,"multi\nline note"\n', encoding="utf-8")
    t, rej = read_all(p, "csv", FieldMap(id="id", prompt="question"))
    assert rej == []
    assert rows(t, "text", "external_id", "prompt", "source_row") == [
        ('hello, "world"\nsecond line', "007", "q1", 1), ("plain", "8", None, 2), ("x", "009", "q3", 3)]
    assert [json.loads(m) for m in t["metadata"].to_pylist()] == [
        {"label": "1"}, {"label": "2", "note": "n"}, {"label": "3", "note": "multi\nline note"}]


def test_tsv(tmp_path: Path) -> None:
    p = tmp_path / "a.tsv"
    p.write_text("text\tgold\nfirst, with comma\t4\nsecond\t5\n")
    t, _ = read_all(p, "tsv", FieldMap(reference="gold"))
    assert rows(t, "text", "reference", "source_row") == [("first, with comma", "4", 1), ("second", "5", 2)]


def test_csv_missing_columns(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("body,label\nx,1\n")
    err = fail(p, "csv")
    assert "no text column 'text'" in err.reason and "'body', 'label'" in err.reason
    assert "--text-field" in err.reason and err.file == str(p)
    with pytest.raises(InputError, match="no text column"):  # a file-level problem: skip mode raises too
        read_all(p, "csv", on_error="skip")
    with pytest.raises(InputError, match="no prompt column 'question'"):
        read_all(p, "csv", FieldMap(text="body", prompt="question"))


def test_csv_bad_records(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"text,n\nr1,1\nr2,2,extra\nr3,3\nr4 \xff,4\nr5\nr6,6\n")
    err = fail(p, "csv")
    assert err.line == 2 and "expected 2 fields, got 3" in err.reason
    t, rej = read_all(p, "csv", on_error="skip")
    assert rows(t, "text", "source_row") == [("r1", 1), ("r3", 3), ("r6", 6)]
    assert [(r.line, r.reason) for r in rej] == [(2, "expected 2 fields, got 3"),
                                                  (4, "invalid utf-8 in column 'text'"),
                                                  (5, "expected 2 fields, got 1")]
    assert rej[0].snippet == "r2,2,extra"
    p.write_bytes(b"text,n\nr1,1\nr2 \xff,2\n")
    err = fail(p, "csv")
    assert err.line == 2 and "invalid utf-8" in err.reason


def test_csv_header_only_and_oversize(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("text,n\n")
    assert "file is empty" in fail(p, "csv").reason
    p.write_text("text,n\nshort,1\n" + "z" * 400 + ",2\n")
    err = fail(p, "csv", max_doc_bytes=100)
    assert err.line == 2 and "400 bytes" in err.reason


# ------------------------------------------------------------------------------------------------ parquet


def test_parquet_mapping_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c", "d"], "id": [1, 2, 3, 4], "score": [0.5, None, 1.5, 2.0],
                             "tags": [["x"], [], None, ["y", "z"]]}), p, row_group_size=2)
    err = fail(p, "parquet", FieldMap(id="id"))
    assert err.line == 2 and "is null" in err.reason
    t, rej = read_all(p, "parquet", FieldMap(id="id"), on_error="skip", batch_bytes=1)
    assert rows(t, "text", "external_id", "source_row") == [("a", "1", 1), ("c", "3", 3), ("d", "4", 4)]
    assert [json.loads(m) for m in t["metadata"].to_pylist()] == [
        {"score": 0.5, "tags": ["x"]}, {"score": 1.5}, {"score": 2.0, "tags": ["y", "z"]}]
    assert [r.line for r in rej] == [2]


def test_parquet_file_level_errors(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": ["a"], "n": [1]}), p)
    err = fail(p, "parquet")
    assert "no text column 'text'" in err.reason and "'body', 'n'" in err.reason and "--text-field" in err.reason
    err = fail(p, "parquet", FieldMap(text="n"))
    assert "must hold strings, got type int64" in err.reason
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), p)
    assert "file is empty" in fail(p, "parquet").reason
    p.write_bytes(b"")
    assert fail(p, "parquet").reason == "file is empty"
    p.write_bytes(b"this is not parquet")
    assert "not a readable parquet file" in fail(p, "parquet").reason


def test_parquet_binary_text_and_utf8(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ok", b"bad \xff", b"fine"], pa.binary())}), p)
    assert fail(p, "parquet").line == 2
    t, rej = read_all(p, "parquet", on_error="skip")
    assert t["text"].to_pylist() == ["ok", "fine"] and [r.line for r in rej] == [2]


# ------------------------------------------------------------------------------------------------ streaming


def test_block_boundaries_do_not_change_results(tmp_path: Path) -> None:
    """A tiny batch_bytes cuts lines, documents, multi-byte characters and separators in the middle."""
    jl = tmp_path / "a.jsonl"
    jl.write_bytes(b"".join(
        (json.dumps({"text": f"doc {i} " + "é😀" * (i % 7), "id": i, "m": {"k": i % 3}}, ensure_ascii=False)
         + ("\n\n" if i % 5 == 0 else "\n")).encode() for i in range(200)))
    txt = tmp_path / "a.txt"
    txt.write_text(TEXT_SAMPLE * 5, encoding="utf-8", newline="")
    csv = tmp_path / "a.csv"
    # rows longer than the block too: Arrow needs a record inside one block, the reader grows the block
    csv.write_text("text,id\n" + "".join(f'"row {i} é\n{"long " * (i * 13 % 50)}line",{i}\n' for i in range(200)),
                   encoding="utf-8")
    par = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": [f"p{i}" for i in range(500)], "n": list(range(500))}), par)
    cases = [(jl, "jsonl", {}), (txt, "text", {}), (txt, "text", {"text_separator": "para"}),
             (txt, "text", {"text_separator": "\n\n"}), (csv, "csv", {}), (par, "parquet", {})]
    for path, fmt, kw in cases:
        whole, _ = read_all(path, fmt, FieldMap(id="id") if fmt != "parquet" else FieldMap(), **kw)
        batches = list(read_documents(path, fmt, FieldMap(id="id") if fmt != "parquet" else FieldMap(),
                                      batch_bytes=64, **kw))
        assert len(batches) > 5, (fmt, kw)  # it really streamed
        small = pa.concat_tables([b.table for b in batches])
        assert small.equals(whole), (fmt, kw)
    # with errors in skip mode too
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(csv.read_text().replace(",7\n", ",7,extra\n").replace(",150\n", "\n"))
    whole, rej_whole = read_all(bad_csv, "csv", on_error="skip")
    small, rej_small = read_all(bad_csv, "csv", on_error="skip", batch_bytes=64)
    assert small.equals(whole) and rej_small == rej_whole and [r.line for r in rej_whole] == [8, 151]
    assert whole["source_row"].to_pylist() == [i for i in range(1, 201) if i not in (8, 151)]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jl.read_bytes() + b"{nope\n" + b'{"text": 5}\n' + jl.read_bytes()[:500] + b"\n")
    whole, rej_whole = read_all(bad, "jsonl", on_error="skip")
    small, rej_small = read_all(bad, "jsonl", on_error="skip", batch_bytes=64)
    assert small.equals(whole) and rej_small == rej_whole
    assert [r.reason.split(":")[0] for r in rej_whole] == [
        "malformed json", "text field 'text' must be a string, got a number", "malformed json"]  # last one cut short


def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    line = json.dumps({"text": "some words " * 20, "n": 1}) + "\n"
    p.write_text(line * 40_000)  # about 9 MB
    batch_bytes = 256 << 10
    base = pa.total_allocated_bytes()
    peak = 0
    n = 0
    for b in read_documents(p, "jsonl", FieldMap(), batch_bytes=batch_bytes):
        n += b.table.num_rows
        peak = max(peak, pa.total_allocated_bytes() - base)
        del b
    assert n == 40_000
    assert peak < 16 * batch_bytes, peak


# ------------------------------------------------------------------------------------------------ real data


def test_gsm8k_test_rows(tmp_path: Path) -> None:
    path = shared("gsm8k_test.jsonl")
    t, rej = read_all(path, "jsonl", FieldMap(text="answer", prompt="question"))
    assert rej == [] and t.num_rows == 1319
    assert t["source_row"].to_pylist() == list(range(1, 1320))
    plain = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert t["text"].to_pylist() == [x["answer"] for x in plain]
    assert t["prompt"].to_pylist() == [x["question"] for x in plain]
    assert t["metadata"].null_count == 1319  # no fields left over
    small, _ = read_all(path, "jsonl", FieldMap(text="answer", prompt="question"), batch_bytes=4096)
    assert small.equals(t)


@pytest.mark.skipif(os.environ.get("CURATOR_PERF") != "1", reason="throughput check: set CURATOR_PERF=1")
def test_jsonl_throughput(tmp_path: Path) -> None:
    """Happy-path jsonl MB/s on ~50 MB of replicated gsm8k_train.jsonl, one thread."""
    src = shared("gsm8k_train.jsonl").read_bytes()
    p = tmp_path / "big.jsonl"
    p.write_bytes(src * (50_000_000 // len(src) + 1))
    cpus = pa.cpu_count()
    pa.set_cpu_count(1)
    try:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            n = sum(b.table.num_rows for b in read_documents(p, "jsonl", FieldMap(text="answer", prompt="question")))
            best = min(best, time.perf_counter() - start)
    finally:
        pa.set_cpu_count(cpus)
    mb_s = p.stat().st_size / best / 1e6
    print(f"jsonl: {mb_s:.0f} MB/s ({n} rows)")
    assert mb_s >= 150
