"""Score-based shift metrics (sql/shift/{perplexity,token_probs,pass_rate,...}.sql and the embedding
drift of curator/shift.py) against plain-Python / numpy references on small inputs.

Score tables are registered Arrow tables standing in for the store's `scores_<scorer>` views (same
names, same column types).
"""
from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from curator import embedding_drift, shift
from curator.errors import UsageError
from tests.test_shift_sql import connect as ngram_connect
from tests.test_shift_sql import samples_table

# --------------------------------------------------------------------------- fixtures

# (generation, origin) of samples s0..s{n-1}; text is irrelevant to the score metrics.
LAYOUT = [(0, "human")] * 24 + [(1, "synthetic")] * 14 + [(1, "human")] * 6 + [(2, "synthetic")] * 5
DOCS = [(g, o, f"doc {i} of generation {g}") for i, (g, o) in enumerate(LAYOUT)]
IDS = [f"s{i}" for i in range(len(DOCS))]
GEN = {sid: g for sid, (g, _) in zip(IDS, LAYOUT)}
ORIGIN = {sid: o for sid, (_, o) in zip(IDS, LAYOUT)}


def key_columns(rows: list[dict]) -> dict[str, list]:
    return {"sample_id": [r["sample_id"] for r in rows], "config_hash": [r["config_hash"] for r in rows],
            "run_id": [r["run_id"] for r in rows]}


def perplexity_rows(seed: int = 0) -> list[dict]:
    """Config 'cA' (runs r1, r2) over generations 0-2, plus noise that the queries must ignore: an
    older run's rows (superseded), another config, non-finite values."""
    rng = np.random.default_rng(seed)
    rows = []
    for sid in IDS:
        g = GEN[sid]
        ppl = float(rng.lognormal(3.0 - 0.4 * g, 0.5))
        # deliberately discrete values: ties inside and across sides
        ppl = round(ppl, 0) if sid in ("s3", "s4", "s30", "s31") else ppl
        probs = rng.beta(2 + 3 * g, 1.0, size=int(rng.integers(0, 9))).astype(np.float32).tolist()
        rows.append({"sample_id": sid, "config_hash": "cA", "run_id": "r2", "perplexity": ppl,
                     "token_probs": probs})
        rows.append({"sample_id": sid, "config_hash": "cA", "run_id": "r1", "perplexity": ppl * 10,
                     "token_probs": [0.5]})
        rows.append({"sample_id": sid, "config_hash": "cB", "run_id": "r0", "perplexity": 1.0, "token_probs": None})
    # a superseding row that is non-finite: the sample drops out
    rows.append({"sample_id": "s5", "config_hash": "cA", "run_id": "r3", "perplexity": float("nan"),
                 "token_probs": [0.7, float("nan"), None, 1.5, -0.1, 1.0, 0.99, 0.995]})
    rows.append({"sample_id": "s30", "config_hash": "cA", "run_id": "r3", "perplexity": float("inf"),
                 "token_probs": None})
    rows.append({"sample_id": "s31", "config_hash": "cA", "run_id": "r3", "perplexity": None,
                 "token_probs": []})
    # edge probabilities on bin boundaries (float32 0.7 is below 0.7 as a double)
    rows.append({"sample_id": "s25", "config_hash": "cA", "run_id": "r3", "perplexity": 7.0,
                 "token_probs": [0.0, 0.1, 0.3, 0.7, 0.9, 0.99, 1.0]})
    return rows


def perplexity_table(rows: list[dict]) -> pa.Table:
    n = len(rows)
    return pa.table({
        **key_columns(rows),
        "perplexity": pa.array([r["perplexity"] for r in rows], pa.float64()),
        "mean_logprob": pa.array([0.0] * n, pa.float64()),
        "n_tokens": pa.array([1] * n, pa.int64()),
        "token_probs": pa.array([r["token_probs"] for r in rows], pa.list_(pa.float32())),
    })


