"""Shift through the whole pipeline on real GSM8K answers: halves agree, injected stock phrases are flagged."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import run_cli, shared_file, write_jsonl

PHRASES = ["Let's think step by step.", "The answer is clear.", "Therefore, the final answer is below.",
           "We can solve this easily."]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in shared_file("gsm8k_train.jsonl").read_text().splitlines()]
    rng = random.Random(0)
    rng.shuffle(rows)
    half = len(rows) // 2
    a, b = rows[:half], rows[half:]
    injected = []
    for r in b:
        text = r["answer"]
        if rng.random() < 0.8:
            text = " ".join(rng.sample(PHRASES, 3)) + " " + text + " " + rng.choice(PHRASES)
        injected.append({"question": r["question"], "answer": text})
    tmp = tmp_path_factory.mktemp("shift")
    st = tmp / "st"
    common = ["--text-field", "answer", "--prompt-field", "question"]
    run_cli("--store", str(st), "ingest", str(write_jsonl(tmp / "a.jsonl", a)), "-g", "0", "--origin", "human", *common)
    run_cli("--store", str(st), "ingest", str(write_jsonl(tmp / "b.jsonl", b)), "-g", "1", "--origin", "human", *common)
    run_cli("--store", str(st), "ingest", str(write_jsonl(tmp / "c.jsonl", injected)), "-g", "2", "--origin", "synthetic", *common)
    return st


def _report(store: Path, generation: int, *extra: str) -> dict[str, dict]:
    out = run_cli("--store", str(store), "shift", "--generation", str(generation), "--format", "json", *extra)
    rows = json.loads(out.stdout)
    assert all(set(r) == {"metric", "baseline", "value", "delta", "threshold", "status"} for r in rows)
    return {r["metric"]: r for r in rows}


def test_human_half_against_the_other_raises_no_alarm(store: Path) -> None:
    rep = _report(store, 1)
    for name in ("distinct_1", "distinct_3", "js_divergence_2", "top_bucket_mass_2", "tail_loss_3", "length_ks"):
        assert name in rep
    alarms = [m for m, r in rep.items() if r["status"] == "alarm"]
    assert alarms == []
    proc = run_cli("--store", str(store), "shift", "--generation", "1", "--fail-on", "alarm")
    assert proc.returncode == 0


def test_injected_phrases_are_flagged(store: Path) -> None:
    rep, ref = _report(store, 2), _report(store, 1)
    for n in (2, 3, 4):
        assert rep[f"distinct_{n}"]["value"] < ref[f"distinct_{n}"]["value"]
    assert rep["top_bucket_mass_2"]["value"] > ref["top_bucket_mass_2"]["value"]
    assert rep["js_divergence_2"]["value"] > ref["js_divergence_2"]["value"] > 0
    assert any(r["status"] == "alarm" for r in rep.values())
    proc = run_cli("--store", str(store), "shift", "--generation", "2", "--fail-on", "alarm", check=False)
    assert proc.returncode == 4 and "in alarm" in proc.stderr
    # thresholds are configurable: loosen everything and the alarm goes away for one metric
    loose = _report(store, 2, "--threshold", "js_divergence=1.0")
    assert all(loose[f"js_divergence_{n}"]["status"] == "ok" for n in (1, 2, 3, 4))


def test_overrepresented_bigrams_name_the_phrases(store: Path) -> None:
    out = run_cli("--store", str(store), "sql", "--query", "shift/overrepresented", "-p", "generation", "2", "-p", "n", "2",
                  "--format", "json")
    top = [r["ngram"] for r in json.loads(out.stdout)][:10]
    assert any(g in top for g in ("step by", "think step", "answer is", "solve this", "this easily", "let s"))
