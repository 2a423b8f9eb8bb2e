"""The scoring framework: score tables, incremental runs, --rescore, SQL views, failures, plugins."""
from __future__ import annotations

import json
import os
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from curator.errors import SchemaVersionError, StoreError, UsageError
import numpy as np

from curator.executors import ProcessExecutor, ScanTask, ScoringError, plan_chunks
from curator.ingest.pipeline import ingest
from curator.ingest.readers import FieldMap
from curator.scorers import create, scorer_class
from curator.scorers.options import build_scorers
from curator.scoring import score
from curator.store import Store
from curator.store.query import connect, run_sql
from curator.store.schema import check_score_schema
from tests.conftest import run_cli, write_jsonl
from tests.scoring_plugins import Boom, Length, LengthChanged, ReferenceShare, ShortOutput


def _store(tmp_path: Path, n0: int = 40, n1: int = 25, extra1: list[str] = ()) -> Store:
    store = Store(tmp_path / "store", create=True)
    human = write_jsonl(tmp_path / "h.jsonl", [{"text": f"human document number {i} " * (1 + i % 4)} for i in range(n0)])
    synth = write_jsonl(tmp_path / "s.jsonl", [{"text": f"synthetic {i}"} for i in range(n1)] +
                        [{"text": t} for t in extra1])
    ingest(store, [str(human)], generation=0, origin="human", fields=FieldMap(), stats=False)
    ingest(store, [str(synth)], generation=1, origin="synthetic", fields=FieldMap(), stats=False)
    return store


def _sql(store: Store, query: str, **params):
    return run_sql(connect(store), query, params).to_pylist()


def test_scores_go_to_their_own_table_keyed_by_sample(tmp_path):
    store = _store(tmp_path)
    samples_version = store.table_versions()["samples"]
    [summary] = score(store, [Length()], generations=[1], batch_size=7)
    assert (summary.scored, summary.skipped, summary.table) == (25, 0, "scores_length_v1")
    assert store.table_versions()["samples"] == samples_version  # scores never touch samples
    rows = _sql(store, """SELECT s.text, c.length, c.long, c.label, c.config_hash, c.run_id
                          FROM scores_length_v1 c JOIN samples s USING (sample_id) ORDER BY s.text""")
    assert len(rows) == 25
    for r in rows:
        assert r["length"] == len(r["text"]) and r["long"] == (len(r["text"]) > 20) and r["label"] == r["text"].upper()
        assert r["config_hash"] == Length().config_hash
    run = store.runs().to_pylist()[-1]
    assert run["command"] == "score" and run["generations"] == [1] and "scores_length_v1" in run["written"]
    assert rows[0]["run_id"] == run["run_id"]
    assert json.loads(run["summary"])["length_v1"]["scored"] == 25


def test_incremental_rescore_and_configs(tmp_path):
    store = _store(tmp_path)
    score(store, [Length()], generations=[1])
    [again] = score(store, [Length()])  # all generations: only generation 0 is new
    assert (again.scored, again.skipped) == (40, 25)
    version = store.version()
    [none] = score(store, [Length()])
    assert (none.scored, none.skipped) == (0, 65)
    [rescored] = score(store, [Length()], generations=[0], rescore=True)
    assert (rescored.scored, rescored.replaced) == (40, 40)
    [other] = score(store, [Length(scale=2.0)], generations=[1])  # another config adds rows beside the first
    assert other.scored == 25 and other.config_hash != Length().config_hash
    counts = _sql(store, "SELECT config_hash, count(*) AS n, count(DISTINCT sample_id) AS d FROM scores_length_v1 GROUP BY ALL ORDER BY n")
    assert [(c["n"], c["d"]) for c in counts] == [(25, 25), (65, 65)]
    # Time travel: the store as it was before the rescore still has the first rows.
    assert run_sql(connect(store, as_of=version), "SELECT count(*) AS n FROM scores_length_v1").to_pylist() == [{"n": 65}]


