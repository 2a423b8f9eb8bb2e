"""Shift metrics (sql/shift/*.sql, curator/shift.py) checked against plain-Python references.

The n-gram tables are built here by a small plain-Python counter (`ngram_tables`), which is
also what calibrated the default thresholds on GSM8K (see the docstring of curator.shift).
"""
from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from curator import shift
from curator.errors import UsageError
from curator.resources import sql_dir

DATA = Path("/work/shared/data")

# --------------------------------------------------------------------------- reference counter

_WORD = re.compile(r"[^\W_]+")

TOTALS_SCHEMA = pa.schema(
    [
        ("generation", pa.int32()),
        ("origin", pa.string()),
        ("tokenizer", pa.string()),
        ("n", pa.int32()),
        ("documents", pa.int64()),
        ("tokens", pa.int64()),
        ("total", pa.int64()),
        ("distinct", pa.int64()),
        ("buckets", pa.int32()),
        ("sample_rate", pa.int32()),
        ("top_k", pa.int32()),
    ]
)
BUCKETS_SCHEMA = pa.schema(
    [
        ("generation", pa.int32()),
        ("origin", pa.string()),
        ("tokenizer", pa.string()),
        ("n", pa.int32()),
        ("bucket", pa.int32()),
        ("count", pa.int64()),
    ]
)
TOP_SCHEMA = pa.schema(
    [
        ("generation", pa.int32()),
        ("origin", pa.string()),
        ("tokenizer", pa.string()),
        ("n", pa.int32()),
        ("rank", pa.int32()),
        ("ngram", pa.string()),
        ("hash", pa.uint64()),
        ("count", pa.int64()),
        ("doc_freq", pa.int64()),
    ]
)
SAMPLE_SCHEMA = pa.schema(
    [
        ("generation", pa.int32()),
        ("origin", pa.string()),
        ("tokenizer", pa.string()),
        ("n", pa.int32()),
        ("hash", pa.uint64()),
        ("count", pa.int64()),
        ("doc_freq", pa.int64()),
    ]
)
SAMPLES_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("text_hash", pa.string()),
        ("generation", pa.int32()),
        ("origin", pa.string()),
        ("text", pa.string()),
        ("prompt", pa.string()),
    ]
)
SCHEMAS = {
    "ngram_totals": TOTALS_SCHEMA,
    "ngram_buckets": BUCKETS_SCHEMA,
    "ngram_top": TOP_SCHEMA,
    "ngram_sample": SAMPLE_SCHEMA,
    "samples": SAMPLES_SCHEMA,
}


def word_tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngram_hash(ngram: str) -> int:
    return int.from_bytes(hashlib.blake2b(ngram.encode("utf-8"), digest_size=8).digest(), "little")


def ngram_tables(
    docs: Iterable[tuple[int, str, str]],
    *,
    n_max: int = 4,
    buckets: int = 10_000,
    sample_rate: int = 16,
    top_k: int = 100,
    tokenizer: str = "word_v1",
) -> dict[str, pa.Table]:
    """(generation, origin, text) rows -> the four n-gram statistics tables, '*' groups included."""
    groups: dict[tuple[int, str], list[list[str]]] = defaultdict(list)
    for generation, origin, text in docs:
        tokens = word_tokens(text)
        groups[(generation, origin)].append(tokens)
        groups[(generation, "*")].append(tokens)
    origins = Counter(generation for generation, origin in groups if origin != "*")
    limit = 2**64 // sample_rate if sample_rate > 1 else 2**64
    hashes: dict[str, int] = {}
    out: dict[str, list[dict]] = {name: [] for name in ("ngram_totals", "ngram_buckets", "ngram_top", "ngram_sample")}
    done: dict[tuple[int, str], dict[str, list[dict]]] = {}
    for (generation, origin), token_docs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] == "*", kv[0][1])):
        if origin == "*" and origins[generation] == 1:
            # one origin only: the '*' group is the same statistics under another name
            (single,) = [v for (g, o), v in done.items() if g == generation]
            for name, rows in single.items():
                out[name].extend(r | {"origin": "*"} for r in rows)
            continue
        mark = {name: len(rows) for name, rows in out.items()}
        for n in range(1, n_max + 1):
            counts: Counter[str] = Counter()
            doc_freq: Counter[str] = Counter()
            for tokens in token_docs:
                grams = [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
                counts.update(grams)
                doc_freq.update(set(grams))
            key = {"generation": generation, "origin": origin, "tokenizer": tokenizer, "n": n}
            out["ngram_totals"].append(
                key
                | {
                    "documents": len(token_docs),
                    "tokens": sum(len(t) for t in token_docs),
                    "total": sum(counts.values()),
                    "distinct": len(counts),
                    "buckets": buckets,
                    "sample_rate": sample_rate,
                    "top_k": top_k,
                }
            )
            histogram: Counter[int] = Counter()
            for gram, count in counts.items():
                h = hashes.get(gram)
                if h is None:
                    h = hashes[gram] = ngram_hash(gram)
                histogram[h % buckets] += count
                if h < limit:
                    out["ngram_sample"].append(key | {"hash": h, "count": count, "doc_freq": doc_freq[gram]})
            out["ngram_buckets"].extend(key | {"bucket": b, "count": c} for b, c in sorted(histogram.items()))
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
            out["ngram_top"].extend(
                key | {"rank": r, "ngram": g, "hash": hashes[g], "count": c, "doc_freq": doc_freq[g]}
                for r, (g, c) in enumerate(ranked, start=1)
            )
        done[(generation, origin)] = {name: rows[mark[name]:] for name, rows in out.items()}
    return {name: pa.Table.from_pylist(rows, schema=SCHEMAS[name]) for name, rows in out.items()}


def samples_table(docs: Iterable[tuple[int, str, str | None]]) -> pa.Table:
    rows = [
        {
            "sample_id": f"s{i}",
            "text_hash": None if text is None else hashlib.sha256(text.encode()).hexdigest(),
            "generation": generation,
            "origin": origin,
            "text": text,
            "prompt": None,
        }
        for i, (generation, origin, text) in enumerate(docs)
    ]
    return pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)


