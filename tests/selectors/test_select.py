"""The selector chain on real GSM8K answers: verifier selection, best-of-k, rules, dedup, diversity, DSIR."""
from __future__ import annotations

import numpy as np
import pytest

from curator.errors import UsageError
from curator.selectors import create
from curator.selectors.diversity import facility_location, farthest_point
from curator.selectors.pipeline import select
from curator.store.query import connect
from tests.selectors.conftest import COPIES, K, P, corrupted


def _verifier(world):
    return create("verifier_v1", {"verifier": "gsm8k_answer_v1", "config_hash": world.verifier_config})


def _rows(world, name):
    return connect(world.store).sql("SELECT * FROM selections WHERE selection = $n ORDER BY sample_id",
                                    params={"n": name}).to_arrow_table().to_pylist()


def test_verifier_keeps_exactly_the_uncorrupted(world):
    res = select(world.store, generation=1, name="v1", steps=[_verifier(world)])
    want = sorted(world.ids[(1, i, j)] for i in range(P) for j in range(K) if not corrupted(i, j, 1))
    rows = _rows(world, "v1")
    assert [r["sample_id"] for r in rows] == want
    assert res.rows == len(want) and res.steps[0].rows_in == P * K and res.steps[0].rows_out == len(want)
    assert {r["reason"] for r in rows} == {"verifier gsm8k_answer_v1: correct; mix replace: generation 1"}
    assert {r["config_hash"] for r in rows} == {res.config_hash} and {r["weight"] for r in rows} == {1.0}
    assert res.counts == [{"origin": "synthetic", "generation": 1, "rows": len(want)}]


def test_rerun_replaces_and_time_travel_keeps_the_old(world):
    first = select(world.store, generation=1, name="again", steps=[_verifier(world)])
    second = select(world.store, generation=1, name="again",
                    steps=[create("best_of_k_v1", {"column": "gsm8k_answer_v1.correct", "config_hash": world.verifier_config})])
    assert len(_rows(world, "again")) == second.rows == P
    old = connect(world.store, as_of=first.store_version).execute(
        "SELECT count(*) FROM selections WHERE selection = 'again'").fetchone()[0]
    assert old == first.rows
    assert world.store.tags()["select-again"] == second.store_version


def test_best_of_k_picks_smallest_correct_sample_id(world):
    steps = [_verifier(world),
             create("best_of_k_v1", {"column": "gsm8k_answer_v1.correct", "config_hash": world.verifier_config})]
    select(world.store, generation=1, name="bok", steps=steps)
    want = sorted(min(world.ids[(1, i, j)] for j in range(K) if not corrupted(i, j, 1)) for i in range(P))
    assert [r["sample_id"] for r in _rows(world, "bok")] == want


def test_threshold_top_k_and_fraction(world):
    res = select(world.store, generation=1, name="rules", steps=[
        create("threshold_v1", {"where": "gsm8k_answer_v1.correct = true", "config_hash": world.verifier_config}),
        create("top_fraction_v1", {"column": "noisy_verifier_v1.correct", "fraction": 0.5}),
        create("top_k_v1", {"column": "gsm8k_answer_v1.correct", "k": 7, "descending": False, "config_hash": world.verifier_config})])
    n_ok = sum(not corrupted(i, j, 1) for i in range(P) for j in range(K))
    assert [s.rows_out for s in res.steps] == [n_ok, int(np.floor(n_ok * 0.5 + 0.5)), 7]
    per_prompt = select(world.store, generation=1, name="rules2", steps=[
        create("top_k_v1", {"column": "gsm8k_answer_v1.correct", "k": 2, "group_by": "prompt_id", "config_hash": world.verifier_config})])
    assert per_prompt.rows == 2 * P
    with pytest.raises(UsageError, match="no score column 'nope'; columns: correct, answer"):
        select(world.store, generation=1, name="bad", steps=[create("threshold_v1", {"where": "gsm8k_answer_v1.nope > 1"})])
    with pytest.raises(UsageError, match="holds 2 configs"):
        select(world.store, generation=1, name="bad", steps=[create("threshold_v1", {"where": "gsm8k_answer_v1.correct > 0"})])
    one = select(world.store, generation=1, name="bad", steps=[create("threshold_v1", {
        "where": "gsm8k_answer_v1.correct > 0", "config_hash": world.verifier_config})])
    assert one.rows == n_ok


def test_unknown_selector_lists_the_available():
    with pytest.raises(UsageError, match=r"unknown selector 'nope_v1'; available: best_of_k_v1, .*verifier_v1"):
        create("nope_v1")
    with pytest.raises(UsageError, match=r"unknown option\(s\) \['x'\] for selector threshold_v1"):
        create("threshold_v1", {"x": 1})


