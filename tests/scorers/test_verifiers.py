"""Text verifiers: gsm8k_answer_v1, exact_match_v1, regex_v1, python_v1."""
from __future__ import annotations

import json
import pickle
import re
import textwrap

import pyarrow as pa
import pytest

from curator.errors import UsageError
from curator.scorers import create, scorer_class
from curator.scorers.verifiers import last_number, name_single_group, normalize_number
from tests.conftest import shared_file


def batch(texts, references=None, **extra) -> pa.Table:
    n = len(texts)
    cols = {"sample_id": [f"s{i}" for i in range(n)], "text": pa.array(texts, pa.string()),
            "reference": pa.array(references if references is not None else [None] * n, pa.string())}
    for key, values in extra.items():
        cols[key] = pa.array(values, pa.string())
    return pa.table(cols)


def run(scorer, table: pa.Table) -> list[dict]:
    return scorer.check_output(table, scorer.score(table)).to_pylist()


def correct(scorer, table: pa.Table) -> list:
    return [r["correct"] for r in run(scorer, table)]


# ---------------------------------------------------------------------------------------------- gsm8k data


def gsm8k_answers() -> list[str]:
    path = shared_file("gsm8k_test.jsonl")
    return [json.loads(line)["answer"] for line in path.read_text().splitlines() if line.strip()]


FINAL = re.compile(r"####\s*(.*)$")


def test_gsm8k_accepts_every_human_answer_against_its_own_reference():
    answers = gsm8k_answers()
    assert len(answers) > 1000
    out = run(create("gsm8k_answer_v1"), batch(answers, answers))
    assert all(r["correct"] is True for r in out), [a for a, r in zip(answers, out) if not r["correct"]][:3]
    assert all(r["answer"] is not None and r["answer"] == r["reference_answer"] for r in out)


def test_gsm8k_reference_may_be_the_bare_number_and_formatting_does_not_matter():
    answers = gsm8k_answers()
    finals = [FINAL.search(a).group(1).strip() for a in answers]
    # the reference is only the final number
    assert all(correct(create("gsm8k_answer_v1"), batch(answers, finals)))

    # the sample writes its number with thousands commas, a dollar sign, ".00" and markdown bold
    def dress(value: str) -> str:
        number = float(value.replace(",", ""))
        text = f"{number:,.2f}" if number == int(number) else f"{number:,}"
        return f"$ {text}" if number >= 0 else text

    dressed = [FINAL.sub(lambda m: f"#### **{dress(m.group(1))}**", a) for a in answers]
    assert all(correct(create("gsm8k_answer_v1"), batch(dressed, answers)))


def test_gsm8k_rejects_answers_whose_final_number_was_altered():
    answers = gsm8k_answers()

    def alter(m: re.Match) -> str:
        value = m.group(1).strip()
        number = float(value.replace(",", ""))
        return f"#### {int(number) + 1 if number == int(number) else number + 0.5}"

    altered = [FINAL.sub(alter, a) for a in answers]
    assert all(a != b for a, b in zip(altered, answers))
    out = run(create("gsm8k_answer_v1"), batch(altered, answers))
    assert not any(r["correct"] for r in out)
    # the intermediate numbers are untouched, so only the final one can have made the difference
    assert all(r["answer"] is not None for r in out)


# ---------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("raw, expected", [
    ("18", "18"), ("1,000", "1000"), ("$1,000.00", "1000"), ("+5", "5"), (" 12 ", "12"), ("25%", "25"),
    ("0.50", "0.5"), (".5", "0.5"), ("-.50", "-0.5"), ("18.", "18"), ("18.0", "18"), ("10.10", "10.1"),
    ("007", "7"), ("0", "0"), ("-0", "0"), ("-0.0", "0"), ("100", "100"), ("-3", "-3"), ("1.05", "1.05"),
    ("3/4", "3/4"), ("1e3", "1e3"), ("$", None), ("", None), (None, None),
])
def test_normalize_number(raw, expected):
    assert normalize_number(pa.array([raw], pa.string())).to_pylist() == [expected]


@pytest.mark.parametrize("text, expected", [
    ("a 1 b 2.5.", "2.5"), ("x is -3", "-3"), ("no digits", None), ("costs $1,000.", "$1,000"),
    ("héllo wörld 12 ünïcode", "12"), ("50% of them", "50%"), ("1.5 then .25", ".25"), (None, None),
])
def test_last_number(text, expected):
    assert last_number(pa.array([text], pa.string())).to_pylist() == [expected]


def test_gsm8k_extraction_rules():
    s = create("gsm8k_answer_v1")
    table = batch(
        ["work...\n#### 18", "The answer is $1,800.00.", "no number at all", "#### 7\nQuestion: next\n#### 9",
         "####18", "#### -4", "So 2 + 3 = 5", "#### 3", None],
        ["#### 18", "1800", "7", "7", "18", "-4", "#### 5", None, "3"])
    out = run(s, table)
    assert [r["correct"] for r in out] == [True, True, False, True, True, True, True, None, False]
    assert [r["answer"] for r in out] == ["18", "1800", None, "7", "18", "-4", "5", "3", None]
    assert out[7]["reference_answer"] is None  # no reference: not judged


