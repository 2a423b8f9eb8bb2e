"""N-gram statistics: the vectorised engine against a plain-Python reference (re, Counter)."""
from __future__ import annotations

import gc
import json
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curator.errors import UsageError
from curator.stats import ngrams as ng
from curator.stats.ngrams import (
    BUCKETS_SCHEMA,
    SAMPLE_SCHEMA,
    TOP_SCHEMA,
    TOTALS_SCHEMA,
    NgramAccumulator,
    compute_ngram_stats,
    ngram_hashes,
)
from curator.stats.tokenize import get_tokenizer
from tests.stats.test_tokenize import (
    GOLDEN,
    MASK,
    TRICKY,
    real_docs,
    ref_hf_hash,
    ref_mix64,
    ref_tokens,
    ref_word_hash,
    train_hf_tokenizer,
)

NGRAM_K = 0xD6E8FEB86659FD93
REPO = Path(__file__).resolve().parents[2]

# -- the reference ----------------------------------------------------------------------------


def ref_ngram_hash(token_hashes: list[int]) -> int:
    s = token_hashes[0]
    for t in token_hashes[1:]:
        s = (s * NGRAM_K + t) & MASK
    return ref_mix64(s ^ ((len(token_hashes) * GOLDEN) & MASK))


def ref_word_tokenize(text: str | None) -> tuple[list[str], list[int]]:
    words = ref_tokens(text)
    return words, [ref_word_hash(w) for w in words]