def verifier_rows() -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for sid in IDS:
        verdict = [True, False, None][int(rng.integers(0, 3))] if GEN[sid] else bool(rng.random() < 0.9)
        rows.append({"sample_id": sid, "config_hash": "v1", "run_id": "r1", "correct": verdict})
    rows.append({"sample_id": "s1", "config_hash": "v1", "run_id": "r0", "correct": None})  # superseded
    rows.append({"sample_id": "s2", "config_hash": "v0", "run_id": "r5", "correct": False})  # other config
    return rows


def verifier_table(rows: list[dict]) -> pa.Table:
    return pa.table({**key_columns(rows), "correct": pa.array([r["correct"] for r in rows], pa.bool_())})


EMB_DIM = 8


def embedding_rows(seed: int = 2) -> list[dict]:
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=EMB_DIM)
    rows = []
    for sid in IDS:
        v = mean * (1 + GEN[sid]) + rng.normal(size=EMB_DIM)
        rows.append({"sample_id": sid, "config_hash": "e1", "run_id": "r1",
                     "embedding": (v * rng.uniform(0.5, 3)).astype(np.float32).tolist()})
    rows[0]["embedding"] = [0.0] * EMB_DIM  # no direction: left out
    rows[1]["embedding"] = None
    rows.append({"sample_id": "s2", "config_hash": "e0", "run_id": "r9", "embedding": [1.0] * EMB_DIM})
    return rows


def embedding_table(rows: list[dict], fixed: bool = True) -> pa.Table:
    typ = pa.list_(pa.float32(), EMB_DIM) if fixed else pa.list_(pa.float32())
    return pa.table({**key_columns(rows), "embedding": pa.array([r["embedding"] for r in rows], typ)})


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = ngram_connect(DOCS)
    c.register("scores_perplexity_v1", perplexity_table(perplexity_rows()))
    c.register("scores_gsm8k_answer_v1", verifier_table(verifier_rows()))
    c.register("scores_embedding_v1", embedding_table(embedding_rows()))
    # a scorer with a column named correct that is not BOOLEAN is not a verifier
    c.register("scores_other_v1", pa.table({"sample_id": ["s0"], "config_hash": ["x"], "run_id": ["r1"],
                                            "correct": pa.array([1], pa.int64())}))
    return c


def latest(rows: list[dict], config: str) -> dict[str, dict]:
    """sample_id -> its row with the largest run_id under the config."""
    out: dict[str, dict] = {}
    for r in rows:
        if r["config_hash"] == config and (r["sample_id"] not in out or r["run_id"] > out[r["sample_id"]]["run_id"]):
            out[r["sample_id"]] = r
    return out


def side(sid: str, generation: int, origin: str) -> bool:
    return GEN[sid] == generation and (origin == "*" or ORIGIN[sid] == origin)


CASES = [
    dict(generation=1, baseline=0, origin="*"),
    dict(generation=1, baseline=0, origin="synthetic"),  # the baseline has no synthetic samples
    dict(generation=2, baseline=1, origin="*"),
    dict(generation=0, baseline=0, origin="*"),  # against itself
    dict(generation=7, baseline=0, origin="*"),  # absent generation
]


def approx(value):
    return None if value is None else pytest.approx(value, rel=1e-9, abs=1e-12)


def assert_close(got: dict, want: dict) -> None:
    assert set(got) == set(want), (sorted(got), sorted(want))
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == approx(value), (key, got[key], value)
        else:
            assert got[key] == value, (key, got[key], value)


# --------------------------------------------------------------------------- perplexity


def ref_perplexity(rows, generation, baseline, origin, config="cA"):
    chosen = latest(rows, config)

    def values(g):
        return [r["perplexity"] for sid, r in chosen.items()
                if side(sid, g, origin) and r["perplexity"] is not None and math.isfinite(r["perplexity"])]

    b, g = values(baseline), values(generation)
    if not b and not g:
        return []
    out = {"baseline_size": len(b), "size": len(g)}
    for q in (10, 25, 50, 75, 90):
        out[f"baseline_p{q}"] = float(np.quantile(b, q / 100)) if b else None
        out[f"p{q}"] = float(np.quantile(g, q / 100)) if g else None
    edge = out["baseline_p25"]
    out["baseline_low_band_share"] = sum(x <= edge for x in b) / len(b) if b else None
    out["low_band_share"] = sum(x <= edge for x in g) / len(g) if (b and g) else None
    if b and g:
        out["ks"] = max(abs(sum(y <= x for y in g) / len(g) - sum(y <= x for y in b) / len(b)) for x in b + g)
    else:
        out["ks"] = None
    return [out]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"g{c['generation']}-b{c['baseline']}-{c['origin']}")
