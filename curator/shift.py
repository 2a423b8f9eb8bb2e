"""Shift and collapse detection over the named queries in `sql/shift/*.sql`.

`shift_report` measures one generation against a baseline generation (default 0, the human
reference) and returns one `MetricRow` per metric: the baseline's value, the generation's value,
their delta, the threshold the value is checked against, and a status ('ok', 'alarm', or 'n/a'
when a side has no data). The definitions live in the SQL headers; the alarm rules live here
(`evaluate` applies them to the queries' rows, so they are testable without a database).

Metrics (n = 1..4, plus any other n the statistics hold) and default rules

| metric | `baseline` column | alarm when (default knob) |
| --- | --- | --- |
| `distinct_{n}` | baseline's distinct-n | value < baseline * (1 - 0.20) (relative drop) |
| `entropy_{n}` | baseline's bucket entropy, bits | value < baseline - 0.25 bits |
| `effective_buckets_{n}` | baseline's 2^entropy | value < baseline * 2^-0.25 (drop of 15.9%, the same test as entropy) |
| `top_bucket_mass_{n}` | baseline's top-1% bucket mass | value > baseline * (1 + 0.25) (relative rise) |
| `js_divergence_{n}` | 0 | value > 1.25 * noise_floor + 0.01 |
| `tail_loss_{n}` | split expectation | value > split_tail_loss + 0.10 |
| `tail_loss_rare_{n}` | split expectation (rare) | value > split_tail_loss_rare + 0.10 |
| `length_ks` | 0 | D > max(0.05, c * sqrt((n + m) / (n * m))), c = 1.949 (alpha = 0.001): significant and non-trivial |
| `length_p50` | baseline's median length | never (informational) |
| `ppl_p10` .. `ppl_p90` (p10, p25, p50, p75, p90) | baseline's quantile | never (informational) |
| `ppl_low_band_share` | baseline's own share (~0.25) | value > baseline + max(0.05, z * sqrt(q(1 - q)(1/n + 1/m))), q = baseline, z = 3.09 |
| `ppl_ks` | 0 | D > max(0.05, c * sqrt((n + m) / (n * m))), c = 1.949 (as length_ks) |
| `token_prob_bin_{i}` (i = 0..9) | baseline's share | never (informational) |
| `token_prob_above_0_99` | baseline's share | value > baseline + max(0.05, z * sqrt(se_g^2 + se_b^2)) |
| `embedding_centroid_distance` | 0 | value > 2.0 * noise_floor + 0.002 (noise_floor: see `embedding_drift`) |
| `embedding_pairwise_similarity` | baseline's | value > baseline + max(0.02, z * sqrt(se_g^2 + se_b^2)) (jackknife se) |
| `pass_rate_<scorer>` | baseline's pass rate | never by default (knob None); knob k: value < baseline - max(k, z * sqrt(p(1 - p)(1/j_g + 1/j_b))) |

`threshold` is always the bound on `value` itself and `delta = value - baseline`. A knob set to
None disables its alarm (status 'ok', threshold None). `Thresholds.from_mapping` overrides knobs
by family (`{"js_divergence": 0.05}`) or for one metric (`{"distinct_3": 0.4}`); the number always
means that family's knob in the table (a relative drop for distinct, the excess over the scaled
noise floor for JS, the excess over the expectation for tail loss, the minimum D for length_ks),
never an absolute value of the metric. `js_floor_factor` (1.25) and `length_ks_c_alpha` (1.949)
are the two other knobs of the n-gram metrics; `ppl_ks_c_alpha` (1.949), `score_z` (3.09, the
one-sided normal quantile of alpha = 0.001, the alpha of the KS constant) and
`embedding_floor_factor` (2.0) those of the score-based ones. `pass_rate_<scorer>` may be set per
verifier (`pass_rate_gsm8k_answer_v1=0.05`).

Two rules differ from a plain fixed bound, because a fixed bound failed on real data:
- JS divergence between two finite samples is never 0. `noise_floor`
  (sql/shift/js_divergence.sql) is the JS two independent samples of these sizes from one
  source show by chance, phi * (K - 1)(1/T_g + 1/T_b) / (8 ln 2), with phi the baseline's
  document-clumping factor. Under half-vs-half it predicts the measured JS within ~15% at both
  sizes below; a fixed 0.05 bound would alarm on the small split (JS_2 = 0.14 from noise alone)
  and sleep on large corpora.
- Tail loss: the Poisson "random draw from the baseline's distribution" expectation
  (`expected_tail_loss`, as first specified) treats baseline counts as true rates and predicts
  a loss of 0.14 / 0.27 / 0.33 / 0.35 where an independent half of the same source loses
  0.41 / 0.70 / 0.84 / 0.91, so it cannot be the reference. The rule uses `split_tail_loss`
  instead: a binomial thinning of the baseline's documents into two parts with the
  generation/baseline size ratio, which estimates what an independent sample loses from the
  baseline alone (it errs high: its parts are smaller than the real corpora). Both columns are
  in the query's output; `baseline` in the report is the split expectation.

Calibration (GSM8K answers, word_v1 tokens as `[^\W_]+` runs of the lower-cased text, 10,000
buckets, sample rate 16, top_k 100; built with the plain-Python counter of
tests/test_shift_sql.py). H = a random half of the 7,473 training answers (226k tokens),
H' = the other half; "injected" = 80% of the documents get 2-3 stock phrases ("Let's think step
by step.", "The answer is clear.", "Therefore, the final answer is", ...); "bigram" = a word
bigram model fitted on H, sampled at temperature T with H'-matched document lengths. Values for
n = 1 / 2 / 3 / 4, seed 0, **kA** = k of the four in alarm:

| metric | H (baseline) | H' vs H | H' injected | H injected | bigram T=0.5 | bigram T=1.0 |
| --- | --- | --- | --- | --- | --- | --- |
| distinct | 0.034 / 0.339 / 0.67 / 0.837 | 0.033 / 0.336 / 0.668 / 0.837 | 0.028 / 0.289 / 0.584 / 0.744 | 0.029 / 0.294 / 0.587 / 0.745 | 0.007 / 0.039 / 0.106 / 0.214 **4A** | 0.029 / 0.247 / 0.736 / 0.944 **1A** |
| entropy | 8.86 / 12.5 / 13.1 / 13.2 | 8.81 / 12.4 / 13.1 / 13.2 | 8.57 / 12.0 / 12.6 / 12.8 **4A** | 8.62 / 12.0 / 12.6 / 12.8 **3A** | 5.35 / 7.36 / 9.00 / 10.2 **4A** | 8.87 / 12.4 / 13.1 / 13.2 |
| effective_buckets | 464 / 5630 / 8567 / 9381 | 448 / 5584 / 8604 / 9390 | 381 / 3993 / 6307 / 7364 **4A** | 393 / 4044 / 6311 / 7382 **3A** | 40.7 / 164 / 514 / 1153 **4A** | 468 / 5477 / 8984 / 9579 |
| top_bucket_mass | 0.612 / 0.148 / 0.059 / 0.034 | 0.617 / 0.148 / 0.058 / 0.033 | 0.66 / 0.24 / 0.15 / 0.112 **3A** | 0.654 / 0.24 / 0.15 / 0.111 **3A** | 0.948 / 0.758 / 0.575 / 0.462 **4A** | 0.607 / 0.148 / 0.05 / 0.03 |
| js_divergence (floor in H' vs H: 0.030 / 0.023 / 0.019 / 0.018) | 0 | 0.03 / 0.024 / 0.02 / 0.018 | 0.073 / 0.085 / 0.072 / 0.058 **4A** | 0.045 / 0.063 / 0.054 / 0.043 **4A** | 0.262 / 0.431 / 0.448 / 0.356 **4A** | 0.01 / 0.012 / 0.037 / 0.03 **1A** |
| tail_loss | split: 0.46 / 0.722 / 0.86 / 0.928 | 0.411 / 0.704 / 0.841 / 0.914 | 0.411 / 0.706 / 0.841 / 0.915 | 0 / 0.021 / 0.032 / 0.045 | 0.81 / 0.886 / 0.936 / 0.972 **2A** | 0.167 / 0.278 / 0.786 / 0.964 |
| tail_loss_rare | split: 0.851 / 0.862 / 0.919 / 0.958 | 0.635 / 0.836 / 0.906 / 0.949 | 0.635 / 0.837 / 0.906 / 0.949 | 0 / 0.031 / 0.038 / 0.048 | 0.985 / 0.976 / 0.97 / 0.983 **2A** | 0.423 / 0.379 / 0.836 / 0.972 |
| length_ks | 0 | 0.016 | 0.201 **A** | 0.203 **A** | 0.208 **A** | 0.094 **A** |
| length_p50 (chars) | 258 | 256 | 316 | 322 | 199 | 231 |

Alarms in all: 0, 16, 14, 25 and 3 of 30. Over 9 half-vs-half splits (3 of the training set,
6 of the 1,319-answer test set at ~40k tokens a half) no metric alarmed; the largest share of
its allowed band, (value - baseline) / (threshold - baseline), that each family used was:
distinct 0.34, entropy and effective_buckets 0.38, top_bucket_mass 0.41, js_divergence 0.89
(of which about 0.75 is the noise floor itself), tail_loss below 0 (the split expectation errs
high), length_ks 0.59. On every split both injected generations alarm on entropy, effective
buckets and top-1% mass for n >= 2 and on length, and "H' injected" on JS for every n.
distinct-n falls 9-20% there (one split alarmed on distinct_1: the phrases add n-grams as well
as repeat them); nothing is lost, so tail loss stays quiet. On the small test split,
"H injected" (the same answers plus phrases, so no sampling noise between the two sides) stays
under the JS floor: the floor assumes independent samples.

Score-based metrics (definitions: the headers of sql/shift/scores/*.sql, and `embedding_drift`'s
docstring for the embedding figures, computed in numpy). Each family appears only when its score
table exists (`scores_perplexity_v1`, `scores_embedding_v1`, and every `scores_*` table with a
BOOLEAN column `correct` for pass rates), so a store that was never scored reports exactly the
n-gram and length metrics. A table that exists but never scored the measured generation gives 'n/a'
rows; the token-probability histogram appears only for a generation scored with token probabilities
(perplexity_v1 with keep_token_probs). A score table can hold several configs (perplexity under two
reference models): both sides are read under the config of the latest run (largest `run_id`) that
scored the measured generation (sql/shift/scores/score_config.sql), and a sample scored twice under it
counts once, with its latest row.
- Perplexity: KS and the low-band share depend only on the ranks of the pooled perplexities, so
  when nothing shifted their distribution does not depend on the reference model at all and the
  size-aware bounds can be checked on any continuous data: on uniform samples of 10 to 5,000 a
  side the low-band bound without its knob is crossed in 0.03-0.4% of no-shift draws (the KS
  constant is the asymptotic alpha = 0.001 one). The knobs (0.05) are the smallest effects worth
  an alarm; no reference LM was at hand to tabulate real perplexities here. A low-band share of 0.30 means 20% more of the
  generation's documents sit in the baseline's lowest perplexity quartile than chance puts there.
- Token probabilities: the > 0.99 share is a ratio over tokens clustered in documents, so its
  standard error (`se` in sql/shift/scores/token_probs.sql) is the cluster-robust one; the 0.05
  knob is the smallest rise worth an alarm (synthetic text is over-confident: ToEdit).
- Pass rate is informational by default: against the human reference (generation 0, whose gold
  answers pass nearly always) every synthetic generation would alarm, and a drop between synthetic
  generations is what matters; set the knob (and `--baseline` an earlier synthetic generation) to
  alarm on a drop beyond the two-proportion noise (pooled rate p, judged counts j).
- Embeddings: the centroid distance is read against its noise floor (like JS), the pairwise
  similarity against its jackknife standard error, so both are size-aware. Calibrated on
  all-MiniLM-L6-v2 embeddings (normalised) of GSM8K answers, H / H' = random halves, "injected"
  as in the n-gram calibration above, "topic" = the 40% of H' closest to one of its documents,
  "dup" = a tenth of H' repeated 10 times; seed 0, train halves (3,736 answers) / test halves (659):

  | metric | H' vs H | H' injected | H injected | topic | dup |
  | --- | --- | --- | --- | --- | --- |
  | centroid_distance (floor 0.00064 / 0.0036) | 0.00067 / 0.0039 | 0.0119 / 0.0160 **A/A** | 0.0121 / 0.0118 **A/A** | 0.0146 / 0.0233 **A/A** | 0.0032 / 0.0184 -/**A** |
  | pairwise_similarity (H: 0.294 / 0.299) | 0.296 / 0.294 | 0.326 / 0.324 **A/A** | 0.324 / 0.329 **A/A** | 0.342 / 0.332 **A/A** | 0.295 / 0.295 |

  The floor predicts the half-vs-half distance within ~15% on average from 20 to 3,700 documents
  a side; over 100 half-vs-half splits at each of 10, 20, 50, 200 and 1,000 documents a side
  neither alarmed, using at most 0.79 (distance) and 0.77 (similarity) of its band. Repeating
  documents does not move the pairwise similarity (it measures spread, not duplication: leave
  that to dedup); on the small split it moves the centroid through the smaller effective sample.

Caveats. distinct-n falls and entropy rises with corpus size, so compare generations of similar
size (the JS floor and the tail-loss expectation are size-aware; the others are not).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from curator.embedding_drift import embedding_drift
from curator.errors import UsageError
from curator.store import catalog

# --------------------------------------------------------------------------- queries

def load_query(name: str) -> str:
    """The text of the named query `sql/{name}.sql` (e.g. 'shift/distinct_n')."""
    return catalog.get(name).sql


def run_query(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pa.Table:
    """Run a named query with the parameters its header declares (extra keyword arguments are ignored)."""
    query = catalog.get(name)
    declared = {p.name for p in query.params}
    return con.sql(query.sql, params=query.bind({k: v for k, v in params.items() if k in declared})).to_arrow_table()


# --------------------------------------------------------------------------- thresholds

NGRAM_FAMILIES = (
    "distinct",
    "entropy",
    "effective_buckets",
    "top_bucket_mass",
    "js_divergence",
    "tail_loss",
    "tail_loss_rare",
)
# Families of the metrics over score tables (reported only when the tables exist).
SCORE_FAMILIES = (
    "ppl_low_band_share",
    "ppl_ks",
    "token_prob_above_0_99",
    "embedding_centroid_distance",
    "embedding_pairwise_similarity",
    "pass_rate",
)
FAMILIES = (*NGRAM_FAMILIES, "length_ks", *SCORE_FAMILIES)
_EXTRA_KNOBS = ("length_ks_c_alpha", "js_floor_factor", "ppl_ks_c_alpha", "score_z", "embedding_floor_factor")


@dataclass(frozen=True)
class Thresholds:
    """The knob of each metric family (see the module docstring), plus per-metric overrides."""

    distinct: float | None = 0.20  # largest allowed relative drop
    entropy: float | None = 0.25  # largest allowed drop, bits
    effective_buckets: float | None = 1 - 2**-0.25  # relative drop; = the entropy knob (2^-0.25 = 0.84)
    top_bucket_mass: float | None = 0.25  # largest allowed relative rise
    js_divergence: float | None = 0.01  # largest allowed JS above js_floor_factor * noise floor
    tail_loss: float | None = 0.10  # largest allowed excess over the split expectation
    tail_loss_rare: float | None = 0.10  # the same for the baseline's rare (count 1) n-grams
    length_ks: float | None = 0.05  # smallest KS statistic that counts as a real shift
    length_ks_c_alpha: float = 1.949  # KS critical constant c(alpha), alpha = 0.001
    js_floor_factor: float = 1.25  # the JS bound is js_floor_factor * noise_floor + js_divergence
    ppl_low_band_share: float | None = 0.05  # smallest rise of the low-band share that counts
    ppl_ks: float | None = 0.05  # smallest perplexity KS statistic that counts as a real shift
    ppl_ks_c_alpha: float = 1.949  # KS critical constant for ppl_ks, alpha = 0.001
    token_prob_above_0_99: float | None = 0.05  # smallest rise of the share of tokens with p > 0.99
    embedding_centroid_distance: float | None = 0.002  # allowed distance above embedding_floor_factor * floor
    embedding_floor_factor: float = 2.0  # the centroid bound is factor * noise_floor + knob
    embedding_pairwise_similarity: float | None = 0.02  # smallest rise of the mean pairwise similarity that counts
    pass_rate: float | None = None  # largest allowed drop of a verifier pass rate; None: informational
    score_z: float = 3.09  # one-sided normal quantile (alpha = 0.001) of the proportion tests
    per_metric: tuple[tuple[str, float | None], ...] = ()  # e.g. (("distinct_3", 0.4),)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, float | None]) -> Thresholds:
        """Defaults overridden by family name or by metric name (`js_divergence`, `distinct_3`,
        `pass_rate_gsm8k_answer_v1`)."""
        families: dict[str, Any] = {}
        per_metric: list[tuple[str, float | None]] = []
        for key, value in mapping.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise UsageError(f"threshold '{key}' must be a number or None, got {value!r}")
            if value is not None and (math.isnan(value) or value < 0):
                raise UsageError(f"threshold '{key}' must be >= 0, got {value!r}")
            if key in FAMILIES or key in _EXTRA_KNOBS:
                if key in _EXTRA_KNOBS and value is None:
                    raise UsageError(f"threshold '{key}' must be a number, got None")
                families[key] = None if value is None else float(value)
            elif _split_metric(key)[0] in NGRAM_FAMILIES or (key.startswith("pass_rate_") and len(key) > 10):
                per_metric.append((key, None if value is None else float(value)))
            else:
                choices = ", ".join((*FAMILIES, *_EXTRA_KNOBS, *(f"{f}_<n>" for f in NGRAM_FAMILIES),
                                     "pass_rate_<scorer>"))
                raise UsageError(f"unknown threshold '{key}'; expected one of: {choices}")
        return cls(**families, per_metric=tuple(per_metric))

    def knob(self, metric: str) -> float | None:
        """The knob that applies to a metric name (a per-metric override wins over the family)."""
        for name, value in reversed(self.per_metric):
            if name == metric:
                return value
        return getattr(self, _family(metric))


def _split_metric(metric: str) -> tuple[str, int | None]:
    head, _, tail = metric.rpartition("_")
    if head and tail.isdigit():
        return head, int(tail)
    return metric, None


def _family(metric: str) -> str:
    if metric in FAMILIES:  # token_prob_above_0_99 ends in digits that are not an n
        return metric
    # `pass_rate_<scorer>` ends in the scorer's version (`_v1`), not an n.
    return "pass_rate" if metric.startswith("pass_rate_") else _split_metric(metric)[0]


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class MetricRow:
    metric: str
    baseline: float | None
    value: float | None
    delta: float | None
    threshold: float | None
    status: str  # 'ok' | 'alarm' | 'n/a'


def _row(metric: str, baseline: float | None, value: float | None, threshold: float | None,
         alarm_above: bool, *, needs_baseline: bool = True) -> MetricRow:
    if value is None or (needs_baseline and baseline is None):
        return MetricRow(metric, baseline, value, None, None, "n/a")
    delta = None if baseline is None else value - baseline
    if threshold is None:
        return MetricRow(metric, baseline, value, delta, None, "ok")
    alarm = value > threshold if alarm_above else value < threshold
    return MetricRow(metric, baseline, value, delta, threshold, "alarm" if alarm else "ok")


def _relative(metric: str, baseline: float | None, value: float | None, knob: float | None, *, rise: bool) -> MetricRow:
    threshold = None
    if knob is not None and baseline is not None:
        threshold = baseline * (1 + knob) if rise else baseline * (1 - knob)
    return _row(metric, baseline, value, threshold, alarm_above=rise)


def _by_n(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["n"]: row for row in rows}


SHIFT_QUERIES = ("distinct_n", "concentration", "js_divergence", "tail_loss", "length")
PERPLEXITY_TABLE = "scores_perplexity_v1"
EMBEDDING_TABLE = "scores_embedding_v1"


def shift_report(
    con: duckdb.DuckDBPyConnection,
    generation: int,
    baseline: int = 0,
    *,
    origin: str = "*",
    tokenizer: str = "word_v1",
    thresholds: Thresholds | None = None,
) -> list[MetricRow]:
    """Every shift metric of `generation` against `baseline`, in a fixed order (see module doc).
    The score-based metrics are included only when their score tables exist."""
    params = {"generation": generation, "baseline": baseline, "origin": origin, "tokenizer": tokenizer}
    raw: dict[str, Any] = {q: run_query(con, f"shift/{q}", **params).to_pylist() for q in SHIFT_QUERIES}
    raw.update(score_inputs(con, generation, baseline, origin=origin))
    return evaluate(raw, thresholds)


def _has_tables(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> bool:
    return not catalog.get(name).missing_score_tables(con, params)


def score_config(con: duckdb.DuckDBPyConnection, table: str, generation: int, *, origin: str = "*") -> str | None:
    """The config_hash under which to compare generations on a score table: that of the latest run
    that scored the measured generation (sql/shift/scores/score_config.sql); None when none did."""
    rows = run_query(con, "shift/scores/score_config", table=table, generation=generation, origin=origin).to_pylist()
    return rows[0]["config_hash"] if rows else None


def score_inputs(con: duckdb.DuckDBPyConnection, generation: int, baseline: int = 0, *,
                 origin: str = "*") -> dict[str, Any]:
    """The raw inputs of the score-based metrics, keyed as `evaluate` reads them. A key is absent
    when its score table does not exist (the metrics are then left out of the report); it holds
    empty rows when the table exists but never scored the measured generation (the metrics are then
    'n/a'). The token-probability histogram is present only when the generation was scored with
    token probabilities (perplexity_v1 with keep_token_probs)."""
    raw: dict[str, Any] = {}
    base = {"generation": generation, "baseline": baseline, "origin": origin}
    if _has_tables(con, "shift/scores/perplexity"):
        config = score_config(con, PERPLEXITY_TABLE, generation, origin=origin)
        raw["perplexity"] = [] if config is None else run_query(
            con, "shift/scores/perplexity", **base, config_hash=config).to_pylist()
    if _has_tables(con, "shift/scores/token_probs"):
        found = run_query(con, "shift/scores/token_probs_config", generation=generation, origin=origin).to_pylist()
        if found:
            raw["token_probs"] = run_query(con, "shift/scores/token_probs", **base,
                                           config_hash=found[0]["config_hash"]).to_pylist()
    if _has_tables(con, "shift/scores/embeddings"):
        config = score_config(con, EMBEDDING_TABLE, generation, origin=origin)
        raw["embedding"] = {} if config is None else embedding_drift(con, generation, baseline, origin=origin,
                                                                     config_hash=config)
    verifiers = run_query(con, "shift/scores/verifiers").to_pylist()
    if verifiers:
        raw["pass_rate"] = {}
        for v in verifiers:
            if not _has_tables(con, "shift/scores/pass_rate", table=v["table_name"]):
                continue
            config = score_config(con, v["table_name"], generation, origin=origin)
            raw["pass_rate"][v["scorer"]] = [] if config is None else run_query(
                con, "shift/scores/pass_rate", table=v["table_name"], **base, config_hash=config).to_pylist()
    return raw


def evaluate(raw: Mapping[str, list[dict[str, Any]]], thresholds: Thresholds | None = None) -> list[MetricRow]:
    """The alarm rules applied to the rows of the shift queries (keyed by query name without 'shift/')."""
    th = thresholds or Thresholds()
    distinct = _by_n(raw.get("distinct_n", []))
    conc = _by_n(raw.get("concentration", []))
    js = _by_n(raw.get("js_divergence", []))
    tail = _by_n(raw.get("tail_loss", []))
    length_rows = raw.get("length", [])
    length = length_rows[0] if length_rows else {}

    ns = sorted({1, 2, 3, 4} | set(distinct) | set(conc) | set(js) | set(tail))
    rows: list[MetricRow] = []
    for n in ns:
        d = distinct.get(n, {})
        rows.append(_relative(f"distinct_{n}", d.get("baseline_value"), d.get("value"), th.knob(f"distinct_{n}"), rise=False))
    for n in ns:
        c = conc.get(n, {})
        base, value, knob = c.get("baseline_entropy"), c.get("entropy"), th.knob(f"entropy_{n}")
        threshold = None if knob is None or base is None else base - knob
        rows.append(_row(f"entropy_{n}", base, value, threshold, alarm_above=False))
    for n in ns:
        c = conc.get(n, {})
        rows.append(_relative(f"effective_buckets_{n}", c.get("baseline_effective_buckets"),
                              c.get("effective_buckets"), th.knob(f"effective_buckets_{n}"), rise=False))
    for n in ns:
        c = conc.get(n, {})
        rows.append(_relative(f"top_bucket_mass_{n}", c.get("baseline_top_bucket_mass"),
                              c.get("top_bucket_mass"), th.knob(f"top_bucket_mass_{n}"), rise=True))
    for n in ns:
        j = js.get(n, {})
        value, knob = j.get("js_divergence"), th.knob(f"js_divergence_{n}")
        floor = j.get("noise_floor") or 0.0
        threshold = None if knob is None else th.js_floor_factor * floor + knob
        rows.append(_row(f"js_divergence_{n}", 0.0, value, threshold, alarm_above=True))
    for family, value_key, expected_key in (
        ("tail_loss", "tail_loss", "split_tail_loss"),
        ("tail_loss_rare", "tail_loss_rare", "split_tail_loss_rare"),
    ):
        for n in ns:
            t = tail.get(n, {})
            expected, knob = t.get(expected_key), th.knob(f"{family}_{n}")
            threshold = None if knob is None or expected is None else expected + knob
            rows.append(_row(f"{family}_{n}", expected, t.get(value_key), threshold, alarm_above=True))

    size_g, size_b = length.get("size") or 0, length.get("baseline_size") or 0
    knob = th.knob("length_ks")
    threshold = None
    if knob is not None and size_g and size_b:
        threshold = max(knob, th.length_ks_c_alpha * math.sqrt((size_g + size_b) / (size_g * size_b)))
    rows.append(_row("length_ks", 0.0, length.get("ks"), threshold, alarm_above=True))
    rows.append(_row("length_p50", length.get("baseline_p50"), length.get("p50"), None, alarm_above=True))
    if "perplexity" in raw:
        rows.extend(_perplexity_rows(raw["perplexity"], th))
    if "token_probs" in raw:
        rows.extend(_token_prob_rows(raw["token_probs"], th))
    if "embedding" in raw:
        rows.extend(_embedding_rows(raw["embedding"], th))
    for scorer, pass_rows in sorted(raw.get("pass_rate", {}).items()):
        rows.append(_pass_rate_row(scorer, pass_rows, th))
    return rows


def _first(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return rows[0] if rows else {}


def _perplexity_rows(raw: list[dict[str, Any]], th: Thresholds) -> list[MetricRow]:
    p = _first(raw)
    rows = [_row(f"ppl_p{q}", p.get(f"baseline_p{q}"), p.get(f"p{q}"), None, alarm_above=True)
            for q in (10, 25, 50, 75, 90)]
    n_g, n_b = p.get("size") or 0, p.get("baseline_size") or 0
    base, knob = p.get("baseline_low_band_share"), th.knob("ppl_low_band_share")
    threshold = None
    if knob is not None and base is not None and n_g and n_b:
        # Under no shift the share is a proportion with variance ~ q(1-q)(1/n_g + 1/n_b) (the
        # second term: the baseline's p25 is itself estimated), so small sides get a wider band.
        noise = th.score_z * math.sqrt(base * (1 - base) * (1 / n_g + 1 / n_b))
        threshold = base + max(knob, noise)
    rows.append(_row("ppl_low_band_share", base, p.get("low_band_share"), threshold, alarm_above=True))
    knob = th.knob("ppl_ks")
    threshold = None
    if knob is not None and n_g and n_b:
        threshold = max(knob, th.ppl_ks_c_alpha * math.sqrt((n_g + n_b) / (n_g * n_b)))
    rows.append(_row("ppl_ks", 0.0, p.get("ks"), threshold, alarm_above=True))
    return rows


def _token_prob_rows(raw: list[dict[str, Any]], th: Thresholds) -> list[MetricRow]:
    by = {r["measure"]: r for r in raw}
    rows = []
    for i in range(10):
        r = by.get(f"bin_{i}", {})
        rows.append(_row(f"token_prob_bin_{i}", r.get("baseline_share"), r.get("share"), None, alarm_above=True))
    r = by.get("above_0_99", {})
    base, knob = r.get("baseline_share"), th.knob("token_prob_above_0_99")
    se_g, se_b = r.get("se"), r.get("baseline_se")
    threshold = None
    if knob is not None and base is not None and se_g is not None and se_b is not None:
        threshold = base + max(knob, th.score_z * math.sqrt(se_g**2 + se_b**2))
    rows.append(_row("token_prob_above_0_99", base, r.get("share"), threshold, alarm_above=True))
    return rows


def _embedding_rows(e: Mapping[str, Any], th: Thresholds) -> list[MetricRow]:
    value, floor = e.get("centroid_distance"), e.get("noise_floor")
    knob = th.knob("embedding_centroid_distance")
    if value is not None and knob is not None and floor is None:
        # No noise floor (a baseline of fewer than 2 vectors): the distance cannot be judged.
        rows = [MetricRow("embedding_centroid_distance", 0.0, value, value, None, "n/a")]
    else:
        threshold = None if knob is None or floor is None else th.embedding_floor_factor * floor + knob
        rows = [_row("embedding_centroid_distance", 0.0, value, threshold, alarm_above=True)]
    base, value = e.get("baseline_pairwise_similarity"), e.get("pairwise_similarity")
    knob = th.knob("embedding_pairwise_similarity")
    se_g, se_b = e.get("pairwise_similarity_se"), e.get("baseline_pairwise_similarity_se")
    if value is not None and base is not None and knob is not None and (se_g is None or se_b is None):
        # Fewer than 3 vectors on a side: no standard error, so no fair bound.
        rows.append(MetricRow("embedding_pairwise_similarity", base, value, value - base, None, "n/a"))
    else:
        threshold = None
        if knob is not None and base is not None and se_g is not None and se_b is not None:
            threshold = base + max(knob, th.score_z * math.sqrt(se_g**2 + se_b**2))
        rows.append(_row("embedding_pairwise_similarity", base, value, threshold, alarm_above=True))
    return rows


def _pass_rate_row(scorer: str, raw: list[dict[str, Any]], th: Thresholds) -> MetricRow:
    metric = f"pass_rate_{scorer}"
    r = _first(raw)
    value, base, knob = r.get("pass_rate"), r.get("baseline_pass_rate"), th.knob(metric)
    if knob is None:
        # Informational: shown even when the baseline was never verified.
        return _row(metric, base, value, None, alarm_above=False, needs_baseline=False)
    threshold = None
    if value is not None and base is not None:
        j_g, j_b = r["judged"], r["baseline_judged"]
        pooled = (r["passed"] + r["baseline_passed"]) / (j_g + j_b)
        # A two-proportion test under no change (pooled rate), so a small audit does not alarm on noise.
        threshold = base - max(knob, th.score_z * math.sqrt(pooled * (1 - pooled) * (1 / j_g + 1 / j_b)))
    return _row(metric, base, value, threshold, alarm_above=False)


def has_alarm(rows: list[MetricRow]) -> bool:
    return any(r.status == "alarm" for r in rows)


def format_report(rows: list[MetricRow]) -> str:
    """A plain-text table: metric, baseline, value, delta, threshold, status."""

    def num(x: float | None) -> str:
        if x is None:
            return "-"
        return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.0f}"

    header = ("metric", "baseline", "value", "delta", "threshold", "status")
    body = [(r.metric, num(r.baseline), num(r.value), num(r.delta), num(r.threshold), r.status) for r in rows]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in (header, *body)
    )


def overrepresented(
    con: duckdb.DuckDBPyConnection,
    generation: int,
    baseline: int = 0,
    *,
    origin: str = "*",
    tokenizer: str = "word_v1",
    n: int = 2,
    limit: int = 20,
) -> pa.Table:
    """The generation's top n-grams by frequency ratio against the baseline (sql/shift/overrepresented.sql)."""
    return run_query(con, "shift/overrepresented", generation=generation, baseline=baseline, origin=origin,
                     tokenizer=tokenizer, n=n, limit_rows=limit)


def top_ngrams(
    con: duckdb.DuckDBPyConnection,
    generation: int,
    *,
    origin: str = "*",
    tokenizer: str = "word_v1",
    n: int = 2,
    limit: int = 20,
) -> pa.Table:
    """A generation's top n-grams with their frequency and document share (sql/shift/top_ngrams.sql)."""
    return run_query(con, "shift/top_ngrams", generation=generation, origin=origin, tokenizer=tokenizer,
                     n=n, limit_rows=limit)