def connect(docs: list[tuple[int, str, str]], **counter_options) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, table in ngram_tables(docs, **counter_options).items():
        con.register(name, table)
    con.register("samples", samples_table(docs))
    return con


INJECTED_PHRASES = (
    "Let's think step by step.",
    "The answer is clear.",
    "Therefore, the final answer is",
    "First, we need to understand the problem.",
    "This is a simple calculation.",
)


def inject(texts: list[str], *, share: float = 0.8, seed: int = 0) -> list[str]:
    """~share of the docs get 2-3 stock phrases inserted at line boundaries (a 'synthetic' generation)."""
    rng = random.Random(seed)
    out = []
    for text in texts:
        if rng.random() < share:
            lines = text.split("\n")
            for phrase in rng.sample(INJECTED_PHRASES, rng.choice((2, 3))):
                lines.insert(rng.randrange(len(lines) + 1), phrase)
            text = "\n".join(lines)
        out.append(text)
    return out


# --------------------------------------------------------------------------- hand-built tables

PARAM_DEFAULTS = {"origin": "*", "tokenizer": "word_v1"}

GEN0 = [  # the baseline: human only
    (0, "human", "The cat sat on the mat."),
    (0, "human", "The dog sat on the log, the dog slept."),
    (0, "human", "A cat and a dog: the end."),
    (0, "human", "Über-Katze: 12 cats, 12 dogs!"),
]
GEN1 = [  # human and synthetic: '*' differs from each origin
    (1, "human", "The cat sat on the mat."),
    (1, "human", "The cat sat."),
    (1, "synthetic", "The cat the cat the cat."),
    (1, "synthetic", "Let us think step by step."),
    (1, "synthetic", "The answer is clear, the cat sat."),
]
GEN3 = [(3, "synthetic", "Step by step, step by step."), (3, "synthetic", "the the the")]
GEN4 = [(4, "human", "The cat sat on the mat.")]  # other bucket count: JS not comparable


def concat(*parts: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return {name: pa.concat_tables([p[name] for p in parts]) for name in parts[0]}


@pytest.fixture(scope="module")
def small() -> dict[str, pa.Table]:
    tables = concat(
        ngram_tables(GEN0, buckets=16, sample_rate=1, top_k=3),
        ngram_tables(GEN1, buckets=16, sample_rate=2, top_k=3),
        ngram_tables(GEN3, buckets=16, sample_rate=1, top_k=10),
        ngram_tables(GEN4, buckets=32, sample_rate=1, top_k=3),
        # noise that every query must ignore: another tokenizer over other text
        ngram_tables([(0, "human", "zzz yyy xxx zzz"), (1, "human", "qqq qqq qqq")], buckets=16, sample_rate=1,
                     top_k=3, tokenizer="other_v1"),
    )
    # generation 2 exists but is empty: totals of zero, nothing else
    empty = [
        {"generation": 2, "origin": "*", "tokenizer": "word_v1", "n": n, "documents": 0, "tokens": 0, "total": 0,
         "distinct": 0, "buckets": 16, "sample_rate": 1, "top_k": 3}
        for n in range(1, 5)
    ]
    tables["ngram_totals"] = pa.concat_tables([tables["ngram_totals"], pa.Table.from_pylist(empty, schema=TOTALS_SCHEMA)])
    texts = [*GEN0, *GEN1, *GEN3, *GEN4, (1, "synthetic", None), (2, "human", None)]
    tables["samples"] = samples_table(texts)
    return tables


@pytest.fixture(scope="module")
def con(small: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    for name, table in small.items():
        c.register(name, table)
    return c


def rows_of(table: pa.Table, **match) -> list[dict]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in match.items())]