def test_perplexity_matches_reference(con, case) -> None:
    got = shift.run_query(con, "shift/scores/perplexity", **case, config_hash="cA").to_pylist()
    want = ref_perplexity(perplexity_rows(), **case)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w)


def test_perplexity_low_band_share_of_the_baseline_is_a_quarter(con) -> None:
    row = shift.run_query(con, "shift/scores/perplexity", generation=1, baseline=0, config_hash="cA").to_pylist()[0]
    assert row["baseline_low_band_share"] == pytest.approx(0.25, abs=1 / row["baseline_size"])


def test_score_config_is_the_latest_run_that_scored_the_generation(con) -> None:
    # r3 rows exist for generations 0 and 1 only; generation 2's latest run is r2 (config cA)
    assert shift.score_config(con, "scores_perplexity_v1", 1) == "cA"
    assert shift.score_config(con, "scores_perplexity_v1", 2) == "cA"
    assert shift.score_config(con, "scores_perplexity_v1", 9) is None
    # the verifier's config v0 was written by the latest run (r5) and scored generation 0
    assert shift.score_config(con, "scores_gsm8k_answer_v1", 0) == "v0"
    assert shift.score_config(con, "scores_gsm8k_answer_v1", 1) == "v1"
    c = duckdb.connect()
    c.register("samples", samples_table([(0, "human", "a"), (1, "human", "b")]))
    c.register("scores_t_v1", pa.table({"sample_id": ["s0", "s0", "s1", "s1"], "config_hash": ["a", "b", "z", "c"],
                                        "run_id": ["r2", "r2", "r1", "r3"]}))
    assert shift.score_config(c, "scores_t_v1", 0) == "b"  # a tie on run_id: the larger config_hash
    assert shift.score_config(c, "scores_t_v1", 1) == "c"
    assert shift.score_config(c, "scores_t_v1", 1, origin="synthetic") is None


# --------------------------------------------------------------------------- token probabilities


def ref_token_probs(rows, generation, baseline, origin, config="cA"):
    chosen = latest(rows, config)
    edges = [float(f"{i / 10:.1f}") for i in range(11)]

    def in_measure(p, measure):
        if measure == "above_0_99":
            return p > 0.99
        i = int(measure[4:])
        return edges[i] <= p < edges[i + 1] or (i == 9 and p == 1.0)

    def docs(g):
        out = []
        for sid, r in chosen.items():
            if side(sid, g, origin) and r["token_probs"] is not None:
                ps = [float(np.float32(p)) for p in r["token_probs"] if p is not None]
                ps = [p for p in ps if 0 <= p <= 1]  # NaN fails both comparisons
                if ps:
                    out.append(ps)
        return out

    measures = [f"bin_{i}" for i in range(10)] + ["above_0_99"]
    d_b, d_g = docs(baseline), docs(generation)
    if not d_b and not d_g:
        return []
    result = []
    for m in measures:
        row = {"measure": m}
        for prefix, ds in (("baseline_", d_b), ("", d_g)):
            if not ds:
                row |= {f"{prefix}tokens": None, f"{prefix}share": None, f"{prefix}se": None}
                continue
            a = [sum(in_measure(p, m) for p in d) for d in ds]
            t = [len(d) for d in ds]
            share = sum(a) / sum(t)
            se = math.sqrt(sum((ai - share * ti) ** 2 for ai, ti in zip(a, t))) / sum(t)
            row |= {f"{prefix}tokens": sum(t), f"{prefix}share": share, f"{prefix}se": se}
        result.append(row)
    return result


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"g{c['generation']}-b{c['baseline']}-{c['origin']}")
def test_token_probs_match_reference(con, case) -> None:
    got = shift.run_query(con, "shift/scores/token_probs", **case, config_hash="cA").to_pylist()
    want = ref_token_probs(perplexity_rows(), **case)
    assert [r["measure"] for r in got] == [r["measure"] for r in want]
    for g, w in zip(got, want):
        for key in ("se", "baseline_se"):  # sqrt of a difference of sums: rounding near 0
            if w[key] is not None:
                assert g[key] == pytest.approx(w[key], rel=1e-6, abs=1e-9)
                g[key] = w[key]
        assert_close(g, w)
    if want:
        for prefix in ("baseline_", ""):
            shares = [r[f"{prefix}share"] for r in got[:10]]
            if shares[0] is not None:
                assert sum(shares) == pytest.approx(1.0)


