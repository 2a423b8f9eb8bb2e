"""The compiled loops (curator/stats/_kernels.c) against the numpy code they replace: same numbers, bit for bit."""
from __future__ import annotations

import os
import shlex
import shutil
import sysconfig

import numpy as np
import pyarrow as pa
import pytest

from curator.stats import blocks as bl
from curator.stats import kernels
from curator.stats import ngrams as ng
from curator.stats.sorting import _top_selection
from curator.stats.tokenize import GOLDEN, get_tokenizer
from curator.stats.values import _finalise
from tests.stats.test_engine_parts import block_rows
from tests.stats.test_ngrams import TRICKY, real_docs

LIB = kernels.LIB
needs_lib = pytest.mark.skipif(LIB is None, reason=f"compiled kernels not loaded: {kernels.status()}")


def _compiler() -> str | None:
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    return shutil.which(cc[0]) if cc else None


def test_kernels_are_built_where_a_compiler_exists():
    # A broken build would otherwise go unnoticed: everything still passes on the numpy code.
    if os.environ.get("CURATOR_KERNELS") == "0":
        pytest.skip("CURATOR_KERNELS=0 turns the compiled kernels off")
    if _compiler() is None:
        pytest.skip("no C compiler on this machine: the package uses its numpy code")
    assert LIB is not None, kernels.status()
    assert kernels.status().startswith("compiled")


def test_a_library_of_another_abi_is_refused(monkeypatch):
    if not kernels._PATH.is_file():
        pytest.skip("no compiled library to load")
    monkeypatch.delenv("CURATOR_KERNELS", raising=False)
    monkeypatch.setattr(kernels, "ABI", kernels.ABI + 1)
    lib, why = kernels._load()
    assert lib is None and "reinstall" in why


def test_kernels_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("CURATOR_KERNELS", "0")
    lib, why = kernels._load()
    assert lib is None and "CURATOR_KERNELS=0" in why


@pytest.fixture
def numpy_only(monkeypatch):
    """Run the engine on its numpy code for the duration of a block."""
    def off():
        monkeypatch.setattr(kernels, "LIB", None)
    return off


LONG = "x" * 1_000_003
TEXTS = TRICKY + [
    "", "   ", "Ünïcödé wörds ΣΊΣΥΦΟΣ ΟΔΟΣ İstanbul straße ǅemal", "日本語のテキスト、中文字符 和 한국어",
    "supercalifragilisticexpialidocious antidisestablishmentarianism 1234567890123456789",
    "mixed123abc ABC_def ghi-jkl 3.14159 e=mc² naïve café résumé", LONG + " tail", "a" * 8 + " " + "b" * 9,
    "emoji 😀 between 🙈words", "tab\tseparated\nnew line\r\ncarriage", "ends with word" , "Ⅻ roman ½ half",
]


@needs_lib
def test_tokenizer_matches_numpy(numpy_only):
    tok = get_tokenizer("word_v1")
    texts = pa.array(real_docs(200) + TEXTS, pa.large_string())
    compiled = tok.encode(texts)
    c_hashes, c_offsets = compiled.hashes.copy(), compiled.doc_offsets.copy()
    c_strings = compiled.strings(np.arange(0, len(c_hashes), 7))
    numpy_only()
    ref = tok.encode(texts)
    assert np.array_equal(c_offsets, ref.doc_offsets)
    assert np.array_equal(c_hashes, ref.hashes)
    assert c_strings == ref.strings(np.arange(0, len(ref.hashes), 7))


@needs_lib
def test_tokenizer_on_ascii_only_and_empty_batches(numpy_only):
    tok = get_tokenizer("word_v1")
    batches = [pa.array([], pa.large_string()), pa.array(["", None, ""], pa.large_string()),
               pa.array(["Plain ASCII, only: 42 words!"] * 3, pa.string())]
    compiled = [(b.hashes.copy(), b.doc_offsets.copy()) for b in map(tok.encode, batches)]
    numpy_only()
    for (h, o), batch in zip(compiled, batches):
        ref = tok.encode(batch)
        assert np.array_equal(h, ref.hashes) and np.array_equal(o, ref.doc_offsets)


