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

`threshold` is always the bound on `value` itself and `delta = value - baseline`. A knob set to
None disables its alarm (status 'ok', threshold None). `Thresholds.from_mapping` overrides knobs
by family (`{"js_divergence": 0.05}`) or for one metric (`{"distinct_3": 0.4}`); the number always
means that family's knob in the table (a relative drop for distinct, the excess over the scaled
noise floor for JS, the excess over the expectation for tail loss, the minimum D for length_ks),
never an absolute value of the metric. `js_floor_factor` (1.25) and `length_ks_c_alpha` (1.949)
are the two other knobs.

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
FAMILIES = (*NGRAM_FAMILIES, "length_ks")
_EXTRA_KNOBS = ("length_ks_c_alpha", "js_floor_factor")


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
    per_metric: tuple[tuple[str, float | None], ...] = ()  # e.g. (("distinct_3", 0.4),)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, float | None]) -> Thresholds:
        """Defaults overridden by family name or by metric name (`js_divergence`, `distinct_3`)."""
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
            elif _split_metric(key)[0] in NGRAM_FAMILIES:
                per_metric.append((key, None if value is None else float(value)))
            else:
                choices = ", ".join((*FAMILIES, *_EXTRA_KNOBS, *(f"{f}_<n>" for f in NGRAM_FAMILIES)))
                raise UsageError(f"unknown threshold '{key}'; expected one of: {choices}")
        return cls(**families, per_metric=tuple(per_metric))

    def knob(self, metric: str) -> float | None:
        """The knob that applies to a metric name (a per-metric override wins over the family)."""
        for name, value in reversed(self.per_metric):
            if name == metric:
                return value
        family = _split_metric(metric)[0]
        return getattr(self, family)


def _split_metric(metric: str) -> tuple[str, int | None]:
    head, _, tail = metric.rpartition("_")
    if head and tail.isdigit():
        return head, int(tail)
    return metric, None


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


def shift_report(
    con: duckdb.DuckDBPyConnection,
    generation: int,
    baseline: int = 0,
    *,
    origin: str = "*",
    tokenizer: str = "word_v1",
    thresholds: Thresholds | None = None,
) -> list[MetricRow]:
    """Every shift metric of `generation` against `baseline`, in a fixed order (see module doc)."""
    params = {"generation": generation, "baseline": baseline, "origin": origin, "tokenizer": tokenizer}
    raw = {q: run_query(con, f"shift/{q}", **params).to_pylist() for q in SHIFT_QUERIES}
    return evaluate(raw, thresholds)


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
    return rows


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
