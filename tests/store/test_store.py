"""The store: atomic multi-table commits, the run log, time travel, tags, schema versions, crash safety."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from curator.errors import SchemaVersionError, StoreError, UsageError
from curator.store import Store
from curator.store.query import connect, run_sql
from tests.conftest import REPO, run_cli, write_jsonl


def _rows(n: int, start: int = 0) -> list[dict]:
    return [{"text": f"document number {i} says something about topic {i % 7}", "q": f"question {i}"} for i in range(start, start + n)]


def _count(store_dir: Path, sql: str = "SELECT count(*) FROM samples", as_of: str | None = None) -> int:
    con = connect(Store(store_dir), as_of)
    return run_sql(con, sql).column(0)[0].as_py()


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no curator store"):
        Store(tmp_path / "nope")


def test_ingest_commits_one_run_and_is_idempotent(tmp_path: Path, store_dir: Path) -> None:
    f = write_jsonl(tmp_path / "a.jsonl", _rows(50))
    run_cli("--store", str(store_dir), "ingest", str(f), "--generation", "0", "--origin", "human")
    assert _count(store_dir) == 50
    again = run_cli("--store", str(store_dir), "ingest", str(f), "--generation", "0", "--origin", "human")
    assert "ingested 0 new rows" in again.stdout and "50 already present" in again.stdout
    assert _count(store_dir) == 50
    # The same content in another generation is another sample.
    run_cli("--store", str(store_dir), "ingest", str(f), "--generation", "1", "--origin", "synthetic")
    assert _count(store_dir) == 100
    runs = Store(store_dir).runs().to_pylist()
    assert [r["command"] for r in runs] == ["init", "ingest", "ingest", "ingest"]
    assert [r["seq"] for r in runs] == [1, 2, 3, 4]
    last = runs[-1]
    assert "samples" in last["written"] and "ngram_totals" in last["written"]
    versions = json.loads(last["tables"])
    for table, version in versions.items():
        assert lance.dataset(str(store_dir / f"{table}.lance")).version >= version


def test_time_travel_by_version_and_tag(tmp_path: Path, store_dir: Path) -> None:
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", _rows(10))), "-g", "0",
            "--origin", "human", "--tag", "first")
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "b.jsonl", _rows(15, 100))), "-g", "0",
            "--origin", "human")
    assert _count(store_dir) == 25
    assert _count(store_dir, as_of="2") == 10
    assert _count(store_dir, as_of="first") == 10
    # gen-0 moved with the second ingest
    assert _count(store_dir, as_of="gen-0") == 25
    out = run_cli("--store", str(store_dir), "sql", "--as-of", "first", "--format", "csv", "SELECT count(*) AS c FROM samples")
    assert out.stdout.strip().splitlines()[-1] == "10"
    # Lance-native lookup of the same state
    assert lance.dataset(str(store_dir / "samples.lance"), version="first").count_rows() == 10
    # an explicit tag on an older version
    run_cli("--store", str(store_dir), "tag", "old", "--version", "2")
    assert _count(store_dir, as_of="old") == 10
    with pytest.raises(UsageError, match="no tag 'missing'"):
        Store(store_dir).resolve("missing")
    with pytest.raises(UsageError, match="no store version 99"):
        Store(store_dir).resolve(99)


def test_schema_version_mismatch_is_refused(tmp_path: Path, store_dir: Path) -> None:
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", _rows(3))), "-g", "0", "--origin", "human")
    ds = lance.dataset(str(store_dir / "rejects.lance"))
    newer = ds.schema.with_metadata({b"curator.table": b"rejects", b"curator.schema_version": b"2"})
    lance.write_dataset(pa.Table.from_pylist([], schema=newer), str(store_dir / "rejects.lance"), mode="overwrite")
    with pytest.raises(SchemaVersionError, match="table 'rejects' has schema version 2, this curator reads version 1"):
        Store(store_dir)
    proc = run_cli("--store", str(store_dir), "sql", "SELECT 1", check=False)
    assert proc.returncode == 3 and "schema version 2" in proc.stderr


def test_writer_lock(tmp_path: Path, store_dir: Path) -> None:
    from curator.store.lock import WriterLock

    store = Store(store_dir, create=True)
    with WriterLock(store.root):
        with pytest.raises(StoreError, match="being written by another process"):
            with store.transaction("x", {}):
                pass


def test_failed_transaction_rolls_back(store_dir: Path) -> None:
    store = Store(store_dir, create=True)
    with pytest.raises(RuntimeError):
        with store.transaction("ingest", {}) as tx:
            tx.append("rejects", pa.table({"ingest_run": ["r"], "file": ["f"], "line": [1], "reason": ["x"], "snippet": [""]}))
            raise RuntimeError("boom")
    assert store.read("rejects").num_rows == 0
    assert store.version() == 1


@pytest.mark.parametrize("point", ["ingest-mid-write", "before-samples-commit", "after-samples-commit", "after-stats",
                                   "before-run-commit"])
def test_crash_at_each_step_leaves_previous_version(tmp_path: Path, store_dir: Path, point: str) -> None:
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", _rows(20))), "-g", "0", "--origin", "human")
    before = Store(store_dir).read("ngram_totals").num_rows
    second = write_jsonl(tmp_path / "b.jsonl", _rows(30, 1000))
    proc = run_cli("--store", str(store_dir), "ingest", str(second), "-g", "0", "--origin", "human",
                   env={"CURATOR_CRASH_AT": point}, check=False)
    assert proc.returncode == -signal.SIGKILL
    store = Store(store_dir)
    assert store.version() == 2
    assert _count(store_dir) == 20
    assert store.read("ngram_totals").num_rows == before
    # the next writer cleans up and succeeds
    run_cli("--store", str(store_dir), "ingest", str(second), "-g", "0", "--origin", "human")
    assert _count(store_dir) == 50
    assert Store(store_dir).version() == 3
    n1 = _count(store_dir, "SELECT total FROM ngram_totals WHERE origin = '*' AND n = 1")
    assert n1 == sum(len(r["text"].split()) for r in _rows(20) + _rows(30, 1000))


def test_kill_during_a_real_ingest(tmp_path: Path, store_dir: Path) -> None:
    """SIGKILL at an arbitrary moment of a large ingest: the store stays at its previous version."""
    small = write_jsonl(tmp_path / "a.jsonl", _rows(5))
    run_cli("--store", str(store_dir), "ingest", str(small), "-g", "0", "--origin", "human")
    big = tmp_path / "big.jsonl"
    with big.open("w") as fh:
        for i in range(200_000):
            fh.write(json.dumps({"text": f"row {i} " + "lorem ipsum dolor sit amet " * 8}) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "curator.cli", "--store", str(store_dir), "ingest", str(big), "-g", "1",
                             "--origin", "synthetic"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _count(store_dir) in (5, 200_005)  # either it finished or nothing of it is visible
    if _count(store_dir) == 5:
        assert Store(store_dir).version() == 2
    run_cli("--store", str(store_dir), "ingest", str(small), "-g", "2", "--origin", "synthetic")
    assert _count(store_dir, "SELECT count(*) FROM samples WHERE generation = 2") == 5


def test_runs_record_lineage(tmp_path: Path, store_dir: Path) -> None:
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", _rows(5))), "-g", "0", "--origin", "human")
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "b.jsonl", _rows(5, 50))), "-g", "1", "--origin", "synthetic")
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "c.jsonl", _rows(5, 90))), "-g", "0", "--origin", "human")
    run_cli("--store", str(store_dir), "stats", "--generation", "1")
    runs = Store(store_dir).runs().to_pylist()
    ids = [r["run_id"] for r in runs]
    assert [r["parents"] for r in runs] == [[], [], [], [ids[1]], [ids[2]]]
    assert runs[-1]["command"] == "stats" and runs[-1]["generations"] == [1]
    assert all(r["code_version"].startswith("0.") and r["config_hash"] for r in runs)
    args = json.loads(runs[1]["args"])
    assert args["generation"] == 0 and args["origin"] == "human"
    out = run_cli("--store", str(store_dir), "log", "--format", "json")
    assert json.loads(out.stdout)[-1]["parents"] == ids[2]


def test_store_from_before_a_table_existed_gains_it_on_next_write(tmp_path):
    """A store made by a curator that did not know `selections` yet: readable as is (the table reads empty),
    and the next write creates it, with the store's data untouched."""
    import json
    import shutil

    import lance

    from curator.store.query import connect, run_sql

    root = tmp_path / "old"
    Store(root, create=True)
    runs = lance.dataset(str(root / "runs.lance"))
    row = runs.to_table().to_pylist()[0]
    tables = json.loads(row["tables"])
    del tables["selections"]
    row["tables"] = json.dumps(tables, sort_keys=True)
    row["written"] = [t for t in row["written"] if t != "selections"]
    lance.write_dataset(pa.Table.from_pylist([row], schema=runs.schema), str(root / "runs.lance"), mode="overwrite")
    shutil.rmtree(root / "selections.lance")

    old = Store(root)
    assert "selections" not in old.table_versions()
    assert old.read("selections").num_rows == 0
    assert run_sql(connect(old), "SELECT count(*) AS n FROM selections").to_pylist() == [{"n": 0}]
    with old.transaction("touch", {}) as tx:
        tx.append("rejects", pa.table({"ingest_run": ["r"], "file": ["f"], "line": [1], "reason": ["x"],
                                       "snippet": ["s"]}))
    assert "selections" in Store(root).table_versions()
    assert Store(root).dataset("selections").count_rows() == 0


