"""repetition_v1 against plain-Python references of both variants, and against datatrove's own code."""
from __future__ import annotations

import math
import random
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from curator.errors import UsageError
from curator.scorers import create, scorer_class
from curator.scorers import greedy_scan, grouping
from curator.scorers import repetition as rep
from curator.scorers.repetition import COLUMNS, DUP_N, TOP_N, Repetition
from tests.conftest import shared_file

TOL = 1e-9

# ---------------------------------------------------------------------------------- references


def ref_datatrove(text: str | None) -> dict | None:
    """datatrove 0.10.1's GopherRepetitionFilter arithmetic with str.split() words, in plain Python."""
    if not text:
        return None
    out = {}

    def later_copies(items: list[str]) -> tuple[int, int]:
        seen, count, chars = set(), 0, 0
        for item in items:
            if item in seen:
                count += 1
                chars += len(item)
            else:
                seen.add(item)
        return count, chars

    paragraphs = re.split(r"\n{2,}", text.strip())
    count, chars = later_copies(paragraphs)
    out["dup_para_frac"], out["dup_para_char_frac"] = count / len(paragraphs), chars / len(text)
    lines = re.split("\n+", text)
    count, chars = later_copies(lines)
    out["dup_line_frac"], out["dup_line_char_frac"] = count / len(lines), chars / len(text)
    words = text.split()
    for n in TOP_N:
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        top = Counter(grams).most_common(1)
        out[f"top_{n}gram_char_frac"] = len(top[0][0]) * top[0][1] / len(text) if top else 0.0
    for n in DUP_N:
        seen, chars, i = set(), 0, 0
        while i < len(words) - n + 1:
            gram = "".join(words[i : i + n])
            if gram in seen:
                chars += len(gram)
                i += n
            else:
                seen.add(gram)
                i += 1
        out[f"dup_{n}gram_char_frac"] = chars / len(text)
    return out


def ref_gopher(text: str | None) -> dict | None:
    """The gopher variant as its docstring defines it, in plain Python."""
    if not text:
        return None
    out = {}
    lines = text.split("\n")
    filled = [line for line in lines if line.strip()]
    paragraphs, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append("\n".join(current))
            current = []

    def every_copy(units: list[str]) -> tuple[float | None, float | None]:
        if not units:
            return None, None
        counts = Counter(units)
        dup = [u for u in units if counts[u] > 1]
        return len(dup) / len(units), sum(map(len, dup)) / sum(map(len, units))

    out["dup_line_frac"], out["dup_line_char_frac"] = every_copy(filled)
    out["dup_para_frac"], out["dup_para_char_frac"] = every_copy(paragraphs)
    words = text.split()
    total = sum(map(len, words))
    for n in (*TOP_N, *DUP_N):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        if n in TOP_N:
            best = max(counts.values(), default=0)
            value = 0
            if best >= 2:
                for gram in (g for g, c in counts.items() if c == best):
                    covered = {j for i, g in enumerate(grams) if g == gram for j in range(i, i + n)}
                    value = max(value, sum(len(words[j]) for j in covered))
            key = f"top_{n}gram_char_frac"
        else:
            covered = {j for i, g in enumerate(grams) if counts[g] > 1 for j in range(i, i + n)}
            value = sum(len(words[j]) for j in covered)
            key = f"dup_{n}gram_char_frac"
        out[key] = value / total if total else None
    return out


REFERENCES = {"datatrove": ref_datatrove, "gopher": ref_gopher}


def score(texts: list[str | None], variant: str = "datatrove") -> list[dict]:
    batch = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    scorer = Repetition(variant=variant)
    out = scorer.score(batch)
    assert scorer.check_output(batch, out).num_rows == len(texts)
    return out.to_pylist()


def assert_matches(texts: list[str | None], variant: str, reference=None) -> None:
    reference = reference or REFERENCES[variant]
    for text, row in zip(texts, score(texts, variant)):
        assert row["variant"] == variant
        expected = reference(text)
        for column in COLUMNS:
            want = None if expected is None else expected[column]
            got = row[column]
            if want is None or got is None:
                assert got is None and want is None, (column, text[:200] if text else text, got, want)
            else:
                assert abs(got - want) <= TOL, (column, text[:200], got, want)


