"""The n-gram engine's parts: block forms, buffers, spill round trips (exactness, not speed)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curator.stats import blocks as bl
from curator.stats import ngrams as ng
from curator.stats.buffers import Buffers
from curator.stats.merge import _merge_partials, _Partials
from curator.stats.spill import write_spill
from curator.stats.tokenize import get_tokenizer
from curator.stats.values import _finalise
from tests.stats.test_ngrams import TRICKY, assert_same, real_docs, reference_stats, run_engine, spill_corpus

K = np.uint64(ng.NGRAM_K)


def block_inputs(texts: list[str], n: int):
    """(S, doc, drop) of one block holding all of ``texts``."""
    batch = get_tokenizer().encode(pa.array(texts, pa.large_string()))
    offsets = batch.doc_offsets
    tok = batch.hashes
    lengths = np.diff(offsets)
    doc = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    s = tok.copy()
    for j in range(1, n):
        s = s[:-1] * K + tok[j:]
    drop = bl._Tails(offsets[1:], lengths, n).positions(n, len(s))
    return s, doc, drop


def rows_of(singles, multis, repeats=()) -> dict[int, tuple[int, int]]:
    v, c, d = _merge_partials(singles, multis, repeats)
    return {int(x): (int(y), int(z)) for x, y, z in zip(v, c, d)}


def block_rows(block) -> dict[int, tuple[int, int]]:
    multis = [(block.multi, block.count, block.doc_freq)] if len(block.multi) else []
    return rows_of([block.singles], multis, [block.repeats])


def reference_rows(s, doc, drop) -> dict[int, tuple[int, int]]:
    keep = np.setdiff1d(np.arange(len(s)), drop)
    out: dict[int, tuple[int, set]] = {}
    for p in keep.tolist():
        c, docs = out.get(int(s[p]), (0, set()))
        out[int(s[p])] = (c + 1, docs | {int(doc[p])})
    return {v: (c, len(docs)) for v, (c, docs) in out.items()}


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_both_block_forms_hold_the_same_counts(n):
    texts = real_docs(40) + TRICKY + ["the the the the", "a b a b a b a b"]
    s, doc, drop = block_inputs(texts, n)
    expected = reference_rows(s, doc, drop)
    rows = bl._aggregate(s, doc, drop)
    occurrences = bl._aggregate_occurrences(s, doc, drop)
    assert block_rows(rows) == expected
    assert block_rows(occurrences) == expected
    # The occurrence form keeps every occurrence, sorted; the repeats are among them.
    assert len(occurrences.singles) == len(s) - len(drop)
    assert np.all(occurrences.singles[1:] >= occurrences.singles[:-1])
    assert np.isin(occurrences.repeats, occurrences.singles).all()
    # Both report the same values seen at least twice, with counts and a first position each.
    for block in (rows, occurrences):
        v, c, first = block.top
        assert {int(x): int(y) for x, y in zip(v, c)} == {x: y[0] for x, y in expected.items() if y[0] > 1}
        assert (s[first] == v).all()
        lone, lone_pos = block.lone()
        assert sorted(lone.tolist()) == sorted(x for x, y in expected.items() if y[0] == 1)
        assert (s[lone_pos] == lone).all()


def test_occurrence_form_resorts_shared_key_prefixes():
    a = np.uint64(0xABCDEF0123456780)
    b = a + np.uint64(1)
    c = np.uint64(0x0123456789ABCDE0)
    h = np.array([a, b, a, b, c, a], dtype=np.uint64)
    doc = np.array([0, 0, 0, 1, 1, 1], np.int32)
    block = bl._aggregate_occurrences(h, doc, None)
    assert block.singles.tolist() == sorted(h.tolist())
    assert block.repeats.tolist() == [int(a)]  # a's second occurrence in document 0
    assert block_rows(block) == {int(a): (3, 2), int(b): (2, 2), int(c): (1, 1)}


@pytest.mark.parametrize("form", ["rows", "occurrences", "adaptive"])
def test_tables_do_not_depend_on_the_block_form(form, monkeypatch, tmp_path):
    monkeypatch.setattr(ng, "_BLOCK_TOKENS", 60)
    monkeypatch.setattr(ng, "_UNIT_ROWS", 80)
    if form != "adaptive":
        monkeypatch.setattr(bl._Work, "form", lambda self, key, n: form == "occurrences")
    texts = real_docs(60) + ["x y x y x y", "same same same"]
    groups = [i % 3 for i in range(len(texts))]
    names = ["a", "b", "c"]
    expected = reference_stats(texts, groups, names, top_k=12, buckets=211, sample_rate=2)
    for budget in (None, 0, 5_000):
        _, stats = run_engine(texts, groups, names, batch=23, top_k=12, buckets=211, sample_rate=2,
                              memory_budget=budget, spill_dir=tmp_path)
        assert_same(stats, expected)


def test_form_follows_the_last_block():
    work = bl._Work()
    assert work.form((0, 1), 1) is False and work.form((0, 3), 3) is True
    work.share[(0, 3)] = 0.9
    work.share[(0, 1)] = 0.1
    assert work.form((0, 3), 3) is False and work.form((0, 1), 1) is True


def test_spill_round_trip_keeps_every_piece(tmp_path):
    texts = spill_corpus(1)[:200]
    part = _Partials()
    for n in (2, 3):
        for lo in range(0, len(texts), 50):
            s, doc, drop = block_inputs(texts[lo : lo + 50], n)
            block = bl._aggregate_occurrences(s, doc, drop) if n == 3 else bl._aggregate(s, doc, drop)
            part.singles.append(block.singles)
            part.repeats.append(block.repeats)
            if len(block.multi):
                part.multis.append((block.multi, block.count, block.doc_freq))
    expected = rows_of(part.singles, part.multis, part.repeats)
    spill, end = write_spill(tmp_path / "spill.bin", {(0, 2): part}, 8, 0)
    assert end == (tmp_path / "spill.bin").stat().st_size
    assert spill.rows((0, 2)) == part.rows()
    got: dict[int, tuple[int, int]] = {}
    with open(tmp_path / "spill.bin", "rb", buffering=0) as f:
        for p0, p1 in ((0, 3), (3, 4), (4, 8)):  # one, or several partitions at once
            singles, multis, repeats = [], [], []
            buf = np.empty(spill.words((0, 2), p0, p1) + 5, np.uint64)[: spill.words((0, 2), p0, p1)]
            spill.read(f, (0, 2), p0, p1, singles, multis, repeats, buf)
            rows = rows_of(singles, multis, repeats) if singles or multis else {}
            assert not set(rows) & set(got)  # a value lives in exactly one partition
            got.update(rows)
    assert got == expected


def test_tail_positions():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 6, 40)
    ends = np.cumsum(lengths)
    tails = bl._Tails(ends, lengths, 4)
    for n in (1, 2, 3, 4):
        count = int(ends[-1]) - n + 1
        expected = [p for d, e in enumerate(ends.tolist()) for p in range(e - lengths[d], e)
                    if p + n > e and p < count]
        assert sorted(tails.positions(n, count).tolist()) == expected


def test_encode_into_reused_buffers_matches_encode():
    tok = get_tokenizer()
    buffers = Buffers()
    docs = real_docs(30) + TRICKY
    kept = tok.encode(pa.array(docs[:20]))
    kept_hashes = kept.hashes.copy()
    for lo, hi in ((0, 50), (50, 60), (10, 200), (0, 3)):
        texts = pa.array(docs[lo:hi], pa.large_string())
        fresh = tok.encode(texts)
        into = tok.encode_into(texts, buffers)
        assert into.hashes.tolist() == fresh.hashes.tolist()
        assert into.doc_offsets.tolist() == fresh.doc_offsets.tolist()
        positions = np.arange(len(fresh.hashes))
        assert into.strings(positions) == fresh.strings(positions)
    # A batch of encode() owns its arrays: later calls with buffers do not touch it.
    assert kept.hashes.tolist() == kept_hashes.tolist()


def test_buffers_are_reused_and_grow():
    buffers = Buffers()
    a = buffers.get("x", 100, np.uint64)
    b = buffers.get("x", 50, np.uint64)
    assert np.shares_memory(a, b) and len(b) == 50
    c = buffers.get("x", 1000, np.uint64)
    assert len(c) == 1000 and not np.shares_memory(a, c)
    assert buffers.get("x", 10, np.int64).dtype == np.int64
    assert buffers.nbytes() >= 80


def test_finalise_into_buffers():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 2**64, 70_000, dtype=np.uint64)
    expected = _finalise(s, 3)
    out = np.empty_like(s)
    assert _finalise(s, 3, out, np.empty(1 << 15, np.uint64)) is out
    assert out.tolist() == expected.tolist()
    assert _finalise(s[:10], 3).tolist() == expected[:10].tolist()


def test_lowercase_fast_path_agrees_with_polars():
    import polars as pl

    from curator.stats import tokenize as tk

    rng = np.random.default_rng(5)
    # Code points from every plane region that holds cased letters, plus the two known exceptions.
    cps = np.concatenate([rng.integers(0x80, 0x3000, 3000), rng.integers(0xA640, 0xAB70, 500),
                          rng.integers(0x10400, 0x1E950, 500), [0x130, 0x3A3, 0x1E9E, 0x2C2F]])
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    docs = ["".join(chr(int(c)) for c in cps[i : i + 7]) + " Σ." * (i % 5 == 0) for i in range(0, len(cps), 7)]
    arr = pa.array(docs, pa.large_string())
    offsets, data = tk._buffers(arr)
    non_ascii, lead = tk._non_ascii_docs(offsets, data)
    got = tk._lowercase_docs(arr, non_ascii, lead).to_pylist()
    assert got == pl.Series(docs).str.to_lowercase().to_list()
    checked, differs = tk._case_tables()
    assert differs[0x130] and differs[0x3A3] and checked[cps].all()
