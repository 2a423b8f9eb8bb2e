"""text_stats_v1 against a plain-Python reference (str.split, str.isspace, str.isalpha)."""
from __future__ import annotations

import random
import re

import pyarrow as pa
import pytest

from curator.scorers import create, scorer_class
from curator.scorers.text_stats import TextStats
from curator.scorers.textbuf import TextBuffer, whitespace_words
from tests.conftest import shared_file

COLUMNS = ["chars", "words", "lines", "mean_word_length", "non_alpha_fraction"]


def reference(text: str | None) -> dict:
    text = text or ""
    words = text.split()
    nonspace = sum(not c.isspace() for c in text)
    alpha = sum(c.isalpha() for c in text)
    return {
        "chars": len(text),
        "words": len(words),
        "lines": text.count("\n") + (1 if text and not text.endswith("\n") else 0),
        "mean_word_length": sum(map(len, words)) / len(words) if words else None,
        "non_alpha_fraction": (nonspace - alpha) / nonspace if nonspace else None,
    }


def score(texts: list[str | None]) -> list[dict]:
    batch = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    scorer = TextStats()
    out = scorer.score(batch)
    assert scorer.check_output(batch, out).schema == scorer.output_schema()
    return out.to_pylist()


def assert_matches(texts: list[str | None]) -> None:
    for text, row in zip(texts, score(texts)):
        expected = reference(text)
        for column in COLUMNS:
            if isinstance(expected[column], float):
                assert row[column] == pytest.approx(expected[column], rel=1e-12), (column, text)
            else:
                assert row[column] == expected[column], (column, text)


EDGE = [
    "", None, " ", "   \t ", "\n", "\n\n", "a", "a\n", "word", "two words", "x\ny", "x\r\ny\r\n", "\ra\r",
    "Hello, world! 123", "end.", "  leading and trailing  ",
    "café naïve façade", "ÀÉÎÕÜ ß", "東京 大阪", "emoji 😀 😀!", "e\u0301 combining mark",  # marks are not letters
    "no\u00a0break\u2003em\u3000ideographic\u2028line\u2029para\u0085nel",  # Unicode whitespace
    "\x1c\x1d\x1e\x1f separators", "nul\x00byte", "١٢٣ arabic digits", "ⅫⅣ roman numerals",
]


def test_registered() -> None:
    assert scorer_class("text_stats_v1") is TextStats
    assert create("text_stats_v1").output_schema().names == COLUMNS


def test_edge_cases() -> None:
    assert_matches(EDGE)


def test_hand_computed() -> None:
    [row] = score(["Hi there.\nBye"])
    assert row == {"chars": 13, "words": 3, "lines": 2, "mean_word_length": 11 / 3, "non_alpha_fraction": 1 / 11}
    [empty] = score([None])
    assert empty == {"chars": 0, "words": 0, "lines": 0, "mean_word_length": None, "non_alpha_fraction": None}


def test_random_unicode() -> None:
    rng = random.Random(0)
    alphabet = "ab Z9.\n\t\u00a0é東😀\u2003-\u0301"
    assert_matches(["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(400)])


def test_very_long_document() -> None:
    text = ("lorem ipsum, dolor 42 sit\n" * 100_000) + "tail"
    assert_matches([text, "short"])


def test_words_follow_str_split() -> None:
    texts = ["a  b\tc\n\nd", " x", "y ", "\u00a0z\u3000", "", "ab"]
    buf = TextBuffer(pa.array(texts))
    words = whitespace_words(buf)
    data = buf.data.tobytes()
    found = [[data[s:e].decode() for s, e in zip(words.starts[a:b], words.ends[a:b])]
             for a, b in zip(words.doc_words[:-1], words.doc_words[1:])]
    assert found == [t.split() for t in texts]


def test_real_documents() -> None:
    speeches = re.split(r"\n\s*\n", shared_file("tinyshakespeare.txt").read_text("utf-8"))
    wiki = shared_file("wikitext2_valid.txt").read_text("utf-8").splitlines()
    assert_matches(speeches[:500] + wiki[:1500])