# ---------------------------------------------------------------------------------- inputs

EDGE = [
    "", None, " ", "\n", "\n\n\n", " \t\n \u00a0\u3000", "a", "word", "a a", "a a a a", "a b a b a b a b",
    "x\n\nx\n\nx", "\nfoo\nfoo\n", "foo\r\nfoo\r\n", "line\nline\n\n\nline\n \nline",
    "the cat sat on the mat the cat sat on the mat the cat",
    "a b c d e f a b c d e g a b c d e f a b c d e f",
    "ab c d e f g h a bc d e f g h",  # datatrove keys 5..10-grams by "".join: these two collide there
    "café naïve café naïve café naïve café naïve café naïve café",
    "東京 大阪 東京 大阪 東京 大阪 東京 大阪 東京 大阪 東京 大阪",
    "emoji 😀 😀 emoji 😀 😀 emoji 😀 😀 emoji 😀 😀",
    "a\u00a0b c\u2003d a\u00a0b c\u2003d a\u00a0b c\u2003d",  # Unicode spaces split words
    "nul\x00byte x nul\x00byte x nul\x00byte x \x00 \x00",
    "x" * 100 + " " + "x" * 100 + " y " + "x" * 100 + " " + "x" * 100,  # long words (byte-level path)
]


def random_texts(seed: int, count: int, vocab: list[str], max_words: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = rng.sample(vocab, rng.randint(1, len(vocab)))
        out.append(" ".join(rng.choice(words) for _ in range(rng.randint(0, max_words))))
    return out


# Short words whose concatenations coincide ("ab"+"c" = "a"+"bc"), newlines and blank lines: every
# corner of both variants (hidden first copies for datatrove's scan, ties, overlaps).
TRICKY_VOCAB = ["a", "b", "c", "ab", "bc", "abc", "x", "\n", "\n\n", " \n", "é", "\u00a0"]


# ---------------------------------------------------------------------------------- plugin contract


def test_registered_with_defaults() -> None:
    scorer = create("repetition_v1")
    assert isinstance(scorer, Repetition)
    assert scorer_class("repetition_v1") is Repetition
    assert scorer.config.variant == "datatrove" and scorer.config.tokenizer == "whitespace"
    assert scorer.output_schema().names == ["variant", *COLUMNS]
    assert create("repetition_v1", {"variant": "gopher"}).config_hash != scorer.config_hash


@pytest.mark.parametrize("options, message", [
    ({"variant": "nemo"}, "variant must be one of datatrove, gopher, got 'nemo'"),
    ({"tokenizer": "spacy"}, "tokenizer must be one of whitespace, got 'spacy'"),
    ({"n": "5"}, "unknown option(s) ['n']"),
])
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        create("repetition_v1", options)


def test_output_shape_and_types() -> None:
    batch = pa.table({"sample_id": ["a", "b"], "text": ["x y x y", None]})
    out = Repetition().score(batch)
    assert out.num_rows == 2
    assert out.schema == Repetition().output_schema()


# ---------------------------------------------------------------------------------- small inputs


@pytest.mark.parametrize("variant", ["datatrove", "gopher"])
def test_edge_cases(variant: str) -> None:
    assert_matches(EDGE, variant)


def test_hand_computed_values() -> None:
    dt = {r["variant"] + str(i): r for i, r in enumerate(score(["a a a a", "\nfoo\nfoo\n", ""]))}
    assert dt["datatrove0"]["top_2gram_char_frac"] == pytest.approx(3 * 3 / 7)  # overlaps all count
    # lines "", "foo", "foo", "": the second "" and "foo" are later copies
    assert dt["datatrove1"]["dup_line_frac"] == pytest.approx(2 / 4)
    assert dt["datatrove1"]["dup_line_char_frac"] == pytest.approx(3 / 9)
    assert all(dt["datatrove2"][c] is None for c in COLUMNS)
    go = score(["foo\nfoo", "a a a a", "   "], "gopher")
    assert go[0]["dup_line_frac"] == 1.0 and go[0]["dup_line_char_frac"] == 1.0  # every copy counts
    assert go[1]["top_2gram_char_frac"] == 1.0  # overlapping copies counted once
    assert all(go[2][c] is None for c in COLUMNS)  # no lines, paragraphs or words: nothing to divide


def test_datatrove_concatenation_keys() -> None:
    # ["ab","c","d","e","f"] and ["a","bc","d","e","f"] are one key in datatrove ("".join), so the second
    # is a duplicate there; the gopher variant compares word tuples.
    text = "ab c d e f a bc d e f"
    [row] = score([text])
    assert row["dup_5gram_char_frac"] == pytest.approx(len("abcdef") / len(text))
    [row] = score([text], "gopher")
    assert row["dup_5gram_char_frac"] == 0.0


@pytest.mark.parametrize("variant", ["datatrove", "gopher"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_repetitive_texts(variant: str, seed: int) -> None:
    assert_matches(random_texts(seed, 300, TRICKY_VOCAB, 120), variant)


def test_datatrove_scan_corrections() -> None:
    # Long documents over 2-3 words hide many first copies inside jumps: many rounds of corrections.
    texts = random_texts(7, 6, ["a", "b", "ab", "c"], 3000)
    assert_matches(texts, "datatrove")


def walk(cand: list[bool], n: int) -> list[int]:
    """The chain of hits over candidates, position by position (greedy_scan._chain's definition)."""
    hits, i = [], 0
    while i < len(cand):
        if cand[i]:
            hits.append(i)
            i += n
        else:
            i += 1
    return hits


@pytest.mark.parametrize("n", [5, 7, 10])
def test_chain_follows_the_walk(n: int) -> None:
    # Dense candidates take the column-run path, sparse ones the candidate-by-candidate path.
    rng = np.random.default_rng(n)
    for density in (0.02, 0.3, 0.8, 0.97, 1.0):
        for length in (0, 1, n, 5 * n + 3, 997):
            cand = np.zeros((length // n + 2) * n, bool)
            cand[:length] = rng.random(length) < density
            hits, sure = greedy_scan._chain(cand, n)
            expected = walk(cand.tolist(), n)
            assert sorted(hits.tolist()) == expected, (density, length)
            assert set(sure.tolist()) <= set(expected)


def test_independent_of_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = EDGE + random_texts(3, 60, TRICKY_VOCAB, 80)
    whole = {v: score(texts, v) for v in ("datatrove", "gopher")}
    monkeypatch.setattr(rep, "SLICE_BYTES", 50)  # many slices, and documents larger than one
    for variant, rows in whole.items():
        assert score(texts, variant) == rows
        assert [score([t], variant)[0] for t in texts[:20]] == rows[:20]


def test_arrow_inputs() -> None:
    texts = ["x y x y", None, "a b c", "x y x y"]
    expected = score(texts)
    chunked = pa.chunked_array([pa.array(texts[:2], pa.large_string()), pa.array(texts[2:], pa.large_string())])
    out = Repetition().score(pa.table({"sample_id": list("abcd"), "text": chunked}))
    assert out.to_pylist() == expected
    sliced = pa.table({"sample_id": list("zabcd"), "text": ["skip me"] + texts}).slice(1)
    assert Repetition().score(sliced).to_pylist() == expected
    empty = pa.table({"sample_id": pa.array([], pa.string()), "text": pa.array([], pa.string())})
    assert Repetition().score(empty).num_rows == 0


def test_very_long_document() -> None:
    rng = random.Random(5)
    words = [f"w{rng.randrange(2000)}" for _ in range(50_000)]
    text = " ".join(words[:30_000] + words[:10_000] + words[30_000:])  # a long repeated passage
    [row] = score([text])
    expected = ref_datatrove(text)
    for column in COLUMNS:
        assert abs(row[column] - expected[column]) <= TOL, column


def test_grouping_survives_shared_high_bits() -> None:
    # Keys whose spread values differ only in their low bits take the exact re-sort path.
    inverse = pow(int(grouping._SPREAD), -1, 2**64)
    values = [5, 3, 5, 7, 3, 3, 9, 5]
    keys = np.array([(v * inverse) % 2**64 for v in values], np.uint64)
    groups = grouping.group_keys(keys)
    found = [sorted(groups.order[a:b].tolist()) for a, b in zip(groups.starts[:-1], groups.starts[1:])]
    expected = {}
    for i, v in enumerate(values):
        expected.setdefault(v, []).append(i)
    assert sorted(found) == sorted(expected.values())
    assert all(groups.order[a:b].tolist() == sorted(groups.order[a:b].tolist())
               for a, b in zip(groups.starts[:-1], groups.starts[1:]))


# ---------------------------------------------------------------------------------- real documents


def real_documents() -> list[str]:
    """A few hundred documents: Shakespeare speeches (and scenes of 12 speeches, where speaker names and
    short lines repeat) and WikiText-2 paragraphs and whole articles."""
    speeches = [s for s in re.split(r"\n\s*\n", shared_file("tinyshakespeare.txt").read_text("utf-8")) if s.strip()]
    scenes = ["\n\n".join(speeches[i : i + 12]) for i in range(0, 12 * 120, 12)]
    wiki = shared_file("wikitext2_valid.txt").read_text("utf-8")
    articles = [a for a in re.split(r"\n(?= = [^=].* = \n)", wiki) if a.strip()]
    paragraphs = [p.strip() for p in wiki.splitlines() if len(p.strip()) > 200][:150]
    return speeches[:100] + scenes + paragraphs + articles[:25]


@pytest.fixture(scope="module")
def real_docs() -> list[str]:
    return real_documents()


@pytest.mark.parametrize("variant", ["datatrove", "gopher"])
def test_real_documents_against_reference(real_docs: list[str], variant: str) -> None:
    assert_matches(real_docs[:300], variant)


@pytest.fixture(scope="module")
def datatrove():
    """datatrove's GopherRepetitionFilter with a str.split() word tokenizer, and its fractions: the statements
    of GopherRepetitionFilter.filter, with each comparison replaced by the value it tests."""
    import logging

    from datatrove.pipeline.filters.gopher_repetition_filter import (
        GopherRepetitionFilter,
        find_all_duplicate,
        find_duplicates,
        find_top_duplicate,
        get_n_grams,
    )
    from datatrove.utils.text import split_into_words
    from datatrove.utils.word_tokenizers import WordTokenizer

    logging.disable(logging.WARNING)

    class WhitespaceTokenizer(WordTokenizer):
        def __init__(self) -> None:
            super().__init__("en")

        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    flt = GopherRepetitionFilter(language=WhitespaceTokenizer())

    def fractions(text: str) -> dict | None:
        if not text:
            return None
        out = {}
        paragraphs = flt.paragraph_exp.split(text.strip())
        dups, chars = find_duplicates(paragraphs)
        out["dup_para_frac"], out["dup_para_char_frac"] = dups / len(paragraphs), chars / len(text)
        lines = flt._line_splitter.split(text)
        dups, chars = find_duplicates(lines)
        out["dup_line_frac"], out["dup_line_char_frac"] = dups / len(lines), chars / len(text)
        words = split_into_words(text, flt.language)
        for n, _ in flt.top_n_grams:
            grams = get_n_grams(words, n)
            out[f"top_{n}gram_char_frac"] = find_top_duplicate(grams) / len(text) if grams else 0.0
        for n, _ in flt.dup_n_grams:
            out[f"dup_{n}gram_char_frac"] = find_all_duplicate(words, n) / len(text)
        return out

    return flt, fractions


def assert_datatrove_values(docs: list[str | None], fractions) -> list[dict]:
    rows = score(docs)
    for i, (text, row) in enumerate(zip(docs, rows)):
        expected = fractions(text)
        for column in COLUMNS:
            if expected is None:
                assert row[column] is None
            else:
                assert abs(row[column] - expected[column]) <= TOL, (i, column, row[column], expected[column])
    return rows


def test_datatrove_differential(real_docs: list[str], datatrove) -> None:
    """The datatrove variant equals the fractions of datatrove's own GopherRepetitionFilter code (with a
    whitespace word tokenizer), and thresholding them as its filter() does gives its verdicts."""
    from datatrove.data import Document

    flt, fractions = datatrove

    def verdict(row: dict) -> bool | tuple[bool, str]:
        if row["dup_para_frac"] is None:
            return False, "empty"
        checks = [("dup_para_frac", flt.dup_para_frac, "dup_para_frac"),
                  ("dup_para_char_frac", flt.dup_para_char_frac, "dup_para_char_frac"),
                  ("dup_line_frac", flt.dup_line_frac, "dup_line_frac"),
                  ("dup_line_char_frac", flt.dup_line_char_frac, "dup_line_char_frac")]
        checks += [(f"top_{n}gram_char_frac", t, f"top_{n}_gram") for n, t in flt.top_n_grams]
        checks += [(f"dup_{n}gram_char_frac", t, f"duplicated_{n}_n_grams") for n, t in flt.dup_n_grams]
        for column, threshold, reason in checks:
            if row[column] > threshold:
                return False, reason
        return True

    rng = random.Random(11)
    # plus repetitive variants (a paragraph repeated with small edits), the kind the filter exists for
    repeated = []
    for doc in real_docs[100:160]:
        words = doc.split()[:80]
        copies = [" ".join(w if rng.random() > 0.05 else "X" for w in words) for _ in range(rng.randint(2, 5))]
        repeated.append("\n".join(copies))
    docs = real_docs + repeated + EDGE
    rows = assert_datatrove_values(docs, fractions)
    reasons = Counter()
    for i, (text, row) in enumerate(zip(docs, rows)):
        got = flt.filter(Document(text=text or "", id=str(i)))
        assert verdict(row) == got, (i, got)
        reasons[got if got is True else got[1]] += 1
    assert len(docs) >= 300 and len(reasons) >= 4  # the documents exercise several of the filter's rules


def looping_texts(sentences: list[str], seed: int, count: int, words: tuple[int, int]) -> list[str]:
    """Generations stuck in a loop: one to four sentences repeated, each copy varied with some probability
    (a word replaced, dropped or inserted, or a counter), after a natural prefix in half of them; lengths
    drawn log-uniformly between ``words``."""
    rng = random.Random(seed)
    vocab = sorted({w for s in sentences for w in s.split()})
    out = []
    for _ in range(count):
        target = int(math.exp(rng.uniform(math.log(words[0]), math.log(words[1]))))
        parts, length = [], 0
        if rng.random() < 0.5:
            prefix = " ".join(rng.sample(sentences, 8)).split(" ")[: rng.randint(20, max(20, target // 2))]
            parts.append(" ".join(prefix))
            length += len(prefix)
        start = rng.randrange(len(sentences) - 4)
        loop = [s.split(" ") for s in sentences[start : start + rng.randint(1, 4)]]
        vary = rng.choice([0.0, 0.1, 0.3, 0.7])
        copy = 0
        while length < target:
            copy += 1
            for sentence in loop:
                sentence = list(sentence)
                if rng.random() < vary:
                    j, kind = rng.randrange(len(sentence)), rng.random()
                    if kind < 0.4:
                        sentence[j] = rng.choice(vocab)
                    elif kind < 0.6 and len(sentence) > 1:
                        del sentence[j]
                    elif kind < 0.8:
                        sentence.insert(j, rng.choice(vocab))
                    else:
                        sentence[j] = str(copy)
                parts.append(" ".join(sentence))
                length += len(sentence)
        out.append(rng.choice([" ", "\n", "\n\n"]).join(parts))
    return out


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    wiki = shared_file("wikitext2_valid.txt").read_text("utf-8")
    return [s for s in re.split(r"(?<=[.!?]) ", wiki) if len(s.split()) >= 4 and "\n" not in s][:3000]


def test_looping_texts_against_datatrove(sentences: list[str], datatrove) -> None:
    """Text looping on itself (nearly every n-gram repeats, the first copies of many keys hide inside
    jumps) against datatrove's own functions: short and long loops, up to 20,000 words, one batch."""
    _, fractions = datatrove
    docs = looping_texts(sentences, 1, 24, (200, 3000)) + looping_texts(sentences, 2, 3, (15_000, 20_000))
    assert max(len(d.split()) for d in docs) >= 15_000
    assert_datatrove_values(docs, fractions)


def test_looping_texts_in_small_slices(sentences: list[str], datatrove, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same values whatever the slicing, natural and looping documents mixed."""
    _, fractions = datatrove
    docs = looping_texts(sentences, 3, 30, (200, 1500))
    docs = [d for pair in zip(docs, sentences[::50]) for d in pair]
    monkeypatch.setattr(rep, "SLICE_BYTES", 20_000)
    assert_datatrove_values(docs, fractions)