def test_token_prob_edges_fall_in_the_defined_bins() -> None:
    c = duckdb.connect()
    c.register("samples", samples_table([(0, "human", "a")]))
    probs = [0.0, 0.1, 0.7, 0.9, 0.99, 0.995, 1.0]
    c.register("scores_perplexity_v1", perplexity_table([{"sample_id": "s0", "config_hash": "c", "run_id": "r",
                                                           "perplexity": 1.0, "token_probs": probs}]))
    rows = {r["measure"]: r["share"] for r in shift.run_query(c, "shift/scores/token_probs", generation=0, config_hash="c")
            .to_pylist()}
    # float32(0.1) > 0.1 (bin 1), float32(0.7) < 0.7 (bin 6), float32(0.9) < 0.9 (bin 8),
    # float32(0.99) > 0.99 (above), 1.0 in the closed last bin
    assert rows["bin_0"] == pytest.approx(1 / 7) and rows["bin_1"] == pytest.approx(1 / 7)
    assert rows["bin_6"] == pytest.approx(1 / 7) and rows["bin_7"] == 0
    assert rows["bin_8"] == pytest.approx(1 / 7) and rows["bin_9"] == pytest.approx(3 / 7)
    assert rows["above_0_99"] == pytest.approx(3 / 7)


def test_token_probs_config_skips_runs_without_token_probs() -> None:
    c = duckdb.connect()
    c.register("samples", samples_table([(0, "human", "a"), (1, "human", "b")]))
    rows = [{"sample_id": "s1", "config_hash": "with", "run_id": "r1", "perplexity": 2.0, "token_probs": [0.5]},
            {"sample_id": "s1", "config_hash": "without", "run_id": "r2", "perplexity": 2.0, "token_probs": None}]
    c.register("scores_perplexity_v1", perplexity_table(rows))
    assert shift.score_config(c, "scores_perplexity_v1", 1) == "without"
    got = shift.run_query(c, "shift/scores/token_probs_config", generation=1).to_pylist()
    assert got == [{"config_hash": "with", "run_id": "r1"}]
    assert shift.run_query(c, "shift/scores/token_probs_config", generation=0).num_rows == 0


# --------------------------------------------------------------------------- pass rate


def ref_pass_rate(rows, generation, baseline, origin, config="v1"):
    chosen = latest(rows, config)
    out = {}
    for prefix, g in (("baseline_", baseline), ("", generation)):
        verdicts = [r["correct"] for sid, r in chosen.items() if side(sid, g, origin)]
        judged = [v for v in verdicts if v is not None]
        out |= {f"{prefix}scored": len(verdicts), f"{prefix}judged": len(judged), f"{prefix}passed": sum(judged),
                f"{prefix}pass_rate": sum(judged) / len(judged) if judged else None}
    return [out] if out["scored"] + out["baseline_scored"] else []


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"g{c['generation']}-b{c['baseline']}-{c['origin']}")
def test_pass_rate_matches_reference(con, case) -> None:
    got = shift.run_query(con, "shift/scores/pass_rate", table="scores_gsm8k_answer_v1", **case,
                          config_hash="v1").to_pylist()
    want = ref_pass_rate(verifier_rows(), **case)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w)


def test_verifier_tables_are_found_by_their_boolean_correct_column(con) -> None:
    assert shift.run_query(con, "shift/scores/verifiers").to_pylist() == [
        {"table_name": "scores_gsm8k_answer_v1", "scorer": "gsm8k_answer_v1"}]


