"""The verifier audit against an oracle, and the boosting label budget with its label round trip."""
from __future__ import annotations

import json

import pytest

from curator.errors import UsageError
from curator.selectors import create
from curator.selectors.audit import audit
from curator.selectors.budget import difficulty, label_queue
from curator.selectors.pipeline import select
from tests.conftest import write_jsonl
from tests.selectors.conftest import FLIP_PROMPTS, K, P, corrupted


def _known():
    cells = [(i, j) for i in range(P) for j in range(K)]
    correct = sum(not corrupted(i, j, 1) for i, j in cells)
    flip_c = sum(not corrupted(i, 1, 1) for i in range(FLIP_PROMPTS))
    flip_i = FLIP_PROMPTS - flip_c
    return correct, len(cells) - correct, flip_c, flip_i


def test_exact_and_noisy_verifiers_against_the_oracle(world):
    c, i, flip_c, flip_i = _known()
    noisy = audit(world.store, oracle="gsm8k_answer_v1", oracle_config=world.oracle_config,
                  verifiers=["noisy_verifier_v1"], generation=1).to_pylist()[0]
    exact = audit(world.store, oracle="gsm8k_answer_v1", oracle_config=world.oracle_config,
                  verifiers=["gsm8k_answer_v1"], verifier_config=world.verifier_config, generation=1).to_pylist()[0]
    assert (exact["audit_samples"], exact["oracle_correct"], exact["oracle_incorrect"]) == (P * K, c, i)
    assert (exact["keep_rate_correct"], exact["keep_rate_incorrect"], exact["precision"]) == (1.0, 0.0, 1.0)
    assert exact["base_rate"] == pytest.approx(c / (c + i))
    assert noisy["kept"] == c - flip_c + flip_i
    assert noisy["keep_rate_correct"] == pytest.approx((c - flip_c) / c)
    assert noisy["keep_rate_incorrect"] == pytest.approx(flip_i / i)
    assert noisy["precision"] == pytest.approx((c - flip_c) / (c - flip_c + flip_i))
    assert flip_c > 0 and flip_i > 0


def test_audit_of_a_selection_and_errors(world):
    c, _, flip_c, flip_i = _known()
    select(world.store, generation=1, name="noisy", steps=[create("verifier_v1", {"verifier": "noisy_verifier_v1"})])
    row = audit(world.store, oracle="gsm8k_answer_v1", oracle_config=world.oracle_config, selection="noisy").to_pylist()[0]
    assert row["generation"] == 1 and row["kept"] == c - flip_c + flip_i
    assert row["precision"] == pytest.approx((c - flip_c) / (c - flip_c + flip_i))
    with pytest.raises(UsageError, match="holds 2 configs"):
        audit(world.store, oracle="gsm8k_answer_v1", verifiers=["noisy_verifier_v1"])
    with pytest.raises(UsageError, match="no selection 'nope' in the store; selections: "):
        audit(world.store, oracle="gsm8k_answer_v1", oracle_config=world.oracle_config, selection="nope")
    with pytest.raises(UsageError, match="is the oracle itself"):
        audit(world.store, oracle="gsm8k_answer_v1", oracle_config=world.oracle_config,
              verifiers=["gsm8k_answer_v1"], verifier_config=world.oracle_config)


def test_label_queue_order_budget_and_round_trip(tmp_path):
    """A hand-checked case: five prompts with pass rates 0/3, 1/3, 3/3, 0/3, 2/3."""
    from curator.ingest.pipeline import ingest
    from curator.ingest.readers import FieldMap
    from curator.scorers.verifiers import Gsm8kAnswer
    from curator.scoring import score
    from curator.store import Store
    from curator.store.query import connect

    store = Store(tmp_path / "st", create=True)
    passes = {"p0": 0, "p1": 1, "p2": 3, "p3": 0, "p4": 2}
    rows = [{"q": f"question {p}?", "text": f"try {k} #### {7 if k < n else 8}", "gold": "#### 7"}
            for p, n in passes.items() for k in range(3)]
    ingest(store, [write_jsonl(tmp_path / "g1.jsonl", rows)], generation=1, origin="synthetic",
           fields=FieldMap(prompt="q", reference="gold"), stats=False)
    score(store, [Gsm8kAnswer()])
    table = difficulty(store, 1, "gsm8k_answer_v1").to_pylist()
    by_prompt = {r["prompt"]: r for r in table}
    assert by_prompt["question p1?"]["difficulty"] == pytest.approx(2 / 3)
    # unsolved first (p0, p3, in prompt_id order), then by difficulty: p1 (2/3), p4 (1/3), p2 (0)
    unsolved = sorted([by_prompt["question p0?"]["prompt_id"], by_prompt["question p3?"]["prompt_id"]])
    assert [r["prompt_id"] for r in table] == unsolved + [by_prompt[f"question {p}?"]["prompt_id"] for p in ("p1", "p4", "p2")]
    out = tmp_path / "queue.jsonl"
    q = label_queue(store, 1, 3, "gsm8k_answer_v1", out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert q.rows == 3 and q.unsolved == 2 and [x["prompt_id"] for x in lines] == [r["prompt_id"] for r in table[:3]]
    assert all(x["reference"] == "" and x["prompt"].startswith("question") for x in lines)
    # the labelers fill in the reference; the labels come back linked to their prompts
    for x in lines:
        x["reference"] = "a worked answer #### 7"
    write_jsonl(out, lines)
    ingest(store, [out], generation=1, origin="labeled", stats=False,
           fields=FieldMap(text="reference", prompt="prompt", reference="reference", parent="prompt_id"))
    got = connect(store).sql("SELECT prompt_id, parent_id, text, reference FROM samples WHERE origin = 'labeled' "
                             "ORDER BY prompt_id").to_arrow_table().to_pylist()
    assert [g["prompt_id"] for g in got] == sorted(x["prompt_id"] for x in lines)
    assert all(g["parent_id"] == g["prompt_id"] and g["text"] == "a worked answer #### 7" for g in got)
    # asking again spends the budget on prompts without labels
    again = label_queue(store, 1, 3, "gsm8k_answer_v1", tmp_path / "q2.jsonl")
    assert again.already_labeled == 3 and again.rows == 2
    nxt = [json.loads(x)["prompt_id"] for x in (tmp_path / "q2.jsonl").read_text().splitlines()]
    assert nxt == [by_prompt[f"question {p}?"]["prompt_id"] for p in ("p4", "p2")]