def test_long_scores_view_spans_every_score_table(tmp_path):
    store = _store(tmp_path)
    con = connect(store)
    assert run_sql(con, "SELECT count(*) AS n FROM scores").to_pylist() == [{"n": 0}]  # exists, empty, before any score
    score(store, [Length(), ReferenceShare()], generations=[0, 1])
    rows = _sql(store, "SELECT scorer, metric, count(*) AS n, sum(value) AS s FROM scores GROUP BY ALL ORDER BY ALL")
    # Strings (label) are not metrics; booleans count as 0/1.
    assert [(r["scorer"], r["metric"], r["n"]) for r in rows] == [
        ("length_v1", "length", 65), ("length_v1", "long", 65), ("reference_share_v1", "in_reference", 65)]
    share = {r["metric"]: r["s"] for r in rows}
    assert share["in_reference"] == 40  # fit() read generation 0: every human text, no synthetic one


def test_failing_batch_names_samples_and_keeps_earlier_scores(tmp_path):
    store = _store(tmp_path, extra1=["BOOM goes the sample"])
    score(store, [Boom()], generations=[0])
    before = store.version()
    with pytest.raises(ScoringError) as err:
        score(store, [Length(), Boom()], generations=[1], batch_size=4)
    assert "boom_v1" in str(err.value) and "sample ids" in str(err.value)
    bad_id = _sql(store, "SELECT sample_id FROM samples WHERE text LIKE 'BOOM%'")[0]["sample_id"]
    assert bad_id in str(err.value)
    assert store.version() == before
    assert "scores_length_v1" not in store.table_versions()
    assert not (store.root / "scores_length_v1.lance").exists()  # created by the failed run, removed
    assert _sql(store, "SELECT count(*) AS n FROM scores_boom_v1") == [{"n": 40}]