# --------------------------------------------------------------------------- embeddings


def test_pairwise_similarity_is_exact_against_a_double_loop() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=(23, 5)) * rng.uniform(0.1, 4, size=(23, 1)) + rng.normal(size=5)
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    loop = [float(u[i] @ u[j]) for i in range(len(u)) for j in range(len(u)) if i != j]
    sums = embedding_drift.EmbeddingSums()
    sums.add(v[:10])
    sums.add(v[10:])  # in two batches, as the stream reads them
    assert sums.n == 23
    assert sums.pairwise_similarity() == pytest.approx(sum(loop) / len(loop), rel=1e-12)
    one = embedding_drift.EmbeddingSums()
    one.add(v[:1])
    assert one.pairwise_similarity() is None and one.pairwise_similarity_se() is None


def pairwise_loop(u: np.ndarray) -> float:
    n = len(u)
    return sum(float(u[i] @ u[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))


def jackknife_loop(u: np.ndarray, groups: int) -> float:
    """Delete-a-group jackknife by brute force: vector i in group i mod groups."""
    labels = np.arange(len(u)) % groups
    s = [pairwise_loop(u[labels != k]) for k in range(groups) if (labels == k).any()]
    g = len(s)
    return math.sqrt((g - 1) / g * sum((x - sum(s) / g) ** 2 for x in s))


@pytest.mark.parametrize("n, groups", [(13, 32), (40, 8), (3, 32)])
def test_pairwise_similarity_se_is_the_group_jackknife(n: int, groups: int) -> None:
    rng = np.random.default_rng(n)
    v = rng.normal(size=(n, 4)) + 1.0
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    sums = embedding_drift.EmbeddingSums(groups=groups)
    for part in np.array_split(v, 3):  # batches that start mid-cycle of the groups
        sums.add(part)
    assert sums.pairwise_similarity_se() == pytest.approx(jackknife_loop(u, groups), rel=1e-9)


def ref_embedding(rows, generation, baseline, origin, config="e1"):
    chosen = latest(rows, config)

    def unit(g):
        vs = [np.asarray(r["embedding"], np.float32).astype(np.float64) for sid, r in chosen.items()
              if side(sid, g, origin) and r["embedding"] is not None]
        vs = [v / np.linalg.norm(v) for v in vs if np.linalg.norm(v) > 0]
        return np.array(vs).reshape(len(vs), EMB_DIM)

    ug, ub = unit(generation), unit(baseline)

    def pairwise(u):
        n = len(u)
        if n < 2:
            return None
        return sum(float(u[i] @ u[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))

    out = {"size": len(ug), "baseline_size": len(ub), "pairwise_similarity": pairwise(ug),
           "baseline_pairwise_similarity": pairwise(ub), "centroid_distance": None, "noise_floor": None,
           "pairwise_similarity_se": jackknife_loop(ug, 32) if len(ug) >= 3 else None,
           "baseline_pairwise_similarity_se": jackknife_loop(ub, 32) if len(ub) >= 3 else None}
    if len(ug) and len(ub):
        cg, cb = ug.mean(axis=0), ub.mean(axis=0)
        out["centroid_distance"] = 1 - float(cg @ cb) / (np.linalg.norm(cg) * np.linalg.norm(cb))
        s_b = out["baseline_pairwise_similarity"]
        if s_b is not None and s_b > 0:
            out["noise_floor"] = (1 - s_b) * (1 / len(ug) + 1 / len(ub)) / (2 * s_b)
    return out


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed_size_list", "list"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"g{c['generation']}-b{c['baseline']}-{c['origin']}")
def test_embedding_drift_matches_reference(case, fixed) -> None:
    c = duckdb.connect()
    c.register("samples", samples_table(DOCS))
    c.register("scores_embedding_v1", embedding_table(embedding_rows(), fixed=fixed))
    got = embedding_drift.embedding_drift(c, **case, config_hash="e1")
    want = ref_embedding(embedding_rows(), **case)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == (None if value is None else pytest.approx(value, rel=1e-7, abs=1e-12)), key


def test_embedding_noise_floor_predicts_the_distance_between_independent_samples() -> None:
    # Two samples of one source: the mean centroid distance is about the floor (it errs high a little).
    rng = np.random.default_rng(4)
    d, n, m = 16, 150, 90
    mu = rng.normal(size=d)
    ratios = []
    for _ in range(200):
        g, b = embedding_drift.EmbeddingSums(), embedding_drift.EmbeddingSums()
        g.add(mu + 1.5 * rng.normal(size=(n, d)))
        b.add(mu + 1.5 * rng.normal(size=(m, d)))
        out = embedding_drift.drift_from_sums(g, b)
        ratios.append(out["centroid_distance"] / out["noise_floor"])
    assert 0.75 < float(np.mean(ratios)) < 1.05


# --------------------------------------------------------------------------- report and alarm rules


def metrics(rows: list[shift.MetricRow]) -> dict[str, shift.MetricRow]:
    return {r.metric: r for r in rows}


SCORE_PREFIXES = ("ppl_", "token_prob_", "embedding_", "pass_rate_")


def test_report_leaves_score_metrics_out_without_score_tables() -> None:
    c = ngram_connect(DOCS)
    rows = shift.shift_report(c, 1)
    assert rows and not [r.metric for r in rows if r.metric.startswith(SCORE_PREFIXES)]
    assert "length_ks" in metrics(rows)


def test_report_has_score_metrics_when_scored(con) -> None:
    rep = metrics(shift.shift_report(con, 1))
    for name in ("ppl_p10", "ppl_p25", "ppl_p50", "ppl_p75", "ppl_p90", "ppl_low_band_share", "ppl_ks",
                 *(f"token_prob_bin_{i}" for i in range(10)), "token_prob_above_0_99",
                 "embedding_centroid_distance", "embedding_pairwise_similarity", "pass_rate_gsm8k_answer_v1"):
        assert name in rep, name
        assert rep[name].value is not None and rep[name].status in ("ok", "alarm"), rep[name]
    assert "pass_rate_other_v1" not in rep
    ppl = shift.run_query(con, "shift/scores/perplexity", generation=1, baseline=0, config_hash="cA").to_pylist()[0]
    assert rep["ppl_ks"].value == ppl["ks"] and rep["ppl_p50"].baseline == ppl["baseline_p50"]
    # the verifier's generation-1 config is v1, under which generation 0 is read too
    want = ref_pass_rate(verifier_rows(), 1, 0, "*")[0]
    assert rep["pass_rate_gsm8k_answer_v1"].value == pytest.approx(want["pass_rate"])
    assert rep["pass_rate_gsm8k_answer_v1"].baseline == pytest.approx(want["baseline_pass_rate"])


def test_report_marks_an_unscored_generation_na() -> None:
    c = ngram_connect(DOCS + [(3, "synthetic", "never scored")])
    c.register("scores_perplexity_v1", perplexity_table(perplexity_rows()))
    c.register("scores_gsm8k_answer_v1", verifier_table(verifier_rows()))
    c.register("scores_embedding_v1", embedding_table(embedding_rows()))
    rep = metrics(shift.shift_report(c, 3))
    for name in ("ppl_p50", "ppl_low_band_share", "ppl_ks", "embedding_centroid_distance",
                 "embedding_pairwise_similarity", "pass_rate_gsm8k_answer_v1"):
        assert rep[name].status == "n/a", rep[name]
    # the histogram appears only for a generation scored with token probabilities
    assert not [m for m in rep if m.startswith("token_prob_")]


def rows_of(raw: dict, thresholds: shift.Thresholds | None = None) -> dict[str, shift.MetricRow]:
    return metrics(shift.evaluate(raw, thresholds))


PPL = {"baseline_size": 400, "size": 100, "ks": 0.25, "baseline_low_band_share": 0.25, "low_band_share": 0.33,
       **{f"baseline_p{q}": float(q) for q in (10, 25, 50, 75, 90)}, **{f"p{q}": q / 2 for q in (10, 25, 50, 75, 90)}}


def test_perplexity_rules() -> None:
    rep = rows_of({"perplexity": [PPL]})
    noise = 3.09 * math.sqrt(0.25 * 0.75 * (1 / 100 + 1 / 400))
    band = rep["ppl_low_band_share"]
    assert band.threshold == pytest.approx(0.25 + noise) and band.status == "ok"  # 0.33 < 0.3996
    assert band.delta == pytest.approx(0.08)
    assert rows_of({"perplexity": [PPL | {"low_band_share": 0.41}]})["ppl_low_band_share"].status == "alarm"
    # large sides: the knob (0.05) is the bound
    big = PPL | {"size": 10**6, "baseline_size": 10**6, "low_band_share": 0.29}
    assert rows_of({"perplexity": [big]})["ppl_low_band_share"].threshold == pytest.approx(0.30)
    ks = rep["ppl_ks"]
    assert ks.threshold == pytest.approx(1.949 * math.sqrt(500 / 40000)) and ks.status == "alarm"
    assert rows_of({"perplexity": [big | {"ks": 0.04}]})["ppl_ks"].threshold == pytest.approx(0.05)
    assert rep["ppl_p50"].status == "ok" and rep["ppl_p50"].threshold is None and rep["ppl_p50"].delta == -25
    off = rows_of({"perplexity": [PPL]}, shift.Thresholds.from_mapping({"ppl_ks": None, "ppl_low_band_share": None}))
    assert off["ppl_ks"].status == "ok" and off["ppl_ks"].threshold is None
    empty = rows_of({"perplexity": []})
    assert all(empty[m].status == "n/a" for m in ("ppl_p50", "ppl_low_band_share", "ppl_ks"))


def token_rows(share: float, base: float, se: float, base_se: float) -> list[dict]:
    rows = [{"measure": f"bin_{i}", "baseline_tokens": 1000, "tokens": 900, "baseline_share": 0.1, "share": 0.1,
             "baseline_se": 0.01, "se": 0.01} for i in range(10)]
    return rows + [{"measure": "above_0_99", "baseline_tokens": 1000, "tokens": 900, "baseline_share": base,
                    "share": share, "baseline_se": base_se, "se": se}]


def test_token_prob_rules() -> None:
    rep = rows_of({"token_probs": token_rows(0.26, 0.2, 0.01, 0.01)})
    above = rep["token_prob_above_0_99"]
    assert above.threshold == pytest.approx(0.25) and above.status == "alarm"  # knob 0.05 > 3.09 * 0.0141
    noisy = rows_of({"token_probs": token_rows(0.26, 0.2, 0.03, 0.04)})["token_prob_above_0_99"]
    assert noisy.threshold == pytest.approx(0.2 + 3.09 * 0.05) and noisy.status == "ok"
    assert rep["token_prob_bin_3"].status == "ok" and rep["token_prob_bin_3"].threshold is None
    assert rows_of({"token_probs": token_rows(0.3, None, 0.01, None)})["token_prob_above_0_99"].status == "n/a"


def test_embedding_rules() -> None:
    th = shift.Thresholds()
    e = {"size": 100, "baseline_size": 100, "centroid_distance": 0.05, "noise_floor": 0.01,
         "pairwise_similarity": 0.4, "baseline_pairwise_similarity": 0.3, "pairwise_similarity_se": 0.003,
         "baseline_pairwise_similarity_se": 0.004}
    rep = rows_of({"embedding": e})
    dist = rep["embedding_centroid_distance"]
    assert dist.threshold == pytest.approx(th.embedding_floor_factor * 0.01 + th.embedding_centroid_distance)
    assert dist.status == "alarm" and dist.baseline == 0.0 and dist.delta == 0.05
    pair = rep["embedding_pairwise_similarity"]
    assert pair.threshold == pytest.approx(0.3 + th.embedding_pairwise_similarity) and pair.status == "alarm"
    noisy = rows_of({"embedding": e | {"pairwise_similarity_se": 0.03, "baseline_pairwise_similarity_se": 0.04}})
    assert noisy["embedding_pairwise_similarity"].threshold == pytest.approx(0.3 + 3.09 * 0.05)
    assert noisy["embedding_pairwise_similarity"].status == "ok"
    calm = rows_of({"embedding": e | {"centroid_distance": 0.0001, "pairwise_similarity": 0.301}})
    assert calm["embedding_centroid_distance"].status == "ok" and calm["embedding_pairwise_similarity"].status == "ok"
    no_floor = rows_of({"embedding": e | {"noise_floor": None}})["embedding_centroid_distance"]
    assert no_floor.status == "n/a" and no_floor.value == 0.05
    no_se = rows_of({"embedding": e | {"pairwise_similarity_se": None}})["embedding_pairwise_similarity"]
    assert no_se.status == "n/a" and no_se.delta == pytest.approx(0.1)
    off = rows_of({"embedding": e | {"noise_floor": None, "pairwise_similarity_se": None}},
                  shift.Thresholds.from_mapping({"embedding_centroid_distance": None,
                                                 "embedding_pairwise_similarity": None}))
    assert off["embedding_centroid_distance"].status == "ok" and off["embedding_pairwise_similarity"].status == "ok"
    assert all(r.status == "n/a" for r in rows_of({"embedding": {}}).values() if r.metric.startswith("embedding_"))


def test_pass_rate_rules() -> None:
    r = {"baseline_scored": 500, "scored": 400, "baseline_judged": 400, "judged": 400, "baseline_passed": 300,
         "passed": 240, "baseline_pass_rate": 0.75, "pass_rate": 0.6}
    raw = {"pass_rate": {"gsm8k_answer_v1": [r], "exact_match_v1": []}}
    rep = rows_of(raw)
    # informational by default: no threshold, never an alarm, shown without a baseline too
    assert rep["pass_rate_gsm8k_answer_v1"].status == "ok" and rep["pass_rate_gsm8k_answer_v1"].threshold is None
    assert rep["pass_rate_gsm8k_answer_v1"].delta == pytest.approx(-0.15)
    assert rep["pass_rate_exact_match_v1"].status == "n/a"
    no_base = rows_of({"pass_rate": {"x_v1": [r | {"baseline_pass_rate": None, "baseline_judged": 0}]}})["pass_rate_x_v1"]
    assert no_base.status == "ok" and no_base.baseline is None and no_base.delta is None
    on = rows_of(raw, shift.Thresholds.from_mapping({"pass_rate": 0.05}))["pass_rate_gsm8k_answer_v1"]
    pooled = 540 / 800
    noise = 3.09 * math.sqrt(pooled * (1 - pooled) * (2 / 400))
    assert on.threshold == pytest.approx(0.75 - max(0.05, noise)) and on.status == "alarm"
    one = rows_of(raw, shift.Thresholds.from_mapping({"pass_rate_gsm8k_answer_v1": 0.2}))
    assert one["pass_rate_gsm8k_answer_v1"].threshold == pytest.approx(0.55)
    assert one["pass_rate_gsm8k_answer_v1"].status == "ok"
    gone = rows_of({"pass_rate": {"x_v1": [r | {"baseline_pass_rate": None}]}},
                   shift.Thresholds.from_mapping({"pass_rate": 0.05}))
    assert gone["pass_rate_x_v1"].status == "n/a"


def test_thresholds_accept_the_score_knobs() -> None:
    th = shift.Thresholds.from_mapping({"token_prob_above_0_99": 0.1, "embedding_floor_factor": 3, "score_z": 2.0,
                                        "pass_rate_gsm8k_answer_v1": 0.02, "ppl_ks_c_alpha": 1.36})
    assert th.knob("token_prob_above_0_99") == 0.1 and th.knob("pass_rate_gsm8k_answer_v1") == 0.02
    assert th.knob("pass_rate_other_v1") is None and th.knob("embedding_pairwise_similarity") == 0.02
    assert th.embedding_floor_factor == 3.0 and th.score_z == 2.0 and th.ppl_ks_c_alpha == 1.36
    with pytest.raises(UsageError, match="unknown threshold 'ppl_foo'"):
        shift.Thresholds.from_mapping({"ppl_foo": 1.0})
    with pytest.raises(UsageError, match="must be a number"):
        shift.Thresholds.from_mapping({"score_z": None})