def test_gsm8k_fallback_none_and_pattern():
    table = batch(["The answer is 42.", "#### 42", "\\boxed{42} and 7", "\\boxed{1,000}"], ["42", "42", "42", "1000"])
    assert correct(create("gsm8k_answer_v1", {"fallback": "none"}), table) == [False, True, False, False]
    boxed = create("gsm8k_answer_v1", {"pattern": r"\\boxed\{([^}]*)\}", "fallback": "none"})
    assert correct(boxed, table) == [False, False, True, True]
    named = create("gsm8k_answer_v1", {"pattern": r"answer is (?P<x>\S+)"})
    assert [r["answer"] for r in run(named, table)] == ["42", "42", "7", "1000"]


def test_gsm8k_options_errors():
    with pytest.raises(UsageError, match=r"fallback='maybe'.*last_number, none"):
        create("gsm8k_answer_v1", {"fallback": "maybe"})
    with pytest.raises(UsageError, match=r"pattern='\(a\)\(b\)'.*exactly one capture group.*found 2"):
        create("gsm8k_answer_v1", {"pattern": "(a)(b)"})
    with pytest.raises(UsageError, match="found 0"):
        create("gsm8k_answer_v1", {"pattern": r"answer: \d+"})
    with pytest.raises(UsageError, match=r"not a valid RE2 regular expression"):
        create("gsm8k_answer_v1", {"pattern": r"(\d+"})
    with pytest.raises(UsageError, match=r"unknown option.*'patern'"):
        create("gsm8k_answer_v1", {"patern": "x"})


def test_name_single_group_scanner():
    assert name_single_group(r"is (\d+)", "t") == (r"is (?P<answer>\d+)", "answer")
    assert name_single_group(r"[(](\d)\)", "t") == (r"[(](?P<answer>\d)\)", "answer")
    assert name_single_group(r"(?i)(?:x|y) (?P<val>\d+)", "t") == (r"(?i)(?:x|y) (?P<val>\d+)", "val")
    assert name_single_group(r"\Q(\E(\d)", "t")[0] == r"\Q(\E(?P<answer>\d)"
    assert name_single_group(r"[]()](\d)", "t")[0] == r"[]()](?P<answer>\d)"


def test_gsm8k_column_types_and_chunking():
    s = create("gsm8k_answer_v1")
    table = pa.table({"sample_id": ["a", "b", "c"],
                      "text": pa.chunked_array([["#### 1"], ["#### 2", "x 3"]], pa.large_string()),
                      "reference": pa.chunked_array([["1", "3", "3"]], pa.large_string())})
    out = s.check_output(table, s.score(table))
    assert out.schema == s.output_schema()
    assert out.column("correct").to_pylist() == [True, False, True]
    empty = batch([], [])
    assert s.check_output(empty, s.score(empty)).num_rows == 0
    nulls = pa.table({"sample_id": ["a"], "text": pa.nulls(1), "reference": pa.nulls(1)})
    assert run(s, nulls) == [{"correct": None, "answer": None, "reference_answer": None}]


# ---------------------------------------------------------------------------------------------- the rest


def test_verifier_contract():
    for name in ("gsm8k_answer_v1", "exact_match_v1", "regex_v1", "python_v1"):
        cls = scorer_class(name)
        assert cls.pass_column == "correct"
        assert cls.name == name
    for name, options in (("gsm8k_answer_v1", {}), ("exact_match_v1", {"casefold": "true"}),
                          ("regex_v1", {"pattern": "x"}), ("python_v1", {"function": "math:isfinite"})):
        s = create(name, options)
        clone = pickle.loads(pickle.dumps(s))
        assert clone.config == s.config and clone.config_hash == s.config_hash


def test_exact_match():
    table = batch(["  Paris ", "paris", "New   York\n", "New York", "x", "a\u00a0b", "y"],
                  ["Paris", "Paris", "New York", "new york", None, "a b", ""])
    assert correct(create("exact_match_v1"), table) == [True, False, True, False, None, True, False]
    assert correct(create("exact_match_v1", {"casefold": True}), table) == [True, True, True, True, None, True, False]
    strict = create("exact_match_v1", {"strip": "false", "collapse_whitespace": "false"})
    assert correct(strict, table) == [False, False, False, False, None, False, False]


