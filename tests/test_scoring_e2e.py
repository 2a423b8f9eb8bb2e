"""Scoring end to end through the CLI on real GSM8K data: verifiers, text scorers, embeddings and a
reference model's perplexity, then the score-based shift metrics and SQL over the score tables."""
from __future__ import annotations

import json
import random
import re

import pytest

from tests.conftest import run_cli, shared_file, write_jsonl

N = 150


@pytest.fixture(scope="module")
def scored_store(tmp_path_factory):
    from tests.scorers.tiny_models import make_tiny_gpt2

    rows = [json.loads(line) for line in shared_file("gsm8k_test.jsonl").read_text().splitlines()[:N]]
    tmp = tmp_path_factory.mktemp("e2e")
    human = write_jsonl(tmp / "human.jsonl", rows)
    rng = random.Random(0)
    synthetic, altered = [], 0
    for i, r in enumerate(rows):
        answer = r["answer"]
        if i % 3 == 0:  # a wrong final number
            answer = re.sub(r"####\s*(-?[\d,]+)", lambda m: f"#### {int(m.group(1).replace(',', '')) + 7}", answer)
            altered += 1
        phrase = rng.choice(["Let's think step by step.", "The answer is clear.", "We solve it carefully."])
        synthetic.append({"question": r["question"], "text": f"{phrase} {answer}", "gold": r["answer"]})
    synth = write_jsonl(tmp / "synthetic.jsonl", synthetic)
    model = make_tiny_gpt2(tmp / "ref-model", [r["answer"] for r in rows], steps=40, seed=0)
    st = str(tmp / "st")
    run_cli("--store", st, "ingest", str(human), "-g", "0", "--origin", "human", "--text-field", "answer",
            "--prompt-field", "question", "--reference-field", "answer")
    run_cli("--store", st, "ingest", str(synth), "-g", "1", "--origin", "synthetic", "--prompt-field", "question",
            "--reference-field", "gold", "--model", "test-generator")
    env = {"OMP_NUM_THREADS": "1"}
    run_cli("--store", st, "score", "--generation", "0,1", "--scorer", "text_stats_v1", "--scorer", "repetition_v1",
            "--scorer", "gsm8k_answer_v1", env=env)
    run_cli("--store", st, "score", "--generation", "0,1", "--scorer", "embedding_v1", env=env)
    run_cli("--store", st, "score", "--generation", "0,1", "--scorer", "perplexity_v1", "--model", str(model),
            "-o", "keep_token_probs=true", env=env)
    return st, altered


def test_verifier_pass_rate_in_sql(scored_store):
    st, altered = scored_store
    out = run_cli("--store", st, "sql", "--format", "json",
                  "SELECT generation, avg(correct::INT) AS pass FROM scores_gsm8k_answer_v1 JOIN samples USING (sample_id) "
                  "GROUP BY ALL ORDER BY generation")
    rates = {r["generation"]: r["pass"] for r in json.loads(out.stdout)}
    assert rates[0] == 1.0
    assert rates[1] == pytest.approx(1 - altered / N)


def test_every_sample_scored_once_and_rerun_is_incremental(scored_store):
    st, _ = scored_store
    out = run_cli("--store", st, "sql", "--format", "json",
                  "SELECT scorer, count(DISTINCT sample_id) AS n, count(*) / count(DISTINCT metric) AS rows "
                  "FROM scores GROUP BY ALL ORDER BY scorer")
    got = {r["scorer"]: (r["n"], r["rows"]) for r in json.loads(out.stdout)}
    assert set(got) == {"text_stats_v1", "repetition_v1", "gsm8k_answer_v1", "perplexity_v1"}  # embeddings: vectors only
    assert all(v == (2 * N, 2 * N) for v in got.values())
    dims = run_cli("--store", st, "sql", "--format", "json",
                   "SELECT count(*) AS n, min(len(embedding)) AS d FROM scores_embedding_v1")
    assert json.loads(dims.stdout) == [{"n": 2 * N, "d": 384}]
    again = run_cli("--store", st, "-q", "score", "-g", "0,1", "-s", "text_stats_v1")
    assert "scored" in again.stdout
    rerun = run_cli("--store", st, "sql", "--format", "json",
                    "SELECT json_extract(summary, '$.text_stats_v1.scored')::INT AS scored, "
                    "json_extract(summary, '$.text_stats_v1.skipped')::INT AS skipped FROM runs ORDER BY seq DESC LIMIT 1")
    assert json.loads(rerun.stdout) == [{"scored": 0, "skipped": 2 * N}]


def test_shift_reports_score_metrics(scored_store):
    st, altered = scored_store
    out = run_cli("--store", st, "shift", "--generation", "1", "--format", "json")
    rows = {r["metric"]: r for r in json.loads(out.stdout)}
    for metric in ("ppl_p50", "ppl_low_band_share", "ppl_ks", "token_prob_above_0_99", "token_prob_bin_9",
                   "embedding_centroid_distance", "embedding_pairwise_similarity", "pass_rate_gsm8k_answer_v1"):
        assert metric in rows, metric
        assert set(rows[metric]) == {"metric", "baseline", "value", "delta", "threshold", "status"}
    assert rows["pass_rate_gsm8k_answer_v1"]["baseline"] == 1.0
    assert rows["pass_rate_gsm8k_answer_v1"]["value"] == pytest.approx(1 - altered / N)
    bins = sum(rows[f"token_prob_bin_{i}"]["value"] for i in range(10))
    assert bins == pytest.approx(1.0)
    # The same stock phrases open every synthetic answer: its embeddings drift from the human ones.
    assert rows["embedding_centroid_distance"]["value"] > 0