def test_run_log_is_compacted_and_stays_readable(tmp_path):
    """Every run appends a one-row fragment to runs; past a threshold they are compacted into one, and
    versions, tags and time travel read as before."""
    from curator.store import store as store_module

    store = Store(tmp_path / "st", create=True)
    for i in range(store_module._COMPACT_RUNS_AT + 3):
        with store.transaction("touch", {"i": i}) as tx:
            tx.append("rejects", pa.table({"ingest_run": [f"r{i}"], "file": ["f"], "line": [i], "reason": ["x"],
                                           "snippet": ["s"]}))
            if i == 5:
                tx.tag("early")
    reopened = Store(tmp_path / "st")
    assert len(lance.dataset(str(tmp_path / "st" / "runs.lance")).get_fragments()) < store_module._COMPACT_RUNS_AT
    assert reopened.version() == store_module._COMPACT_RUNS_AT + 4
    assert [r["seq"] for r in reopened.runs().to_pylist()] == list(range(1, reopened.version() + 1))
    assert reopened.resolve("early") == 7
    assert reopened.read("rejects", as_of="early").num_rows == 6


def test_annotate_marks_the_runs_committed_inside(tmp_path: Path) -> None:
    store = Store(tmp_path / "st", create=True)
    with store.annotate(loop="demo", arm="replace"):
        with store.annotate(round=2, step="train"):
            with store.transaction("eval", {"model": "m"}) as tx:
                tx.summary = {"ok": 1}
        with store.transaction("eval", {"model": "n"}):
            pass
    with store.transaction("eval", {"model": "o"}):
        pass
    args = [json.loads(a) for a in store.runs().sort_by("seq").column("args").to_pylist()[-3:]]
    assert args[0]["context"] == {"loop": "demo", "arm": "replace", "round": 2, "step": "train"}
    assert args[1]["context"] == {"loop": "demo", "arm": "replace"}
    assert "context" not in args[2] and args[2]["model"] == "o"