@needs_lib
@pytest.mark.parametrize("seed", range(6))
def test_tokenizer_matches_numpy_on_random_bytes_across_windows(numpy_only, seed):
    # The compiled tokenizer classifies 64-byte windows at a time: tokens, separator runs and
    # multi-byte characters must come out the same wherever they fall against a window's edges,
    # a document's edges and the end of the data (where it goes byte by byte).
    rng = np.random.default_rng(seed)
    alphabet = list("abcXYZ019 _.,-\t\n@[`{/:") + ["é", "Σ", "日", "😀", "ǅ", "½", "\u0301", "\u00a0"]
    weights = np.array([8.0] * 9 + [6.0] + [1.0] * 12 + [0.4] * 8)
    docs = []
    for _ in range(300):
        n = int(rng.integers(0, 200))
        docs.append("".join(rng.choice(alphabet, n, p=weights / weights.sum())))
    docs += ["w" * 63, "w" * 64, "w" * 65, "w" * 127 + " " + "v" * 129, " " * 64 + "x", ""]
    # ASCII words of 1..80 bytes: runs that end on, start on and straddle the 64-byte windows' edges,
    # in windows that are ASCII throughout (taken by bit masks) and in ones with a multi-byte character.
    for _ in range(100):
        words = ["".join(rng.choice(list("abcXYZ019"), int(rng.integers(1, 81)))) for _ in range(int(rng.integers(1, 9)))]
        seps = rng.choice([" ", ", ", "\n", " é ", "é", "-"], len(words), p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
        docs.append("".join(w + s for w, s in zip(words, seps)))
    tok = get_tokenizer("word_v1")
    batches = [pa.array(docs, pa.large_string()), pa.array([d for d in docs if d.isascii()], pa.large_string()),
               pa.array(docs[:7], pa.large_string())]
    compiled = [(b.hashes.copy(), b.doc_offsets.copy(), b.strings(np.arange(len(b.hashes))))
                for b in map(tok.encode, batches)]
    numpy_only()
    for (h, o, s), batch in zip(compiled, batches):
        ref = tok.encode(batch)
        assert np.array_equal(o, ref.doc_offsets)
        assert np.array_equal(h, ref.hashes)
        assert s == ref.strings(np.arange(len(ref.hashes)))


@needs_lib
@pytest.mark.parametrize("seed", range(3))
def test_non_ascii_documents_match_numpy(seed):
    # Which documents hold a byte >= 0x80, and where their lead bytes are: the compiled scan (64 bytes
    # at a time, then byte by byte) against the numpy one, with too little room for the leads at first.
    from curator.stats import tokenize as tk
    from curator.stats.buffers import Buffers

    rng = np.random.default_rng(seed)
    pieces = ["a", " ", "é", "日本", "😀", "x" * 70, "Σ", "\n"]
    docs = ["".join(rng.choice(pieces, int(rng.integers(0, 40)), p=[0.3, 0.2, 0.02, 0.01, 0.01, 0.4, 0.01, 0.05]))
            for _ in range(400)]
    docs += ["", "a" * 64, "a" * 63 + "é", "a" * 64 + "é", "é" * 40, "b" * 100 + "ü" * 5000]
    arr = pa.array(docs, pa.large_string())
    offsets, data = tk._buffers(arr)
    want_docs, want_lead = tk._non_ascii_docs(offsets, data)
    for buffers in (None, Buffers()):
        got_docs, got_lead = tk._non_ascii_compiled(offsets, data, buffers)
        assert np.array_equal(got_docs, want_docs) and np.array_equal(got_lead, want_lead)
        assert len(want_lead) > 1 << 12  # the first call had too little room
    ascii_only = pa.array(["abc", "", "x y"], pa.large_string())
    got_docs, got_lead = tk._non_ascii_compiled(*tk._buffers(ascii_only), None)
    assert len(got_docs) == 0 and len(got_lead) == 0


@needs_lib
@pytest.mark.parametrize("data", [b"", b"no newline", b"\n", b"a\nb\n\nc", b"\n" * 5000, b"x" * 70 + b"\n" * 3000])
def test_newlines_match_numpy(data):
    # The last two have more newlines than the first guess at their number leaves room for.
    arr = np.frombuffer(data, np.uint8)
    assert np.array_equal(kernels.newlines(arr), np.flatnonzero(arr == 10))


def _stats_tables(texts, groups, names, **options):
    with ng.NgramAccumulator(**options) as acc:
        for i in range(0, len(texts), 37):
            acc.update(pa.array(texts[i:i + 37], pa.large_string()), np.asarray(groups[i:i + 37]))
        stats = acc.finish(names)
    return {name: getattr(stats, name).to_pylist() for name in ("totals", "buckets", "top", "sample")}


@needs_lib
@pytest.mark.parametrize("budget", [None, 0])
def test_engine_tables_match_numpy(budget, numpy_only, monkeypatch, tmp_path):
    monkeypatch.setattr(ng, "_BLOCK_TOKENS", 500)  # many blocks, both forms, spills with budget 0
    texts = real_docs(150) + TEXTS[:-5] + ["x y x y x y", "same same same same"] * 3
    groups = [i % 2 for i in range(len(texts))]
    options = dict(ns=(1, 2, 3, 5), top_k=15, buckets=97, sample_rate=2, memory_budget=budget, spill_dir=tmp_path)
    compiled = _stats_tables(texts, groups, ["a", "b"], **options)
    numpy_only()
    assert compiled == _stats_tables(texts, groups, ["a", "b"], **options)


@needs_lib
@pytest.mark.parametrize("occurrences", [False, True])
def test_shared_key_prefixes_are_resorted_in_the_fused_path(occurrences):
    # Positions take the low 3 bits of a 5-value block's keys; a and b differ only there.
    a = np.uint64(0xABCDEF0123456780)
    b = a + np.uint64(1)
    c = np.uint64(0x0123456789ABCDE0)
    tok = np.array([a, b, a, b, c], np.uint64)
    doc = np.array([0, 0, 0, 1, 1], np.int32)
    work = bl._Work()
    block = bl._aggregate_next(tok, tok, tok, 1, ng.NGRAM_K, doc, np.array([3, 5], np.int64), work, occurrences)
    assert block_rows(block) == {int(a): (2, 1), int(b): (2, 2), int(c): (1, 1)}


@needs_lib
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_block_keys_drop_every_position_that_starts_no_ngram(n):
    # Documents of 0..6 tokens (empty ones among them), the last one cut by the block's count as in
    # the engine: a position starts an n-gram when its document has n - 1 more tokens after it.
    rng = np.random.default_rng(n)
    lengths = rng.integers(0, 7, 300)
    doc_end = np.cumsum(lengths).astype(np.int64)
    m = int(doc_end[-1])
    doc = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    tok = rng.integers(0, 2**63, m, dtype=np.uint64)
    prev = tok.copy()
    for _ in range(2, n):
        prev = prev[:-1] * np.uint64(ng.NGRAM_K) + tok[len(tok) - len(prev) + 1 :]
    count = m - n + 1
    s = tok if n == 1 else np.empty(count, np.uint64)
    low = bl._low_mask(count)
    key = np.empty(count, np.uint64)
    dropped = kernels.block_keys(prev, s, tok, n, ng.NGRAM_K, doc_end, low, key)
    expect_s = tok.copy()
    for j in range(1, n):
        expect_s = expect_s[:-1] * np.uint64(ng.NGRAM_K) + tok[j:]
    assert np.array_equal(s[:count], expect_s)
    i = np.arange(count)
    none = i + n > doc_end[doc[:count]]
    assert dropped == int(none.sum()) and (n == 1 or dropped > 0)
    expect_key = (expect_s & ~low) | i.astype(np.uint64)
    expect_key[none] = np.uint64(2**64 - 1)
    assert np.array_equal(key, expect_key)


@needs_lib
def test_top_rows_matches_top_selection():
    rng = np.random.default_rng(7)
    for _ in range(200):
        values = np.unique(rng.integers(0, 2**64 - 1, int(rng.integers(2, 2000)), dtype=np.uint64))
        counts = rng.integers(1, int(rng.integers(2, 40)), len(values)).astype(np.int64)
        k = int(rng.integers(1, len(values)))
        n = int(rng.integers(1, 5))
        got = kernels.top_rows(values, counts, k, (n * GOLDEN) % 2**64)
        want = _top_selection(counts, k, lambda idx: _finalise(values[idx], n))
        assert sorted(got.tolist()) == sorted(want.tolist())


@needs_lib
@pytest.mark.parametrize("case", ["big_counts", "many_ties", "few_ties"])
def test_top_rows_histogram_edges(case):
    # The k-th count comes from a histogram of 1024 bins (the top bin open: then by selection); the
    # tied rows' hashes are first filtered by a guessed bound (all of them when it falls short).
    rng = np.random.default_rng({"big_counts": 1, "many_ties": 2, "few_ties": 3}[case])
    for _ in range(300):
        m = int(rng.integers(2, 3000))
        values = np.unique(rng.integers(0, 2**64 - 1, m, dtype=np.uint64))
        if case == "big_counts":  # around and past the open top bin
            counts = rng.integers(1000, 1050, len(values)) * rng.integers(1, 3, len(values))
        elif case == "many_ties":
            counts = np.where(rng.random(len(values)) < 0.02, rng.integers(3, 9, len(values)), 2)
        else:  # 2-4 tied rows at the k-th count: the guessed bound often keeps too few
            counts = np.full(len(values), 1)
            counts[: int(rng.integers(1, len(values)))] = 5
            counts[rng.permutation(len(values))[: int(rng.integers(1, 5))]] = 3
        counts = counts.astype(np.int64)
        k = int(rng.integers(1, len(values))) if len(values) > 1 else None
        if k is None:
            continue
        n = int(rng.integers(1, 5))
        got = kernels.top_rows(values, counts, k, (n * GOLDEN) % 2**64)
        want = _top_selection(counts, k, lambda idx: _finalise(values[idx], n))
        assert sorted(got.tolist()) == sorted(want.tolist())


@needs_lib
def test_run_counts():
    rng = np.random.default_rng(3)
    s = np.sort(rng.integers(0, 50, 10_000).astype(np.uint64))
    values, counts = np.empty(len(s), np.uint64), np.empty(len(s), np.int64)
    u = kernels.run_counts(s, values, counts)
    want_v, want_c = np.unique(s, return_counts=True)
    assert values[:u].tolist() == want_v.tolist() and counts[:u].tolist() == want_c.tolist()
    assert kernels.run_counts(s[:0], values, counts) == 0
    # Runs at the very start and end, single elements, all equal, all distinct.
    for case in ([7], [7, 7], [1, 2, 2, 2, 3], [5] * 100, list(range(100)), [0, 0, 2**64 - 1, 2**64 - 1]):
        s = np.array(case, np.uint64)
        u = kernels.run_counts(s, values, counts)
        want_v, want_c = np.unique(s, return_counts=True)
        assert values[:u].tolist() == want_v.tolist() and counts[:u].tolist() == want_c.tolist()


@needs_lib
@pytest.mark.parametrize("buckets", [1, 2, 3, 7, 10_000, 65_536, 1_000_003])
def test_fold_rows_matches_numpy(buckets):
    # The histogram's remainder is computed by a multiply: check it against numpy's %, also for
    # hashes at the top of the range, and the sample rows against a plain comparison.
    rng = np.random.default_rng(buckets)
    v = np.concatenate([rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64, endpoint=True),
                        np.array([0, 1, 2**63, 2**64 - 1], np.uint64)])
    c = rng.integers(1, 50, len(v)).astype(np.int64)
    n = 3
    salt = (n * GOLDEN) % 2**64
    hist = np.zeros(buckets, np.int64)
    h, keep = np.empty(len(v), np.uint64), np.empty(len(v), np.int64)
    limit = 2**64 // 16
    kept = kernels.fold_rows(v, c, salt, buckets, hist, limit, h, keep)
    want_h = _finalise(v, n)
    assert np.array_equal(h, want_h)
    assert np.array_equal(hist, np.bincount((want_h % np.uint64(buckets)).astype(np.int64), weights=c,
                                            minlength=buckets).astype(np.int64))
    assert keep[:kept].tolist() == np.flatnonzero(want_h < np.uint64(limit)).tolist()
    assert kernels.fold_rows(v, c, salt, buckets, hist, 0, h, keep) == 0  # limit 0: no sample