def test_regex():
    table = batch(["answer: 42", "42", "no", None], prompt=["Q1", "q2", "Q3", "Q4"])
    assert correct(create("regex_v1", {"pattern": r"\d+"}), table) == [True, True, False, None]
    assert correct(create("regex_v1", {"pattern": r"\d+", "mode": "full"}), table) == [False, True, False, None]
    assert correct(create("regex_v1", {"pattern": r"(?m)^4"}), batch(["x\n42"])) == [True]
    assert correct(create("regex_v1", {"pattern": r"4", "mode": "full"}), batch(["4\n"])) == [False]
    by_prompt = create("regex_v1", {"pattern": "^q", "field": "prompt"})
    assert by_prompt.inputs == ("prompt",)
    assert correct(by_prompt, table) == [False, True, False, False]
    assert correct(create("regex_v1", {"pattern": "^q", "field": "prompt", "ignore_case": "yes"}), table) == [True] * 4


def test_regex_errors():
    with pytest.raises(UsageError, match="regex_v1 needs option pattern"):
        create("regex_v1")
    with pytest.raises(UsageError, match=r"pattern='\(\?<=a\)b' is not a valid RE2.*no lookaround"):
        create("regex_v1", {"pattern": "(?<=a)b"})
    with pytest.raises(UsageError, match=r"pattern='\[a' is not a valid"):
        create("regex_v1", {"pattern": "[a"})
    with pytest.raises(UsageError, match=r"mode='fullmatch'.*search, full"):
        create("regex_v1", {"pattern": "a", "mode": "fullmatch"})
    with pytest.raises(UsageError, match=r"field='answer'.*text, prompt, reference, metadata"):
        create("regex_v1", {"pattern": "a", "field": "answer"})


USER_MODULE = textwrap.dedent('''
    import pyarrow as pa
    import pyarrow.compute as pc

    def is_long(batch):
        return pc.greater(pc.utf8_length(batch.column("text")), 3)

    def as_list(batch):
        return [t == r for t, r in zip(batch.column("text").to_pylist(), batch.column("reference").to_pylist())]

    def scores(batch):
        return [0.1, 0.9, None][: batch.num_rows]

    def numpy_scores(batch):
        import numpy as np
        return np.linspace(0, 1, batch.num_rows)

    def short(batch):
        return [True]

    def scalar(batch):
        return True

    def strings(batch):
        return ["yes"] * batch.num_rows

    def boom(batch):
        raise ValueError("no good")

    NOT_CALLABLE = 3
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_verifiers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "my_verifiers.py"


def test_python_function(user_module):
    table = batch(["abcd", "ab", "abcdef"], ["abcd", "x", None])
    s = create("python_v1", {"function": "my_verifiers:is_long"})
    assert run(s, table) == [{"correct": True, "score": 1.0}, {"correct": False, "score": 0.0},
                             {"correct": True, "score": 1.0}]
    assert correct(create("python_v1", {"function": "my_verifiers:as_list"}), table) == [True, False, False]
    # numbers: a score, and `correct` only with a threshold
    assert run(create("python_v1", {"function": "my_verifiers:scores"}), table) == [
        {"correct": None, "score": 0.1}, {"correct": None, "score": 0.9}, {"correct": None, "score": None}]
    thresholded = create("python_v1", {"function": "my_verifiers:scores", "threshold": "0.5"})
    assert correct(thresholded, table) == [False, True, None]
    assert correct(create("python_v1", {"function": "my_verifiers:numpy_scores", "threshold": 0.5}), table) == [
        False, True, True]
    # by file path, and picklable after setup too (the function is resolved again)
    by_path = create("python_v1", {"function": f"{user_module}:is_long"})
    by_path.setup()
    clone = pickle.loads(pickle.dumps(by_path))
    assert correct(clone, table) == [True, False, True]


def test_python_function_errors(user_module):
    table = batch(["a", "b"])
    with pytest.raises(UsageError, match=r"function='nothing': expected 'module:function'"):
        create("python_v1", {"function": "nothing"})
    with pytest.raises(UsageError, match=r"function=''"):
        create("python_v1")
    with pytest.raises(UsageError, match=r"'no_such_module_xyz:f': cannot import 'no_such_module_xyz'"):
        create("python_v1", {"function": "no_such_module_xyz:f"}).setup()
    with pytest.raises(UsageError, match=r"'my_verifiers' has no attribute 'missing'"):
        create("python_v1", {"function": "my_verifiers:missing"}).setup()
    with pytest.raises(UsageError, match=r"is a int, not callable"):
        create("python_v1", {"function": "my_verifiers:NOT_CALLABLE"}).setup()
    with pytest.raises(UsageError, match=r"no such file"):
        create("python_v1", {"function": "/nonexistent/v.py:f"}).setup()
    with pytest.raises(UsageError, match=r"returned 1 values for a batch of 2 rows"):
        create("python_v1", {"function": "my_verifiers:short"}).score(table)
    with pytest.raises(UsageError, match=r"returned bool True.*one bool or number per row"):
        create("python_v1", {"function": "my_verifiers:scalar"}).score(table)
    with pytest.raises(UsageError, match=r"returned values of type string; expected bools or numbers"):
        create("python_v1", {"function": "my_verifiers:strings"}).score(table)
    with pytest.raises(UsageError, match=r"raised ValueError: no good"):
        create("python_v1", {"function": "my_verifiers:boom"}).score(table)
