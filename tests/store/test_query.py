"""SQL over the store is read-only, parameterised, and sees every table; `curator stats` with another tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from curator.store import Store
from tests.conftest import run_cli, write_jsonl


def _texts(n: int) -> list[dict]:
    return [{"text": f"the cat number {i} sat on the mat and looked at bird {i % 5}"} for i in range(n)]


def test_sql_cannot_write_to_the_store(tmp_path: Path, store_dir: Path) -> None:
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", _texts(5))), "-g", "0", "--origin", "human")
    for stmt in ("DELETE FROM samples", "UPDATE samples SET text = 'x'", "INSERT INTO samples SELECT * FROM samples",
                 "DROP VIEW samples"):
        proc = run_cli("--store", str(store_dir), "sql", stmt, check=False)
        if proc.returncode == 0:  # DROP VIEW succeeds on the throw-away connection only
            assert stmt.startswith("DROP")
        else:
            assert proc.returncode == 2 and proc.stderr.startswith("error: query failed")
    out = run_cli("--store", str(store_dir), "sql", "--format", "json", "SELECT count(*) AS n, min(text) AS t FROM samples")
    assert json.loads(out.stdout) == [{"n": 5, "t": "the cat number 0 sat on the mat and looked at bird 0"}]
    assert Store(store_dir).version() == 2


def test_sql_sees_every_table_and_lists_named_queries(tmp_path: Path, store_dir: Path) -> None:
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", _texts(3))), "-g", "0", "--origin", "human")
    for table in ("samples", "ngram_totals", "ngram_buckets", "ngram_top", "ngram_sample", "rejects", "runs"):
        run_cli("--store", str(store_dir), "sql", f"SELECT count(*) FROM {table}")
    out = run_cli("--store", str(store_dir), "sql", "--list", "--format", "json")
    names = {r["name"] for r in json.loads(out.stdout)}
    assert {"shift/distinct_n", "shift/js_divergence", "shift/tail_loss", "shift/length"} <= names


def test_stats_with_a_local_hf_tokenizer(tmp_path: Path, store_dir: Path) -> None:
    rows = _texts(40)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([r["text"] for r in rows], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", rows)), "-g", "0", "--origin", "human")
    run_cli("--store", str(store_dir), "ingest", str(write_jsonl(tmp_path / "b.jsonl", rows[:20])), "-g", "1", "--origin", "synthetic")
    run_cli("--store", str(store_dir), "stats", "--tokenizer", f"hf:{tok_dir}")
    out = run_cli("--store", str(store_dir), "sql", "--format", "json",
                  "SELECT DISTINCT tokenizer FROM ngram_totals ORDER BY tokenizer")
    names = [r["tokenizer"] for r in json.loads(out.stdout)]
    assert names[0].startswith("hf:tok@") and names[1] == "word_v1"
    # every word is one token for this tokenizer, so its unigram total equals word_v1's
    out = run_cli("--store", str(store_dir), "sql", "--format", "json",
                  "SELECT tokenizer, total FROM ngram_totals WHERE n = 1 AND origin = '*' AND generation = 0")
    totals = {r["tokenizer"][:3]: r["total"] for r in json.loads(out.stdout)}
    assert totals["hf:"] == totals["wor"] == sum(len(r["text"].split()) for r in rows)
    out = run_cli("--store", str(store_dir), "shift", "-g", "1", "--tokenizer", f"hf:{tok_dir}", "--format", "json")
    rep = {r["metric"]: r for r in json.loads(out.stdout)}
    assert rep["distinct_1"]["value"] is not None