def one(rows: list[dict]) -> dict | None:
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def q(con, name: str, **params) -> list[dict]:
    return shift.run_query(con, f"shift/{name}", **(PARAM_DEFAULTS | params)).to_pylist()


def assert_rows(got: list[dict], want: list[dict]) -> None:
    assert [sorted(r) for r in got] == [sorted(r) for r in want]
    for g, w in zip(got, want):
        for key, value in w.items():
            if isinstance(value, float):
                assert g[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (key, g, w)
            else:
                assert g[key] == value, (key, g, w)


CASES = [
    dict(generation=1, baseline=0),
    dict(generation=1, baseline=0, origin="human"),
    dict(generation=1, baseline=0, origin="synthetic"),  # the baseline has no synthetic group
    dict(generation=3, baseline=0),  # missing buckets, other sample rate
    dict(generation=0, baseline=1),
    dict(generation=0, baseline=0),  # against itself
    dict(generation=2, baseline=0),  # empty generation
    dict(generation=7, baseline=0),  # absent generation
    dict(generation=4, baseline=0),  # other bucket count
]
CASE_IDS = [f"g{c['generation']}-b{c['baseline']}-{c.get('origin', '*')}" for c in CASES]


# --------------------------------------------------------------------------- references


def group(tables, name, generation, origin, tokenizer, **extra) -> list[dict]:
    return rows_of(tables[name], generation=generation, origin=origin, tokenizer=tokenizer, **extra)


def ns_of(tables, generation, baseline, origin, tokenizer) -> list[int]:
    return sorted({r["n"] for g in {generation, baseline} for r in group(tables, "ngram_totals", g, origin, tokenizer)})


def ref_distinct(t, generation, baseline, origin="*", tokenizer="word_v1"):
    def value(g, n):
        row = one(group(t, "ngram_totals", g, origin, tokenizer, n=n))
        return row["distinct"] / row["total"] if row and row["total"] else None

    return [
        {"n": n, "baseline_value": value(baseline, n), "value": value(generation, n)}
        for n in ns_of(t, generation, baseline, origin, tokenizer)
    ]


def histogram(t, g, n, origin, tokenizer) -> dict[int, int]:
    return {r["bucket"]: r["count"] for r in group(t, "ngram_buckets", g, origin, tokenizer, n=n) if r["count"] > 0}


def ref_concentration(t, generation, baseline, origin="*", tokenizer="word_v1"):
    def measures(g, n):
        totals = one(group(t, "ngram_totals", g, origin, tokenizer, n=n))
        h = histogram(t, g, n, origin, tokenizer)
        if not totals or not h:
            return None, None, None
        mass = sum(h.values())
        entropy = -sum(c / mass * math.log2(c / mass) for c in h.values())
        k = math.ceil(totals["buckets"] / 100)
        top = sum(sorted(h.values(), reverse=True)[:k]) / mass
        return entropy, 2**entropy, top

    out = []
    for n in ns_of(t, generation, baseline, origin, tokenizer):
        be, bf, bt = measures(baseline, n)
        ge, gf, gt = measures(generation, n)
        out.append({"n": n, "baseline_entropy": be, "entropy": ge, "baseline_effective_buckets": bf,
                    "effective_buckets": gf, "baseline_top_bucket_mass": bt, "top_bucket_mass": gt})
    return out


def ref_js(t, generation, baseline, origin="*", tokenizer="word_v1"):
    out = []
    for n in ns_of(t, generation, baseline, origin, tokenizer):
        tg = one(group(t, "ngram_totals", generation, origin, tokenizer, n=n))
        tb = one(group(t, "ngram_totals", baseline, origin, tokenizer, n=n))
        hp, hq = histogram(t, generation, n, origin, tokenizer), histogram(t, baseline, n, origin, tokenizer)
        if not (tg and tb and hp and hq) or tg["buckets"] != tb["buckets"]:
            out.append({"n": n, "js_divergence": None, "noise_floor": None, "dispersion": None})
            continue
        sp, sq = sum(hp.values()), sum(hq.values())
        kl_p = kl_q = 0.0
        union = set(hp) | set(hq)
        for b in union:
            p, q_ = hp.get(b, 0) / sp, hq.get(b, 0) / sq
            m = (p + q_) / 2
            if p:
                kl_p += p * math.log2(p / m)
            if q_:
                kl_q += q_ * math.log2(q_ / m)
        js = min(1.0, max(0.0, (kl_p + kl_q) / 2))
        sample = [r for r in group(t, "ngram_sample", baseline, origin, tokenizer, n=n) if r["count"] > 0]
        phi = (sum(r["count"] ** 2 / max(1, min(r["doc_freq"], r["count"])) for r in sample)
               / sum(r["count"] for r in sample)) if sample else 1.0
        floor = phi * (len(union) - 1) * (1 / sp + 1 / sq) / (8 * math.log(2))
        out.append({"n": n, "js_divergence": js, "noise_floor": floor, "dispersion": phi})
    return out


def split_by_enumeration(docs: list[int], g: float) -> tuple[float, float, float, float]:
    """Expected (absent-from-G & in-A, in-A, absent & single-doc-in-A, single-doc-in-A) counts,
    enumerating every assignment of each n-gram's documents to the parts (G w.p. g, A w.p. 1-g)."""
    import itertools

    lost = present = lost_one = one_doc = 0.0
    for d in docs:
        for assignment in itertools.product((0, 1), repeat=d):  # 1 = the document goes to G
            in_g = sum(assignment)
            prob = g**in_g * (1 - g) ** (d - in_g)
            in_a = d - in_g
            present += prob * (in_a > 0)
            lost += prob * (in_a > 0 and in_g == 0)
            one_doc += prob * (in_a == 1)
            lost_one += prob * (in_a == 1 and in_g == 0)
    return lost, present, lost_one, one_doc


def ref_tail(t, generation, baseline, origin="*", tokenizer="word_v1"):
    out = []
    for n in ns_of(t, generation, baseline, origin, tokenizer):
        tg = one(group(t, "ngram_totals", generation, origin, tokenizer, n=n))
        tb = one(group(t, "ngram_totals", baseline, origin, tokenizer, n=n))
        s = max((tb or {}).get("sample_rate") or 1, (tg or {}).get("sample_rate") or 1)
        base = [r for r in group(t, "ngram_sample", baseline, origin, tokenizer, n=n)
                if r["count"] > 0 and r["hash"] * s < 2**64]
        gen = {r["hash"] for r in group(t, "ngram_sample", generation, origin, tokenizer, n=n) if r["count"] > 0}
        rare = [r for r in base if r["count"] == 1]
        row = {"n": n, "tail_loss": None, "expected_tail_loss": None, "tail_loss_rare": None,
               "expected_tail_loss_rare": None, "baseline_sampled": len(base), "split_tail_loss": None,
               "split_tail_loss_rare": None}
        t_g = (tg or {}).get("total")
        if t_g and base:
            t_b = tb["total"]
            row["tail_loss"] = sum(r["hash"] not in gen for r in base) / len(base)
            row["expected_tail_loss"] = sum(math.exp(-r["count"] * t_g / t_b) for r in base) / len(base)
            docs = [max(1, min(r["doc_freq"], r["count"])) for r in base]
            lost, present, _, _ = split_by_enumeration(docs, t_g / (t_b + t_g))
            row["split_tail_loss"] = lost / present
            if rare:
                row["tail_loss_rare"] = sum(r["hash"] not in gen for r in rare) / len(rare)
                row["expected_tail_loss_rare"] = sum(math.exp(-t_g / t_b) for _ in rare) / len(rare)
                once = [max(1, min(r["doc_freq"], r["count"])) for r in base if r["count"] == r["doc_freq"]]
                _, _, lost_one, one_doc = split_by_enumeration(once, t_g / (t_b + t_g))
                row["split_tail_loss_rare"] = lost_one / one_doc
        out.append(row)
    return out


def quantile(values: list[int], p: float) -> float:
    xs = sorted(values)
    h = (len(xs) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def ref_length(t, generation, baseline, origin="*"):
    def lengths(g):
        return [len(r["text"]) for r in t["samples"].to_pylist()
                if r["generation"] == g and (origin == "*" or r["origin"] == origin) and r["text"] is not None]

    lg, lb = lengths(generation), lengths(baseline)
    if not lg and not lb:
        return []

    def ecdf(xs, x):
        return bisect.bisect_right(sorted(xs), x) / len(xs)

    ks = max(abs(ecdf(lg, x) - ecdf(lb, x)) for x in set(lg) | set(lb)) if lg and lb else None
    row = {"baseline_size": len(lb), "size": len(lg), "ks": ks}
    for p in (10, 50, 90):
        row[f"baseline_p{p}"] = quantile(lb, p / 100) if lb else None
        row[f"p{p}"] = quantile(lg, p / 100) if lg else None
    row["baseline_mean"] = sum(lb) / len(lb) if lb else None
    row["mean"] = sum(lg) / len(lg) if lg else None
    return [row]


def ref_overrepresented(t, generation, baseline, origin="*", tokenizer="word_v1", n=2, limit_rows=20):
    tg = one(group(t, "ngram_totals", generation, origin, tokenizer, n=n))
    tb = one(group(t, "ngram_totals", baseline, origin, tokenizer, n=n))
    base_top = {r["hash"]: r["count"] for r in group(t, "ngram_top", baseline, origin, tokenizer, n=n)}
    c_min = min(base_top.values()) if base_top else None
    exhaustive = tb is not None and tb["distinct"] <= len(base_top)
    t_b = tb["total"] if tb else None
    out = []
    for r in group(t, "ngram_top", generation, origin, tokenizer, n=n):
        gen_freq = r["count"] / tg["total"] if tg and tg["total"] else None
        row = {"rank": r["rank"], "ngram": r["ngram"], "count": r["count"], "doc_freq": r["doc_freq"],
               "gen_freq": gen_freq, "baseline_count": None, "baseline_freq": None, "ratio": None,
               "ratio_is_lower_bound": None}
        if t_b:
            if r["hash"] in base_top:
                row["baseline_count"] = base_top[r["hash"]]
                row["baseline_freq"] = base_top[r["hash"]] / t_b
                row["ratio"], row["ratio_is_lower_bound"] = gen_freq / row["baseline_freq"], False
            elif exhaustive:
                row["baseline_count"], row["baseline_freq"] = 0, 0.0
                row["ratio"], row["ratio_is_lower_bound"] = math.inf, False
            elif c_min:
                row["ratio"], row["ratio_is_lower_bound"] = gen_freq / (c_min / t_b), True
        out.append(row)
    out.sort(key=lambda r: (r["ratio"] is None, -(r["ratio"] or 0), -r["count"], r["rank"]))
    return out[:limit_rows]


def ref_top(t, generation, origin="*", tokenizer="word_v1", n=2, limit_rows=20):
    totals = one(group(t, "ngram_totals", generation, origin, tokenizer, n=n)) or {}
    rows = sorted(group(t, "ngram_top", generation, origin, tokenizer, n=n), key=lambda r: (r["rank"], r["ngram"]))
    return [
        {"rank": r["rank"], "ngram": r["ngram"], "count": r["count"], "doc_freq": r["doc_freq"],
         "freq": r["count"] / totals["total"] if totals.get("total") else None,
         "doc_share": r["doc_freq"] / totals["documents"] if totals.get("documents") else None}
        for r in rows[:limit_rows]
    ]


# --------------------------------------------------------------------------- query files


def sql_files() -> list[Path]:
    return sorted((sql_dir() / "shift").glob("*.sql"))


def header(path: Path) -> dict:
    lines = path.read_text().splitlines()
    meta = {"params": [], "description": []}
    body = []
    in_description = False
    for line in lines:
        if not line.startswith("--"):
            body.append(line)
            in_description = False
            continue
        text = line[2:].strip()
        if text.startswith("name:"):
            meta["name"] = text[5:].strip()
        elif text.startswith("description:"):
            meta["description"].append(text[12:].strip())
            in_description = True
        elif text.startswith("param "):
            m = re.fullmatch(r"param (\w+) (\w+)( = (.+?))?: (.+)", text)
            assert m, f"{path.name}: bad param line {line!r}"
            meta["params"].append(m.group(1))
        elif text.startswith("tables:"):
            meta["tables"] = [x.strip() for x in text[7:].split(",")]
        elif text.startswith("columns:"):
            meta["columns"] = [x.strip() for x in text[8:].split(",")]
        elif in_description:
            meta["description"].append(text)
    meta["body"] = "\n".join(body)
    return meta


def test_query_files_exist():
    names = {p.stem for p in sql_files()}
    assert names >= {"distinct_n", "concentration", "js_divergence", "tail_loss", "overrepresented", "length",
                     "top_ngrams"}


@pytest.mark.parametrize("path", sql_files(), ids=lambda p: p.stem)
def test_query_header_matches_body_and_runs_on_empty_tables(path: Path):
    meta = header(path)
    assert meta["name"] == f"shift/{path.stem}"
    assert " ".join(meta["description"])
    used = set(re.findall(r"\$(\w+)", meta["body"]))
    assert used == set(meta["params"]), (used, meta["params"])
    read = {t for t in SCHEMAS if re.search(rf"\b{t}\b", meta["body"])}
    assert read == set(meta["tables"])
    c = duckdb.connect()
    for name, schema in SCHEMAS.items():
        c.register(name, schema.empty_table())
    values = {"generation": 1, "baseline": 0, "origin": "*", "tokenizer": "word_v1", "n": 2, "limit_rows": 20}
    result = c.sql(path.read_text(), params={p: values[p] for p in meta["params"]}).to_arrow_table()
    assert result.num_rows == 0
    assert result.column_names == meta["columns"]


def test_load_query_unknown_name_lists_the_available_ones():
    with pytest.raises(UsageError, match="no named query 'shift/nope'; available: .*shift/distinct_n"):
        shift.load_query("shift/nope")


# --------------------------------------------------------------------------- metrics vs references


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_distinct_n(con, small, case):
    assert_rows(q(con, "distinct_n", tokenizer="word_v1", **case), ref_distinct(small, **case))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_concentration(con, small, case):
    assert_rows(q(con, "concentration", **case), ref_concentration(small, **case))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_js_divergence(con, small, case):
    assert_rows(q(con, "js_divergence", **case), ref_js(small, **case))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_tail_loss(con, small, case):
    assert_rows(q(con, "tail_loss", **case), ref_tail(small, **case))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_length(con, small, case):
    assert_rows(q(con, "length", **case), ref_length(small, **case))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("case", [*CASES, dict(generation=1, baseline=3)], ids=[*CASE_IDS, "g1-b3-exhaustive"])
def test_overrepresented(con, small, case, n):
    for limit in (20, 2):
        got = shift.overrepresented(con, case["generation"], case["baseline"], origin=case.get("origin", "*"), n=n,
                                    limit=limit).to_pylist()
        assert_rows(got, ref_overrepresented(small, **case, n=n, limit_rows=limit))


@pytest.mark.parametrize("generation", [0, 1, 2, 3])
def test_top_ngrams(con, small, generation):
    for origin in ("*", "human", "synthetic"):
        got = shift.top_ngrams(con, generation, origin=origin, n=1, limit=2).to_pylist()
        assert_rows(got, ref_top(small, generation, origin=origin, n=1, limit_rows=2))


def test_hand_built_cases_cover_the_edges(con, small):
    """Guard against a fixture that silently stops exercising the edge cases."""
    js = {r["n"]: r for r in q(con, "js_divergence", generation=3, baseline=0)}
    gen3 = {(r["n"], r["bucket"]) for r in rows_of(small["ngram_buckets"], generation=3, origin="*", tokenizer="word_v1")}
    gen0 = {(r["n"], r["bucket"]) for r in rows_of(small["ngram_buckets"], generation=0, origin="*", tokenizer="word_v1")}
    assert gen0 - gen3 and gen3 - gen0  # buckets missing on either side
    assert all(0 < r["js_divergence"] <= 1 for r in js.values())
    assert all(r["js_divergence"] == 0 for r in q(con, "js_divergence", generation=0, baseline=0))
    assert all(r["tail_loss"] == 0 for r in q(con, "tail_loss", generation=0, baseline=0))
    assert all(r["js_divergence"] is None for r in q(con, "js_divergence", generation=4, baseline=0))
    over = shift.overrepresented(con, 1, 0, n=1).to_pylist()
    assert {r["ratio_is_lower_bound"] for r in over} == {True, False}
    assert any(r["ratio"] == math.inf for r in shift.overrepresented(con, 1, 3, n=1).to_pylist())
    # the baseline is sampled at S=1, generation 1 at S=2: only the shared half of hash space counts
    tail = {r["n"]: r for r in q(con, "tail_loss", generation=1, baseline=0)}
    full = len(rows_of(small["ngram_sample"], generation=0, origin="*", tokenizer="word_v1", n=1))
    assert 0 < tail[1]["baseline_sampled"] < full
    human = q(con, "distinct_n", generation=1, baseline=0, origin="human")
    star = q(con, "distinct_n", generation=1, baseline=0)
    assert human != star


# --------------------------------------------------------------------------- rules


def raw_rows(**over) -> dict[str, list[dict]]:
    """Query rows for n = 1 with a baseline and a generation that sit exactly at known values."""
    raw = {
        "distinct_n": [{"n": 1, "baseline_value": 0.5, "value": 0.45}],
        "concentration": [{"n": 1, "baseline_entropy": 10.0, "entropy": 9.9, "baseline_effective_buckets": 2.0**10,
                           "effective_buckets": 2.0**9.9, "baseline_top_bucket_mass": 0.1, "top_bucket_mass": 0.11}],
        "js_divergence": [{"n": 1, "js_divergence": 0.02, "noise_floor": 0.01, "dispersion": 1.0}],
        "tail_loss": [{"n": 1, "tail_loss": 0.5, "expected_tail_loss": 0.2, "tail_loss_rare": 0.8,
                       "expected_tail_loss_rare": 0.3, "baseline_sampled": 100, "split_tail_loss": 0.45,
                       "split_tail_loss_rare": 0.75}],
        "length": [{"baseline_size": 400, "size": 400, "ks": 0.1, "baseline_p10": 1.0, "p10": 1.0,
                    "baseline_p50": 100.0, "p50": 110.0, "baseline_p90": 1.0, "p90": 1.0, "baseline_mean": 1.0,
                    "mean": 1.0}],
    }
    for key, value in over.items():
        query, column = key.split("__")
        raw[query][0][column] = value
    return raw


def by_metric(rows: list[shift.MetricRow]) -> dict[str, shift.MetricRow]:
    return {r.metric: r for r in rows}


def test_report_lists_every_metric_in_order():
    names = [r.metric for r in shift.evaluate(raw_rows())]
    families = ["distinct", "entropy", "effective_buckets", "top_bucket_mass", "js_divergence", "tail_loss",
                "tail_loss_rare"]
    assert names == [f"{f}_{n}" for f in families for n in range(1, 5)] + ["length_ks", "length_p50"]


def test_rules_quiet_when_inside_bounds():
    m = by_metric(shift.evaluate(raw_rows()))
    assert {r.metric: r.status for r in m.values() if r.metric.endswith("_1") or r.metric.startswith("length")} == {
        k: "ok" for k in ["distinct_1", "entropy_1", "effective_buckets_1", "top_bucket_mass_1", "js_divergence_1",
                          "tail_loss_1", "tail_loss_rare_1", "length_ks", "length_p50"]}
    assert all(m[f"distinct_{n}"].status == "n/a" for n in (2, 3, 4))  # no rows for n > 1
    th = shift.Thresholds()
    assert m["distinct_1"].threshold == pytest.approx(0.5 * (1 - th.distinct))
    assert m["distinct_1"].delta == pytest.approx(-0.05)
    assert m["entropy_1"].threshold == pytest.approx(10 - th.entropy)
    assert m["effective_buckets_1"].threshold == pytest.approx(2**10 * (1 - th.effective_buckets))
    assert m["top_bucket_mass_1"].threshold == pytest.approx(0.1 * (1 + th.top_bucket_mass))
    assert m["js_divergence_1"].baseline == 0
    assert m["js_divergence_1"].threshold == pytest.approx(th.js_floor_factor * 0.01 + th.js_divergence)
    assert m["tail_loss_1"].baseline == 0.45
    assert m["tail_loss_1"].threshold == pytest.approx(0.45 + th.tail_loss)
    assert m["tail_loss_rare_1"].threshold == pytest.approx(0.75 + th.tail_loss_rare)
    assert m["length_ks"].threshold == pytest.approx(max(0.05, 1.949 * math.sqrt(800 / 400**2)))
    assert (m["length_p50"].baseline, m["length_p50"].value, m["length_p50"].threshold) == (100.0, 110.0, None)


@pytest.mark.parametrize(
    ("override", "metric"),
    [
        ({"distinct_n__value": 0.39}, "distinct_1"),
        ({"concentration__entropy": 9.7}, "entropy_1"),
        ({"concentration__effective_buckets": 2.0**10 * 0.8}, "effective_buckets_1"),
        ({"concentration__top_bucket_mass": 0.126}, "top_bucket_mass_1"),
        ({"js_divergence__js_divergence": 0.0226}, "js_divergence_1"),
        ({"tail_loss__tail_loss": 0.56}, "tail_loss_1"),
        ({"tail_loss__tail_loss_rare": 0.86}, "tail_loss_rare_1"),
        ({"length__ks": 0.14}, "length_ks"),
    ],
)
def test_each_rule_alarms_just_past_its_bound(override, metric):
    m = by_metric(shift.evaluate(raw_rows(**override)))
    assert m[metric].status == "alarm"
    assert [r.metric for r in m.values() if r.status == "alarm"] == [metric]


def test_length_ks_needs_significance_and_size():
    # few documents: a large D is not significant
    m = by_metric(shift.evaluate(raw_rows(length__size=10, length__baseline_size=10, length__ks=0.6)))
    assert m["length_ks"].threshold == pytest.approx(1.949 * math.sqrt(20 / 100))
    assert m["length_ks"].status == "ok"
    # many documents: significant but below the 0.05 effect size
    m = by_metric(shift.evaluate(raw_rows(length__size=10**6, length__baseline_size=10**6, length__ks=0.04)))
    assert (m["length_ks"].threshold, m["length_ks"].status) == (0.05, "ok")


def test_missing_data_is_na():
    raw = raw_rows(distinct_n__value=None, concentration__baseline_entropy=None, js_divergence__js_divergence=None,
                   tail_loss__tail_loss=None, length__ks=None)
    m = by_metric(shift.evaluate(raw))
    for name in ("distinct_1", "entropy_1", "js_divergence_1", "tail_loss_1", "length_ks"):
        assert (m[name].status, m[name].delta, m[name].threshold) == ("n/a", None, None), name
    assert {r.status for r in shift.evaluate({})} == {"n/a"}


def test_thresholds_from_mapping():
    th = shift.Thresholds.from_mapping({"js_divergence": 0.05, "distinct_3": 0.7, "tail_loss": None,
                                        "js_floor_factor": 2})
    assert th.knob("js_divergence_2") == 0.05
    assert th.knob("distinct_3") == 0.7 and th.knob("distinct_2") == shift.Thresholds().distinct
    assert th.knob("tail_loss_1") is None and th.knob("tail_loss_rare_1") == shift.Thresholds().tail_loss_rare
    m = by_metric(shift.evaluate(raw_rows(tail_loss__tail_loss=0.99), th))
    assert (m["tail_loss_1"].status, m["tail_loss_1"].threshold) == ("ok", None)
    assert m["js_divergence_1"].threshold == pytest.approx(2 * 0.01 + 0.05)
    assert m["distinct_1"].threshold == pytest.approx(0.5 * (1 - shift.Thresholds().distinct))
    with pytest.raises(UsageError, match=r"unknown threshold 'distnct'.*distinct_<n>"):
        shift.Thresholds.from_mapping({"distnct": 0.1})
    with pytest.raises(UsageError, match="must be a number"):
        shift.Thresholds.from_mapping({"distinct": "0.1"})
    with pytest.raises(UsageError, match=">= 0"):
        shift.Thresholds.from_mapping({"entropy": -1})


def test_shift_report_on_tables(con):
    rows = by_metric(shift.shift_report(con, 1, 0))
    assert rows["distinct_1"].value == pytest.approx(ref_distinct_value(con, 1, "*"))
    assert rows["length_ks"].status != "n/a"
    empty = shift.shift_report(con, 2, 0)
    assert {r.status for r in empty if r.metric != "length_ks"} == {"n/a"}
    assert by_metric(empty)["length_ks"].status == "n/a"  # generation 2 has only a NULL text
    human = by_metric(shift.shift_report(con, 1, 0, origin="human"))
    assert human["distinct_1"].value == pytest.approx(ref_distinct_value(con, 1, "human"))
    text = shift.format_report(list(rows.values())).splitlines()
    assert text[0].split() == ["metric", "baseline", "value", "delta", "threshold", "status"]
    assert [line.split()[0] for line in text[1:]] == list(rows)
    assert [line.split()[-1] for line in text[1:]] == [r.status for r in rows.values()]


def ref_distinct_value(con, generation, origin):
    (d, t), = con.sql("select \"distinct\", total from ngram_totals where generation = $g and origin = $o "
                      "and tokenizer = 'word_v1' and n = 1", params={"g": generation, "o": origin}).fetchall()
    return d / t


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def gsm8k_con() -> duckdb.DuckDBPyConnection:
    path = DATA / "gsm8k_test.jsonl"
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    answers = [json.loads(line)["answer"] for line in path.read_text().splitlines() if line.strip()]
    rng = random.Random(0)
    rng.shuffle(answers)
    half, other = answers[: len(answers) // 2], answers[len(answers) // 2 :]
    docs = [(0, "human", t) for t in half] + [(1, "human", t) for t in other]
    docs += [(2, "synthetic", t) for t in inject(other, seed=0)]
    return connect(docs)


def test_gsm8k_half_vs_half_is_quiet(gsm8k_con):
    rows = shift.shift_report(gsm8k_con, 1, 0)
    assert [r.metric for r in rows if r.status == "alarm"] == [], shift.format_report(rows)
    assert all(r.status == "ok" for r in rows), shift.format_report(rows)


def test_gsm8k_injected_phrases_are_flagged(gsm8k_con):
    rows = by_metric(shift.shift_report(gsm8k_con, 2, 0))
    report = shift.format_report(list(rows.values()))
    for n in range(1, 5):
        assert rows[f"distinct_{n}"].value < rows[f"distinct_{n}"].baseline, report
        assert rows[f"top_bucket_mass_{n}"].value > rows[f"top_bucket_mass_{n}"].baseline, report
        assert rows[f"js_divergence_{n}"].value > 0, report
    alarms = {name for name, r in rows.items() if r.status == "alarm"}
    assert {"top_bucket_mass_2", "top_bucket_mass_3", "js_divergence_2", "length_ks"} <= alarms, report
    top = shift.overrepresented(gsm8k_con, 2, 0, n=3, limit=5).to_pylist()
    stock = {"let s think", "s think step", "think step by", "step by step", "the answer is", "answer is clear",
             "we need to", "need to understand", "to understand the", "understand the problem", "first we need",
             "this is a", "is a simple", "a simple calculation", "the final answer", "therefore the final",
             "final answer is"}
    assert {r["ngram"] for r in top} <= stock, top
    assert all(r["ratio"] > 10 for r in top)
