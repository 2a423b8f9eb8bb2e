"""Ingest end to end into a real store: ids, dedup, field mapping, rejects, provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pyarrow as pa
import pytest

from curator.errors import InputError, UsageError
from curator.ingest.pipeline import ingest
from curator.ingest.readers import FieldMap
from curator.store import Store
from curator.store.query import connect, run_sql
from tests.conftest import run_cli, write_jsonl


def q(store: Store, sql: str, **params):
    return run_sql(connect(store), sql, params).to_pylist()


def test_gsm8k_field_mapping_and_provenance(store_dir: Path, gsm8k_test: Path) -> None:
    store = Store(store_dir, create=True)
    res = ingest(store, [gsm8k_test], generation=0, origin="human", fields=FieldMap(text="answer", prompt="question"))
    assert res.rows_added == 1319 and res.rows_read == 1319
    first = json.loads(gsm8k_test.read_text().splitlines()[0])
    row = q(store, "SELECT * FROM samples WHERE source_row = 1")[0]
    assert row["text"] == first["answer"] and row["prompt"] == first["question"]
    assert row["source_file"] == str(gsm8k_test) and row["generation"] == 0 and row["origin"] == "human"
    assert row["ingest_run"] == res.run_id and len(row["sample_id"]) == 32 and row["prompt_id"] is not None
    # statistics exist for the generation, per origin and for all origins
    totals = q(store, "SELECT origin, n, documents FROM ngram_totals ORDER BY origin, n")
    assert {(r["origin"], r["n"]) for r in totals} == {(o, n) for o in ("*", "human") for n in (1, 2, 3, 4)}
    assert all(r["documents"] == 1319 for r in totals)


def test_ids_are_content_addresses(tmp_path: Path, store_dir: Path) -> None:
    store = Store(store_dir, create=True)
    rows = [{"text": "same text", "prompt": "p1"}, {"text": "same text", "prompt": "p2"}, {"text": "same text", "prompt": "p1"}]
    ingest(store, [write_jsonl(tmp_path / "a.jsonl", rows)], generation=1, origin="synthetic",
           fields=FieldMap(prompt="prompt"), model="m", decoding={"temperature": 0.8, "seed": 3})
    got = q(store, "SELECT sample_id, text_hash, prompt, model, decoding, source_row FROM samples ORDER BY source_row")
    assert [r["source_row"] for r in got] == [1, 2]  # line 3 repeats line 1
    assert got[0]["sample_id"] != got[1]["sample_id"] and got[0]["text_hash"] == got[1]["text_hash"]
    assert got[0]["model"] == "m" and json.loads(got[0]["decoding"]) == {"seed": 3, "temperature": 0.8}


def test_extra_fields_become_metadata(tmp_path: Path, store_dir: Path) -> None:
    store = Store(store_dir, create=True)
    ingest(store, [write_jsonl(tmp_path / "a.jsonl", [{"text": "t one", "score": 0.5, "tags": ["a"]}])], generation=0,
           origin="human")
    meta = json.loads(q(store, "SELECT metadata FROM samples")[0]["metadata"])
    assert meta == {"score": 0.5, "tags": ["a"]}


def test_fail_writes_nothing_and_skip_records_rejects(tmp_path: Path, store_dir: Path) -> None:
    store = Store(store_dir, create=True)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"text": "good one"}\n{"text": 5}\n{broken\n{"other": "x"}\n{"text": "good two"}\n')
    with pytest.raises(InputError) as err:
        ingest(store, [path], generation=1, origin="synthetic")
    assert err.value.line == 2 and str(path) in str(err.value)
    assert store.version() == 1 and store.read("samples").num_rows == 0
    res = ingest(store, [path], generation=1, origin="synthetic", on_error="skip")
    assert res.rows_added == 2 and res.rejected == 3
    rejects = q(store, "SELECT file, line, reason FROM rejects ORDER BY line")
    assert [r["line"] for r in rejects] == [2, 3, 4]
    assert all(r["file"] == str(path) and r["reason"] for r in rejects)


def test_formats_and_folders(tmp_path: Path, store_dir: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"text": "alpha doc"}])
    pq.write_table(pa.table({"text": ["parquet doc one", "parquet doc two"]}), folder / "b.parquet")
    (folder / "c.csv").write_text("text,label\n\"csv, doc\",1\n")
    (folder / "d.txt").write_text("first paragraph\nstill first\n\n\nsecond paragraph\n")
    store = Store(store_dir, create=True)
    res = ingest(store, [folder], generation=0, origin="human")
    assert res.rows_added == 6
    texts = {r["text"] for r in q(store, "SELECT text FROM samples")}
    assert texts == {"alpha doc", "parquet doc one", "parquet doc two", "csv, doc", "first paragraph\nstill first",
                     "second paragraph"}


def test_bad_arguments(tmp_path: Path, store_dir: Path) -> None:
    store = Store(store_dir, create=True)
    f = write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}])
    with pytest.raises(UsageError, match="unknown origin 'robot'"):
        ingest(store, [f], generation=0, origin="robot")
    with pytest.raises(UsageError, match="generation must be an integer >= 0"):
        ingest(store, [f], generation=-1, origin="human")
    (tmp_path / "a.xyz").write_text("x")
    with pytest.raises(InputError, match="a.xyz"):
        ingest(store, [tmp_path / "a.xyz"], generation=0, origin="human")
    assert store.version() == 1


def test_cli_ingest_and_sql_formats(tmp_path: Path, store_dir: Path) -> None:
    f = write_jsonl(tmp_path / "a.jsonl", [{"text": f"doc {i}"} for i in range(5)])
    run_cli("--store", str(store_dir), "ingest", str(f), "-g", "0", "--origin", "human")
    out = run_cli("--store", str(store_dir), "sql", "--format", "json", "SELECT generation, origin, count(*) AS n FROM samples GROUP BY ALL")
    assert json.loads(out.stdout) == [{"generation": 0, "origin": "human", "n": 5}]
    out = run_cli("--store", str(store_dir), "sql", "SELECT count(*) AS n FROM samples WHERE generation = $g", "-p", "g", "0",
                  "--format", "csv")
    assert out.stdout.split() == ["n", "5"]
    target = tmp_path / "o.parquet"
    run_cli("--store", str(store_dir), "sql", "--format", "parquet", "-o", str(target), "SELECT * FROM samples")
    assert pq.read_table(target).num_rows == 5
    out = run_cli("--store", str(store_dir), "sql", "--query", "shift/distinct_n", "-p", "generation", "0", "--format", "json")
    assert {r["n"] for r in json.loads(out.stdout)} == {1, 2, 3, 4}
    out = run_cli("--store", str(store_dir), "log")
    assert "ingest" in out.stdout and "gen-0" in out.stdout
    out = run_cli("--store", str(store_dir), "sql", "--query", "shift/distinct_n", check=False)
    assert out.returncode == 2 and "needs parameter 'generation'" in out.stderr