def test_wrong_output_and_changed_columns_are_refused(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(ScoringError, match="returned 24 rows for a batch of 25"):
        score(store, [ShortOutput()], generations=[1], batch_size=100)
    score(store, [Length()], generations=[1])
    with pytest.raises(StoreError, match="new versioned name"):
        score(store, [LengthChanged()], generations=[0])


def test_unknown_names_and_bad_options(tmp_path):
    with pytest.raises(UsageError, match="unknown scorer 'nope_v1'; available: .*text_stats_v1"):
        scorer_class("nope_v1")
    with pytest.raises(UsageError, match="versioned name"):
        scorer_class("tests.scoring_plugins:NoVersion")
    with pytest.raises(UsageError, match="has no attribute"):
        scorer_class("tests.scoring_plugins:Missing")
    with pytest.raises(UsageError, match="unknown option"):
        create("tests.scoring_plugins:Length", {"scael": 2})
    with pytest.raises(UsageError, match="expected float"):
        create("tests.scoring_plugins:Length", {"scale": "big"})
    with pytest.raises(UsageError, match="no samples in generation"):
        score(_store(tmp_path), [Length()], generations=[7])


def test_options_from_flags_and_toml(tmp_path):
    toml = tmp_path / "scorers.toml"
    toml.write_text('scorers = ["tests.scoring_plugins:Boom"]\n["tests.scoring_plugins:Length"]\nscale = 3.0\n')
    length, boom = build_scorers(["tests.scoring_plugins:Length"], config_file=str(toml))
    assert length.config.scale == 3.0 and boom.name == "boom_v1"
    [length] = build_scorers(["tests.scoring_plugins:Length"], ["length_v1.scale=0.5"], model="/m")
    assert (length.config.scale, length.config.model) == (0.5, "/m")
    with pytest.raises(UsageError, match="none of the scorers .* takes option 'device'"):
        build_scorers(["tests.scoring_plugins:Length"], device="cuda")
    with pytest.raises(UsageError, match="not being run"):
        build_scorers(["tests.scoring_plugins:Length"], ["boom_v1.x=1"])


def test_score_table_of_another_layout_is_refused(tmp_path):
    store = _store(tmp_path)
    score(store, [Length()], generations=[1])
    schema = lance.dataset(str(store.root / "scores_length_v1.lance")).schema
    check_score_schema("scores_length_v1", schema, "here")  # as written: accepted
    future = schema.with_metadata({**schema.metadata, b"curator.schema_version": b"99"})
    with pytest.raises(SchemaVersionError, match="layout version 99, this curator reads version 1"):
        check_score_schema("scores_length_v1", future, "here")
    foreign = pa.schema([pa.field("id", pa.string())])
    with pytest.raises(SchemaVersionError, match="not written by curator"):
        check_score_schema("scores_length_v1", foreign, "here")


def test_cli_score_with_entry_point_plugin(tmp_path):
    store = _store(tmp_path)
    # A third-party package that declares a scorer in the curator.scorers entry-point group.
    site = tmp_path / "site"
    pkg = site / "acme_scorers"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text((Path(__file__).parent / "scoring_plugins.py").read_text())
    dist = site / "acme_scorers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-scorers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[curator.scorers]\nlength_v1 = acme_scorers:Length\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parents[1])])}
    listed = run_cli("--store", str(store.root), "score", "--list", env=env)
    assert "length_v1" in listed.stdout.split() and "text_stats_v1" in listed.stdout.split()
    out = run_cli("--store", str(store.root), "score", "-g", "0,1", "-s", "length_v1", "-o", "scale=2",
                  "--batch-size", "16", env=env)
    assert "scores_length_v1" in out.stdout
    rows = run_cli("--store", str(store.root), "sql", "--format", "json",
                   "SELECT count(*) AS n, max(length) AS m FROM scores_length_v1", env=env)
    got = json.loads(rows.stdout)[0]
    assert got["n"] == 65 and got["m"] > 0
    bad = run_cli("--store", str(store.root), "score", "-s", "nope_v1", env=env, check=False)
    assert bad.returncode == 2 and "available:" in bad.stderr and "length_v1" in bad.stderr


def test_crash_during_scoring_leaves_previous_version(tmp_path):
    store = _store(tmp_path)
    before = store.version()
    for point in ("after-scores-commit", "before-run-commit"):
        proc = run_cli("--store", str(store.root), "score", "-s", "tests.scoring_plugins:Length",
                       env={"CURATOR_CRASH_AT": point}, check=False)
        assert proc.returncode != 0
        reopened = Store(store.root)
        assert reopened.version() == before and "scores_length_v1" not in reopened.table_versions()
    # The next writer clears the debris and scores everything.
    [summary] = score(Store(store.root), [Length()])
    assert summary.scored == 65


def _table(store: Store, table: str):
    return run_sql(connect(store), f"SELECT * EXCLUDE (run_id) FROM {table} ORDER BY sample_id, config_hash").to_pylist()


def test_process_executor_gives_the_local_results(tmp_path):
    """The scale-out hook: the same scorers, pickled to worker processes (after fit), over fragment chunks."""
    local = _store(tmp_path / "a", n0=300, n1=120)
    spread = _store(tmp_path / "b", n0=300, n1=120)
    score(local, [Length(), ReferenceShare()], generations=[1])
    score(local, [Length(), ReferenceShare()])
    pool = ProcessExecutor(workers=2, rows_per_chunk=50)
    score(spread, [Length(), ReferenceShare()], generations=[1], executor=pool, batch_size=16)
    [inc, _] = score(spread, [Length(), ReferenceShare()], executor=pool, batch_size=16)  # incremental chunks
    assert (inc.scored, inc.skipped) == (300, 120)
    for table in ("scores_length_v1", "scores_reference_share_v1"):
        assert _table(local, table) == _table(spread, table)
    store = _store(tmp_path / "c", extra1=["BOOM in a worker"])
    with pytest.raises(ScoringError, match="boom_v1 failed on a batch"):
        score(store, [Boom()], executor=ProcessExecutor(workers=2, rows_per_chunk=8), batch_size=4)
    assert "scores_boom_v1" not in store.table_versions()


def test_plan_chunks_cover_each_row_once(tmp_path):
    store = _store(tmp_path, n0=100, n1=37)
    ds = store.dataset("samples")
    ids = ds.to_table(columns=[], filter="generation IN (1)", with_row_id=True).column("_rowid").to_numpy()
    todo = np.sort(ids[::3])
    task = ScanTask(uri=ds.uri, version=ds.version, columns=("sample_id",), filter="generation IN (1)", row_ids=todo)
    chunks = plan_chunks(task, rows_per_chunk=5)
    assert sum(c.limit for c in chunks) <= len(ids)
    assert np.array_equal(np.sort(np.concatenate([c.row_ids for c in chunks])), todo)