def reference_stats(texts, groups, group_names, tokenize=ref_word_tokenize, ns=(1, 2, 3, 4), buckets=10_000,
                    top_k=100, sample_rate=16) -> dict:
    """The four tables of the module docstring, one n-gram at a time."""
    docs = [tokenize(t) for t in texts]
    by_group: dict[str, list] = {}
    for doc, g in zip(docs, groups):
        by_group.setdefault(group_names[g], []).append(doc)
    out = {"totals": {}, "buckets": {}, "top": {}, "sample": {}}
    origins = [name for name in group_names if name in by_group] + ["*"]
    for origin in origins:
        members = docs if origin == "*" else by_group[origin]
        for n in ns:
            count, df, text = Counter(), Counter(), {}
            total = 0
            for words, hashes in members:
                grams = [(ref_ngram_hash(hashes[i : i + n]), " ".join(words[i : i + n]))
                         for i in range(len(hashes) - n + 1)]
                total += len(grams)
                for h, t in grams:
                    count[h] += 1
                    text.setdefault(h, t)
                df.update({h for h, _ in grams})
            out["totals"][(origin, n)] = (len(members), sum(len(h) for _, h in members), total, len(count))
            for h, c in count.items():
                key = (origin, n, h % buckets)
                out["buckets"][key] = out["buckets"].get(key, 0) + c
            best = sorted(count.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
            out["top"][(origin, n)] = [(r + 1, text[h], h, c, df[h]) for r, (h, c) in enumerate(best)]
            out["sample"].update({(origin, n, h): (c, df[h]) for h, c in count.items() if h < (1 << 64) // sample_rate})
    return out


def as_reference(stats) -> dict:
    out = {"totals": {}, "buckets": {}, "top": {}, "sample": {}}
    for r in stats.totals.to_pylist():
        out["totals"][(r["origin"], r["n"])] = (r["documents"], r["tokens"], r["total"], r["distinct"])
    for r in stats.buckets.to_pylist():
        out["buckets"][(r["origin"], r["n"], r["bucket"])] = r["count"]
    for r in stats.top.to_pylist():
        row = (r["rank"], r["ngram"], r["hash"], r["count"], r["doc_freq"])
        out["top"].setdefault((r["origin"], r["n"]), []).append(row)
    for key in out["totals"]:
        out["top"].setdefault(key, [])
    for r in stats.sample.to_pylist():
        out["sample"][(r["origin"], r["n"], r["hash"])] = (r["count"], r["doc_freq"])
    return out


def run_engine(texts, groups, group_names, batch=None, second_pass=True, **options):
    """Update in batches and finish; with ``second_pass``, recover missing top-k texts first."""
    acc = NgramAccumulator(**options)
    batch = batch or len(texts) or 1
    groups = np.asarray(groups, dtype=np.int64)
    for i in range(0, len(texts), batch):
        acc.update(pa.array(texts[i : i + batch], pa.large_string()), groups[i : i + batch])
    stats = acc.finish(group_names)
    if second_pass and stats.missing_texts:
        for i in range(0, len(texts), batch):
            acc.fill_texts(pa.array(texts[i : i + batch], pa.large_string()))
        stats = acc.finish(group_names)
        assert stats.missing_texts == 0
    return acc, stats


def assert_same(stats, expected) -> None:
    got = as_reference(stats)
    for table in ("totals", "buckets", "sample"):
        assert got[table] == expected[table], table
    assert got["top"].keys() == expected["top"].keys()
    for key in expected["top"]:
        assert got["top"][key] == expected["top"][key], key


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of a few dozen tokens and tiny value ranges in finish: every merge path runs."""
    monkeypatch.setattr(ng, "_BLOCK_TOKENS", 40)
    monkeypatch.setattr(ng, "_UNIT_ROWS", 50)


# -- matches the reference ----------------------------------------------------------------------


@pytest.mark.parametrize("blocks, budget", [("default", None), ("tiny", None), ("default", 0), ("tiny", 0),
                                           ("tiny", 20_000)])
def test_real_text_many_groups_and_batches(blocks, budget, request, tmp_path):
    if blocks == "tiny":
        request.getfixturevalue("tiny_blocks")
    texts = real_docs(100)
    rng = np.random.default_rng(7)
    groups = rng.integers(0, 3, len(texts))
    names = ["human", "synthetic", "edited", "never-used"]
    acc, stats = run_engine(texts, groups, names, batch=97, top_k=25, buckets=997, memory_budget=budget,
                            spill_dir=tmp_path)
    assert_same(stats, reference_stats(texts, groups, names, top_k=25, buckets=997))
    assert "never-used" not in stats.totals["origin"].to_pylist()
    assert (acc.spilled_nbytes() > 0) == (budget is not None)


def test_edge_cases(tiny_blocks):
    texts = ["", "a", "a b", "a b c", "x x x x x x", None, "Ünïcödé ΣΑΣ straße", "a b c d e", "the the the",
             "b a b a b a", "a b c d e"] + TRICKY
    groups = [i % 2 for i in range(len(texts))]
    names = ["even", "odd"]
    for sample_rate in (1, 3):
        options = dict(ns=(1, 2, 3, 4, 5), buckets=7, top_k=5, sample_rate=sample_rate)
        expected = reference_stats(texts, groups, names, **options)
        for budget in (None, 0):
            _, stats = run_engine(texts, groups, names, batch=4, memory_budget=budget, **options)
            assert_same(stats, expected)


def test_interleaved_groups_in_one_batch():
    texts = real_docs(30)
    groups = [(i * 7) % 4 for i in range(len(texts))]
    names = ["a", "b", "c", "d"]
    _, stats = run_engine(texts, groups, names, top_k=10)
    assert_same(stats, reference_stats(texts, groups, names, top_k=10))


def test_single_group_still_has_star():
    texts = ["one two three", "two three four", ""]
    _, stats = run_engine(texts, [0, 0, 0], ["only"], top_k=3)
    rows = stats.totals.to_pylist()
    assert [(r["origin"], r["n"]) for r in rows] == [(o, n) for o in ("only", "*") for n in (1, 2, 3, 4)]
    strip = lambda t: [{k: v for k, v in r.items() if k != "origin"} for r in t.to_pylist()]  # noqa: E731
    for table in (stats.totals, stats.buckets, stats.top, stats.sample):
        only = table.filter(pa.compute.equal(table["origin"], "only"))
        star = table.filter(pa.compute.equal(table["origin"], "*"))
        assert strip(only) == strip(star)
    assert_same(stats, reference_stats(texts, [0, 0, 0], ["only"], top_k=3))


def test_no_documents_at_all():
    acc = NgramAccumulator(ns=(1, 2))
    acc.update(pa.array([], pa.string()), np.zeros(0, np.int64))
    stats = acc.finish([])
    assert stats.totals.to_pylist() == [
        dict(origin="*", n=n, documents=0, tokens=0, total=0, distinct=0, buckets=10_000, sample_rate=16, top_k=100)
        for n in (1, 2)]
    assert stats.buckets.num_rows == stats.top.num_rows == stats.sample.num_rows == 0


def test_ties_broken_by_ascending_hash():
    # 60 distinct words once each: every unigram ties at count 1.
    texts = [" ".join(f"w{i}" for i in range(60))]
    _, stats = run_engine(texts, [0], ["g"], ns=(1,), top_k=7)
    top = stats.top.filter(pa.compute.equal(stats.top["origin"], "*")).to_pylist()
    all_hashes = sorted(ref_ngram_hash([ref_word_hash(f"w{i}")]) for i in range(60))
    assert [r["hash"] for r in top] == all_hashes[:7]
    assert [r["rank"] for r in top] == list(range(1, 8))


def test_batching_does_not_change_anything(tiny_blocks):
    texts = real_docs(40)
    groups = [i % 3 for i in range(len(texts))]
    names = ["x", "y", "z"]
    _, one = run_engine(texts, groups, names)
    _, many = run_engine(texts, groups, names, batch=13)
    acc = NgramAccumulator()
    acc.update(pa.chunked_array([pa.array(texts[:50]), pa.array(texts[50:])]), np.array(groups))
    if acc.finish(names).missing_texts:
        acc.fill_texts(pa.array(texts))
    chunked = acc.finish(names)
    for a, b in ((one, many), (one, chunked)):
        for name, table in a.tables().items():
            assert table.equals(b.tables()[name]), name


def test_update_after_finish(tiny_blocks):
    texts = real_docs(30)
    groups = [i % 2 for i in range(len(texts))]
    acc = NgramAccumulator(top_k=10)
    acc.update(pa.array(texts[:40]), np.array(groups[:40]))
    acc.finish(["a", "b"])
    assert acc.state_nbytes() > 0
    acc.update(pa.array(texts[40:]), np.array(groups[40:]))
    stats = acc.finish(["a", "b"])
    if stats.missing_texts:
        acc.fill_texts(pa.array(texts))
        stats = acc.finish(["a", "b"])
    assert_same(stats, reference_stats(texts, groups, ["a", "b"], top_k=10))


def test_ngram_hashes_function():
    batch = get_tokenizer().encode(pa.array(["The cat sat", "on", "the mat today"]))
    h, pos = ngram_hashes(batch.hashes, batch.doc_offsets, 2)
    words = [ref_tokens(t) for t in ["The cat sat", "on", "the mat today"]]
    expected = [ref_ngram_hash([ref_word_hash(w) for w in ws[i : i + 2]]) for ws in words for i in range(len(ws) - 1)]
    assert h.tolist() == expected
    assert pos.tolist() == [0, 1, 4, 5]  # tokens: the cat sat | on | the mat today
    assert ngram_hashes(batch.hashes, batch.doc_offsets, 9)[0].tolist() == []


# -- top-k texts: the rare second pass ------------------------------------------------------------


def test_missing_texts_second_pass(tiny_blocks):
    texts = real_docs(60)
    groups = [i % 2 for i in range(len(texts))]
    names = ["a", "b"]
    expected = reference_stats(texts, groups, names, top_k=15)
    acc, first = run_engine(texts, groups, names, batch=20, second_pass=False, top_k=15, text_candidates=1)
    missing = acc.missing_texts()
    assert first.missing_texts == len(missing) > 0
    nulls = first.top.filter(pa.compute.is_null(first.top["ngram"]))
    assert set(nulls["hash"].to_pylist()) == missing
    # Everything but the missing texts is already exact.
    got = as_reference(first)
    assert got["totals"] == expected["totals"] and got["sample"] == expected["sample"]
    for i in range(0, len(texts), 20):
        acc.fill_texts(pa.array(texts[i : i + 20]), np.array(groups[i : i + 20]))
    assert acc.missing_texts() == set()
    second = acc.finish(names)
    assert second.missing_texts == 0
    assert_same(second, expected)


def test_compute_ngram_stats_does_the_second_pass(tiny_blocks):
    texts = real_docs(40)
    groups = np.array([i % 2 for i in range(len(texts))])

    def batches():
        for i in range(0, len(texts), 16):
            yield pa.array(texts[i : i + 16]), groups[i : i + 16]

    stats = compute_ngram_stats(batches, ["a", "b"], top_k=12, text_candidates=1)
    assert stats.missing_texts == 0
    assert_same(stats, reference_stats(texts, groups, ["a", "b"], top_k=12))


def test_one_block_batch_never_misses_texts():
    # Candidates are ranked like the final top-k, so a single block always has every text.
    texts = real_docs(30)
    _, stats = run_engine(texts, [0] * len(texts), ["g"], second_pass=False, top_k=50, text_candidates=50)
    assert stats.missing_texts == 0


# -- hf tokenizer ---------------------------------------------------------------------------------


def test_hf_tokenizer_statistics(tmp_path):
    path = train_hf_tokenizer(tmp_path / "tiny-bpe")
    tok = get_tokenizer(f"hf:{path}")
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(path))
    raw.no_truncation()
    raw.no_padding()

    def ref_hf_tokenize(text):
        ids = raw.encode(text or "", add_special_tokens=False).ids
        return [raw.id_to_token(i) for i in ids], [ref_hf_hash(i) for i in ids]

    texts = ["the quick brown fox jumps over the lazy dog " * 3, "model collapse", "", None,
             "human data keeps the tails alive; the verifier keeps correct answers"] * 3
    groups = [i % 2 for i in range(len(texts))]
    acc, stats = run_engine(texts, groups, ["h", "s"], batch=4, tokenizer=tok, top_k=8)
    assert stats.tokenizer == tok.name
    assert_same(stats, reference_stats(texts, groups, ["h", "s"], tokenize=ref_hf_tokenize, top_k=8))


# -- internals where exactness is easy to get wrong -----------------------------------------------


def test_shared_key_prefix_is_resorted():
    # With 5 values, positions use the low 3 bits of the sort key; A and B differ only there, so
    # their keys share a prefix and interleave (A B A B) until the exact re-sort.
    a = np.uint64(0xABCDEF0123456780)
    b = a + np.uint64(1)
    c = np.uint64(0x0123456789ABCDE0)
    h = np.array([a, b, a, b, c], dtype=np.uint64)
    order, hs, _, starts = ng._group_sorted(h)
    assert hs.tolist() == sorted(h.tolist())
    assert order.tolist() == [4, 0, 2, 1, 3]
    assert starts.tolist() == [0, 1, 3]
    block = ng._aggregate(h, np.array([0, 0, 0, 1, 1], np.int32), None)
    assert block.singles.tolist() == [int(c)]
    assert block.multi.tolist() == [int(a), int(b)]
    assert block.count.tolist() == [2, 2]
    assert block.doc_freq.tolist() == [1, 2]  # a twice in document 0; b in documents 0 and 1


def test_merge_partials_combines_singles_and_multis():
    singles = [np.array([1, 5, 9], np.uint64), np.array([5, 7], np.uint64)]
    multis = [(np.array([5, 11], np.uint64), np.array([3, 2]), np.array([2, 1]))]
    v, c, d = ng._merge_partials(singles, multis)
    got = {int(x): (int(y), int(z)) for x, y, z in zip(v, c, d)}
    assert got == {1: (1, 1), 5: (5, 4), 7: (1, 1), 9: (1, 1), 11: (2, 1)}


# -- tables and validation ------------------------------------------------------------------------


def test_table_schemas_match_store_schema_files():
    _, stats = run_engine(["a b c", "b c d"], [0, 1], ["x", "y"])
    assert stats.totals.schema == TOTALS_SCHEMA
    assert stats.buckets.schema == BUCKETS_SCHEMA
    assert stats.top.schema == TOP_SCHEMA
    assert stats.sample.schema == SAMPLE_SCHEMA
    for name, schema in (("ngram_totals", TOTALS_SCHEMA), ("ngram_buckets", BUCKETS_SCHEMA),
                         ("ngram_top", TOP_SCHEMA), ("ngram_sample", SAMPLE_SCHEMA)):
        path = REPO / "schemas" / f"{name}.v1.json"
        if not path.exists():
            continue
        columns = {c["name"]: c["type"] for c in json.loads(path.read_text())["columns"]}
        for f in schema:
            assert columns[f.name] == str(f.type), (name, f.name)


def test_bucket_counts_add_up_to_total():
    texts = real_docs(20)
    _, stats = run_engine(texts, [0] * len(texts), ["g"], buckets=13)
    totals = {(r["origin"], r["n"]): r["total"] for r in stats.totals.to_pylist()}
    sums: Counter = Counter()
    for r in stats.buckets.to_pylist():
        assert 0 <= r["bucket"] < 13 and r["count"] > 0
        sums[(r["origin"], r["n"])] += r["count"]
    assert sums == Counter(totals)


@pytest.mark.parametrize("groups, match", [
    (np.array([0, 1]), "one code per document"),
    (np.array([0.0, 1.0, 2.0]), "integer codes"),
    (np.array([0, -1, 2]), "codes 0..G-1"),
    (np.array([0, 1, 1 << 30]), "codes 0..G-1"),
    (np.array([[0, 1, 2]]), "one code per document"),
])
def test_bad_groups(groups, match):
    with pytest.raises(UsageError, match=match):
        NgramAccumulator().update(pa.array(["a", "b", "c"]), groups)


def test_bad_group_names():
    acc = NgramAccumulator()
    acc.update(pa.array(["a", "b"]), np.array([0, 2]))
    with pytest.raises(UsageError, match="group code 2 has no name"):
        acc.finish(["x", "y"])
    with pytest.raises(UsageError, match="reserved"):
        acc.finish(["x", "*", "z"])
    with pytest.raises(UsageError, match="distinct"):
        acc.finish(["x", "x", "z"])
    origins = acc.finish(["x", "unused", "z"]).totals["origin"].to_pylist()
    assert list(dict.fromkeys(origins)) == ["x", "z", "*"]


@pytest.mark.parametrize("options, match", [
    (dict(ns=()), "ns must be"),
    (dict(ns=(0, 1)), "ns must be"),
    (dict(buckets=0), "buckets"),
    (dict(top_k=-1), "top_k"),
    (dict(sample_rate=0), "sample_rate"),
    (dict(text_candidates=0), "text_candidates"),
    (dict(tokenizer="nope"), "unknown tokenizer"),
])
def test_bad_options(options, match):
    with pytest.raises(UsageError, match=match):
        NgramAccumulator(**options)


# -- spilling to disk: same tables, bounded memory --------------------------------------------------


def spill_corpus(copies: int) -> list[str]:
    """``copies`` perturbed copies of real text: each copy adds new n-grams, like more corpus."""
    base = real_docs(400)
    return [f"{t} copy{k}" if i % 2 else f"copy{k} {t}" for k in range(copies) for i, t in enumerate(base)]


@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("parts", [64, 4])
@pytest.mark.parametrize("blocks", ["default", "tiny"])
def test_spilled_tables_equal_in_memory_tables(n_groups, parts, blocks, monkeypatch, request, tmp_path):
    if blocks == "tiny":
        request.getfixturevalue("tiny_blocks")
    monkeypatch.setattr(ng, "_SPILL_PARTS", parts)
    texts = real_docs(100) if blocks == "tiny" else spill_corpus(2)
    groups = np.arange(len(texts)) % n_groups
    names = [f"g{i}" for i in range(n_groups)]
    options = dict(top_k=30, buckets=501, sample_rate=3)
    _, expected = run_engine(texts, groups, names, batch=150, memory_budget=None, **options)
    for budget in (0, 30_000, 400_000):
        acc, stats = run_engine(texts, groups, names, batch=150, memory_budget=budget, spill_dir=tmp_path / "tmp",
                                **options)
        assert acc.spilled_nbytes() > 0 and len(acc._spills) >= (2 if budget < 100_000 else 1)
        for name, table in expected.tables().items():
            assert table.equals(stats.tables()[name]), (budget, name)
        spill_root = acc._spill_file.parent
        assert spill_root.parent == tmp_path / "tmp" and spill_root.exists()
        acc.close()
        assert not spill_root.exists()
        assert list((tmp_path / "tmp").iterdir()) == []


def test_spilled_finish_after_fill_texts_does_not_merge_again(tiny_blocks, monkeypatch):
    texts = real_docs(60)
    groups = [i % 2 for i in range(len(texts))]
    names = ["a", "b"]
    expected = reference_stats(texts, groups, names, top_k=15)
    calls = []
    fold_all = NgramAccumulator._fold_all
    monkeypatch.setattr(NgramAccumulator, "_fold_all", lambda self, used: calls.append(1) or fold_all(self, used))
    acc, first = run_engine(texts, groups, names, batch=20, second_pass=False, top_k=15, text_candidates=1,
                            memory_budget=0)
    assert first.missing_texts > 0 and acc.spilled_nbytes() > 0
    for i in range(0, len(texts), 20):
        acc.fill_texts(pa.array(texts[i : i + 20]))
    second = acc.finish(names)
    assert second.missing_texts == 0
    assert_same(second, expected)
    assert len(calls) == 1
    acc.close()
    assert acc.finish(names).top.equals(second.top)  # the kept result survives close
    with pytest.raises(UsageError, match="closed"):
        acc.update(pa.array(["more"]), np.array([0]))


def test_update_after_spilled_finish(tiny_blocks):
    texts = real_docs(30)
    groups = [i % 2 for i in range(len(texts))]
    with NgramAccumulator(top_k=10, memory_budget=0) as acc:
        acc.update(pa.array(texts[:40]), np.array(groups[:40]))
        acc.finish(["a", "b"])
        acc.update(pa.array(texts[40:]), np.array(groups[40:]))
        stats = acc.finish(["a", "b"])
        if stats.missing_texts:
            acc.fill_texts(pa.array(texts))
            stats = acc.finish(["a", "b"])
        assert_same(stats, reference_stats(texts, groups, ["a", "b"], top_k=10))
        spill_root = acc._spill_file.parent
    assert not spill_root.exists()


def test_spill_dir_removed_on_garbage_collection(tmp_path):
    acc = NgramAccumulator(memory_budget=0, spill_dir=tmp_path)
    acc.update(pa.array(real_docs(10)), np.zeros(30, np.int64))
    acc.finish(["g"])
    assert len(list(tmp_path.iterdir())) == 1
    del acc
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_compute_ngram_stats_spills_and_cleans_up(tmp_path):
    texts = real_docs(40)
    groups = np.array([i % 2 for i in range(len(texts))])

    def batches():
        for i in range(0, len(texts), 16):
            yield pa.array(texts[i : i + 16]), groups[i : i + 16]

    stats = compute_ngram_stats(batches, ["a", "b"], top_k=12, text_candidates=1, memory_budget=0,
                                spill_dir=tmp_path)
    assert_same(stats, reference_stats(texts, groups, ["a", "b"], top_k=12))
    assert list(tmp_path.iterdir()) == []


def test_memory_stays_bounded_with_three_times_the_data(tmp_path):
    """Peak traced memory (numpy arrays included) of update + finish: flat with a budget, growing
    with the data without one. The sample is made tiny: it is output and grows with the data."""
    budget = 1 << 20

    def peak_bytes(copies: int, memory_budget: int | None) -> tuple[int, int]:
        texts = spill_corpus(copies)
        acc = NgramAccumulator(top_k=10, text_candidates=16, sample_rate=1 << 20, memory_budget=memory_budget,
                               spill_dir=tmp_path)
        gc.collect()
        tracemalloc.start()
        try:
            most = 0
            for i in range(0, len(texts), 400):
                acc.update(pa.array(texts[i : i + 400]), np.zeros(len(texts[i : i + 400]), np.int64))
                most = max(most, acc.state_nbytes())
                if memory_budget is not None:
                    assert acc.state_nbytes() <= memory_budget
            acc.finish(["g"])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if memory_budget is not None:
            assert most > memory_budget // 2
        spilled = acc.spilled_nbytes()
        acc.close()
        return peak, spilled

    peak_bytes(1, None)  # warm-up: one-time caches (tokenizer tables, index buffers) are not state
    peak1, spilled1 = peak_bytes(2, budget)
    peak3, spilled3 = peak_bytes(6, budget)
    assert spilled3 > 2.5 * spilled1 > 0  # three times the partial state went through the budget
    assert peak3 < 1.2 * peak1, (peak1, peak3)
    # The control: without a budget the same peak grows with the partial state.
    free1, _ = peak_bytes(2, None)
    free3, _ = peak_bytes(6, None)
    assert free3 > 1.35 * free1, (free1, free3)


def test_bad_memory_budget():
    with pytest.raises(UsageError, match="memory_budget"):
        NgramAccumulator(memory_budget=-1)


def test_sparse_bucket_histogram(monkeypatch):
    # Histograms above _DENSE_BUCKETS buckets are summed sparsely per value range.
    monkeypatch.setattr(ng, "_DENSE_BUCKETS", 8)
    monkeypatch.setattr(ng, "_UNIT_ROWS", 200)
    texts = real_docs(40)
    groups = [i % 2 for i in range(len(texts))]
    for budget in (None, 0):
        _, stats = run_engine(texts, groups, ["a", "b"], batch=50, buckets=997, top_k=10, memory_budget=budget)
        assert_same(stats, reference_stats(texts, groups, ["a", "b"], buckets=997, top_k=10))