def test_exact_dedup_within_and_against_earlier(world):
    none = select(world.store, generation=2, name="dd0", steps=[create("exact_dedup_v1", {"against": "none"})])
    earlier = select(world.store, generation=2, name="dd1", steps=[create("exact_dedup_v1")])
    assert none.rows == P * K and earlier.rows == P * K - COPIES
    kept = {r["sample_id"] for r in _rows(world, "dd1")}
    assert not kept & {world.ids[(2, i, 0)] for i in range(COPIES)}
    # against the rows some selection (of any name) kept of generation 1
    select(world.store, generation=1, name="v1", steps=[_verifier(world)])
    selected = {r[0] for r in connect(world.store).execute(
        "SELECT DISTINCT sample_id FROM selections WHERE generation = 1").fetchall()}
    assert {world.ids[(1, i, 0)] for i in range(COPIES) if not corrupted(i, 0, 1)} <= selected
    sel = select(world.store, generation=2, name="dd2", steps=[create("exact_dedup_v1", {"against": "selected"})])
    assert sel.rows == P * K - sum(world.ids[(1, i, 0)] in selected for i in range(COPIES))


def test_diversity_greedy_on_hand_cases(world):
    x = np.array([[1, 0], [0.99, 0.14], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pick = farthest_point(x, 3)
    assert pick[0] in (0, 1) and set(pick[1:]) <= {2, 3, 4} and len(set(pick)) == 3
    assert 1 not in facility_location(x, 4) or 0 not in facility_location(x, 4)
    res = select(world.store, generation=1, name="div", steps=[
        create("diversity_v1", {"k": 10, "column": "toy_embedding_v1.embedding"})])
    assert res.rows == 10
    fl = select(world.store, generation=1, name="div2", steps=[
        create("diversity_v1", {"fraction": 0.1, "method": "facility_location", "column": "toy_embedding_v1.embedding"})])
    assert fl.rows == int(np.floor(P * K * 0.1 + 0.5))


def test_dsir_resample_is_seeded(world):
    from curator.scorers.dsir import Dsir
    from curator.scoring import score

    score(world.store, [Dsir()], generations=[1])
    a = select(world.store, generation=1, name="dsir", seed=3, steps=[create("dsir_resample_v1", {"k": 25})])
    ids_a = [r["sample_id"] for r in _rows(world, "dsir")]
    select(world.store, generation=1, name="dsir", seed=3, steps=[create("dsir_resample_v1", {"k": 25})])
    assert [r["sample_id"] for r in _rows(world, "dsir")] == ids_a and a.rows == 25
    select(world.store, generation=1, name="dsir", seed=4, steps=[create("dsir_resample_v1", {"k": 25})])
    assert [r["sample_id"] for r in _rows(world, "dsir")] != ids_a


def test_near_dedup_with_minhash(world):
    within = select(world.store, generation=2, name="nd0", steps=[create("near_dedup_v1", {"against": "none"})])
    rows_after_first = connect(world.store).execute("SELECT count(*) FROM minhash").fetchone()[0]
    res = select(world.store, generation=2, name="nd", steps=[create("near_dedup_v1")])
    kept = {r["sample_id"] for r in _rows(world, "nd")}
    # the exact copies of generation 1 are near-duplicates too; "Attempt 2.j: <answer>" differs from
    # "Attempt 1.j: <answer>" in its first words only, so most of generation 2 goes
    assert not kept & {world.ids[(2, i, 0)] for i in range(COPIES)}
    assert res.rows < within.rows <= P * K
    stored = connect(world.store).execute(
        "SELECT count(*), count(DISTINCT sample_id) FROM minhash").fetchone()
    assert rows_after_first == P * K and stored == (P + 2 * P * K,) * 2  # generations 0 (human), 1, 2 indexed once
    again = select(world.store, generation=2, name="nd", steps=[create("near_dedup_v1")])
    assert again.rows == res.rows
    assert connect(world.store).execute("SELECT count(*) FROM minhash").fetchone()[0] == P + 2 * P * K  # nothing rehashed


def test_dedup_lineage_limits_what_counts_as_earlier(world):
    # Generation 2 copies COPIES texts of generation 1. With a lineage that leaves the earlier generations out
    # (another arm of a loop sharing the store), nothing earlier counts: the same rows as against=none.
    for step in ("exact_dedup_v1", "near_dedup_v1"):
        full = select(world.store, generation=2, name="lin-all", steps=[create(step)])
        own = select(world.store, generation=2, name="lin-own", steps=[create(step)], lineage=[])
        alone = select(world.store, generation=2, name="lin-none", steps=[create(step, {"against": "none"})])
        assert own.rows == alone.rows > full.rows, step
        assert own.config_hash != alone.config_hash != full.config_hash
    with_g1 = select(world.store, generation=2, name="lin-g1", steps=[create("exact_dedup_v1")], lineage=[0, 1])
    assert with_g1.rows == P * K - COPIES
    without_g1 = select(world.store, generation=2, name="lin-g0", steps=[create("exact_dedup_v1")], lineage=[0])
    assert without_g1.rows == P * K
