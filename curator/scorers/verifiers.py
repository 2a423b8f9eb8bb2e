"""Verifiers: scorers that say whether a generated sample is correct (Feng et al., "Beyond Model Collapse").

Every verifier writes a boolean column `correct` and names it in `pass_column`, so that pass rates and
verifier selection (threshold, best-of-k) work on any of them. `correct` is null when the sample cannot be
judged (no reference, a null field), never guessed.

The text verifiers are vectorised: a batch is a handful of Arrow compute kernels (RE2 regular expressions,
UTF-8 kernels) over whole columns, never a Python loop over rows. RE2 is Arrow's regex engine, so patterns
given as options use RE2 syntax (no lookaround, no backreferences); a pattern RE2 rejects is a UsageError
when the scorer is built, not halfway through a run.

- `gsm8k_answer_v1`  final-answer checker, GSM8K style (`#### <number>`);
- `exact_match_v1`   text equals the reference after normalisation;
- `regex_v1`         a field matches a pattern;
- `python_v1`        a user function, called once per batch with the Arrow table.

Unit-test execution lives in `code_tests.py` (it needs a sandbox).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from .base import Scorer
from .registry import register

# ---------------------------------------------------------------------------------------------- numbers

# One number as written in a GSM8K answer or a model's output: optional sign, optional dollar sign, digits
# with thousands commas and an optional decimal part (or a bare ".5"), optional percent sign. `[0-9]`, not
# `\d`: a Unicode digit class would accept look-alikes the normalisation does not know.
NUMBER = r"[-+]?\$?(?:[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)%?"
# The same shape spelled backwards (see `last_number`): percent; then "fraction.integer", ".fraction" or
# "integer" (each reversed; RE2 takes the first alternative that matches, so the longest comes first);
# dollar; sign.
_NUMBER_REVERSED = r"%?(?:[0-9]+\.[0-9,]*[0-9]|[0-9]+\.|[0-9,]*[0-9])\$?[-+]?"
# GSM8K's final-answer line, "#### 18"; spaces, markdown bold and a dollar sign may sit in between. The
# first "####" counts (as in lm-evaluation-harness's strict match).
GSM8K_MARKER = r"####[\s*$]*(?P<answer>" + NUMBER + ")"
FALLBACKS = ("last_number", "none")

StrArray = pa.Array | pa.ChunkedArray


def normalize_number(values: StrArray) -> pa.Array:
    """Canonical text of extracted answers, so that equal numbers compare equal as strings.

    1. thousands commas and dollar signs are removed, then surrounding whitespace;
    2. when what is left is a decimal number (optional '+' or '-', digits with at most one '.', an
       optional trailing '%' or '.'), it is rewritten canonically: no '+', no '%' ("25%" -> "25": a
       percentage question's answer is the number), no leading zeros ("007" -> "7", ".5" -> "0.5"), no
       trailing zeros in the fraction and no bare point ("18.00" -> "18", "1.50" -> "1.5", "18." -> "18"),
       and no sign on zero ("-0.0" -> "0").
    A comma is always a thousands separator ("1,5" -> "15": GSM8K is English). Other shapes (fractions
    "3/4", exponents "1e3", words) keep the text of step 1 and compare as written. "" becomes null.
    """
    # Most answers are canonical once their commas are gone ("70,000" -> "70000"): one test lets them skip
    # the rest. Every kernel call costs tens of microseconds whatever its size (a regex is compiled on each
    # call), which on short strings and small batches is most of the time: the other rows take one regex
    # kernel and a few string kernels, not a chain of regex replacements.
    values = pc.replace_substring(pc.replace_substring(_combine(values), ",", ""), "$", "")
    other = pc.invert(pc.match_substring_regex(values, r"^(?:0|[1-9][0-9]*)$"))  # null stays null
    if not pc.any(other).as_py():
        return values
    todo = pc.fill_null(other, False)
    return pc.replace_with_mask(values, todo, _normalize_slow(pc.filter(values, todo)).cast(values.type))


# sign, integer part without its leading zeros, fraction without its trailing zeros (lazy groups, so the
# zeros fall to the `0*` around them); '+', a trailing '%' or '.' are matched and dropped
_DECIMAL_PARTS = r"^\+?(?P<sign>-?)(?P<zeros>0*)(?P<int>[0-9]*?)(?:\.(?P<frac>[0-9]*?)0*)?[%.]?$"


def _normalize_slow(values: pa.Array) -> pa.Array:
    s = pc.utf8_trim_whitespace(values)
    parts = pc.extract_regex(s, _DECIMAL_PARTS)
    sign, zeros, integer, frac = (pc.struct_field(parts, k) for k in ("sign", "zeros", "int", "frac"))
    has_digit = pc.greater(pc.add(pc.add(pc.utf8_length(zeros), pc.utf8_length(integer)), pc.utf8_length(frac)), 0)
    numeric = pc.fill_null(pc.and_(pc.is_valid(parts), has_digit), False)
    integer = pc.if_else(pc.equal(integer, ""), "0", integer)
    zero = pc.and_(pc.equal(integer, "0"), pc.equal(frac, ""))
    sign = pc.if_else(zero, "", sign)
    fraction = pc.if_else(pc.equal(frac, ""), "", pc.binary_join_element_wise(".", frac, ""))
    canonical = pc.binary_join_element_wise(sign, integer, fraction, "")
    out = pc.if_else(numeric, canonical, s)
    return pc.if_else(pc.equal(out, ""), pa.scalar(None, out.type), out)


def last_number(values: StrArray) -> pa.Array:
    """The last number of each text (raw, before normalisation), null where there is none.

    RE2 finds the leftmost match; the last one would need a greedy `.*` prefix, which makes RE2 track
    submatches across the whole text (about twice the time, measured on GSM8K answers). Instead the bytes
    are reversed and the reversed number pattern is searched from the left: its first match is the last
    number. Byte reversal breaks multi-byte UTF-8 characters, but the pattern is ASCII and the match is
    reversed back before it is cast to text.
    """
    values = _combine(values)
    large = pa.types.is_large_string(values.type)
    binary = pa.large_binary() if large else pa.binary()
    reversed_ = pc.binary_reverse(values.cast(binary))
    found = pc.struct_field(pc.extract_regex(reversed_, f"(?P<n>{_NUMBER_REVERSED})"), "n")
    return pc.binary_reverse(found).cast(pa.large_string() if large else pa.string())


def extract_answer(values: StrArray, pattern: str, group: str, *, fallback: str = "last_number") -> pa.Array:
    """Normalised answers: the named `group` of `pattern`'s first match, else (fallback="last_number")
    the last number of the text. Null where neither finds anything or the text is null."""
    values = _combine(values)
    got = pc.struct_field(pc.extract_regex(values, pattern), group)
    if fallback == "last_number" and got.null_count > values.null_count:
        missing = pc.and_(pc.is_null(got), pc.is_valid(values))
        if pc.any(missing).as_py():
            # only the rows without a primary answer pay for the second pass
            backup = last_number(pc.filter(values, missing))
            got = pc.replace_with_mask(got, missing, backup.cast(got.type))
    return normalize_number(got)


def _combine(values: StrArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        # one chunk (the usual batch) is used as it is; combine_chunks would copy it
        return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return values


def _column(batch: pa.Table, name: str) -> pa.Array:
    col = _combine(batch.column(name))
    if pa.types.is_null(col.type):  # an all-null column read from JSON, say
        col = pa.nulls(len(col), pa.string())
    return col


def _verdict(answer: pa.Array, reference: pa.Array) -> pa.Array:
    """True/False where the reference is known (a missing answer is wrong), null where it is not."""
    same = pc.fill_null(pc.equal(answer, reference), False)
    return pc.if_else(pc.is_null(reference), pa.scalar(None, pa.bool_()), same)


# ---------------------------------------------------------------------------------------------- patterns


def compile_check(pattern: str, scorer: str, option: str = "pattern") -> None:
    """A UsageError now, naming the pattern, if RE2 (Arrow's engine) rejects it."""
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UsageError(f"{scorer} option {option}={pattern!r} is not a valid RE2 regular expression "
                         f"({str(exc).strip()}); RE2 has no lookaround and no backreferences") from exc


def name_single_group(pattern: str, scorer: str, name: str = "answer") -> tuple[str, str]:
    """`pattern` with its one capture group named (Arrow's extract_regex reads named groups only), and
    that name. Exactly one capture group, named or not, is required: it is the answer."""
    groups: list[tuple[int, str | None]] = []  # (index of "(", name or None)
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if pattern.startswith("\\Q", i):  # RE2 literal span \Q...\E
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            j = i + 1 + (pattern.startswith("^", i + 1))
            if j < n and pattern[j] == "]":  # "[]...]" and "[^]...]": a leading ] is a literal
                i = j
        elif ch == "(":
            if pattern.startswith("(?P<", i) or (pattern.startswith("(?<", i) and not pattern.startswith("(?<=", i)
                                                  and not pattern.startswith("(?<!", i)):
                start = pattern.index("<", i) + 1
                end = pattern.find(">", start)
                groups.append((i, pattern[start:end] if end > 0 else None))
            elif not pattern.startswith("(?", i):
                groups.append((i, None))
        i += 1
    if len(groups) != 1:
        raise UsageError(f"{scorer} option pattern={pattern!r} must have exactly one capture group (the answer), "
                         f"found {len(groups)}; use (?:...) for the others")
    pos, existing = groups[0]
    if existing:
        return pattern, existing
    return pattern[:pos + 1] + f"?P<{name}>" + pattern[pos + 1:], name


# ---------------------------------------------------------------------------------------------- gsm8k


@dataclass(frozen=True)
class Gsm8kConfig:
    """pattern: RE2 regex with one capture group for the model's answer (default: the number after the
    first "####"). fallback: what to do when the pattern finds nothing: "last_number" (the last number in
    the text, like lm-evaluation-harness's flexible extract) or "none" (no answer: wrong)."""

    pattern: str | None = None
    fallback: str = "last_number"

    def __post_init__(self) -> None:
        if self.fallback not in FALLBACKS:
            raise UsageError(f"gsm8k_answer_v1 option fallback={self.fallback!r}: expected one of "
                             f"{', '.join(FALLBACKS)}")
        if self.pattern is not None:
            if not self.pattern:
                raise UsageError("gsm8k_answer_v1 option pattern='': expected a regex with one capture group")
            compile_check(name_single_group(self.pattern, "gsm8k_answer_v1")[0], "gsm8k_answer_v1")


@register
class Gsm8kAnswer(Scorer):
    """Final-answer checker for GSM8K-style samples.

    The sample's answer: the number after the first "####" (spaces, `**` and `$` may come between), or the
    `pattern` option's capture group; when that finds nothing, the last number in the text (option
    `fallback="none"` turns that off: then the sample is simply wrong). The reference's answer: the number
    after its first "####" (a full GSM8K solution) or else its last number (a bare "18"), whatever the
    options. Both are normalised by `normalize_number` ("$1,000.00" == "1000", "+5" == "5", "25%" == "25",
    "0.50" == ".5") and compared as text. `correct` is null where the reference holds no number.
    """

    name = "gsm8k_answer_v1"
    batch_size = 8192  # vectorised string kernels: a large batch amortises their per-call cost
    description = "GSM8K final answer (#### <number>, or a pattern) equals the reference's, after normalisation"
    inputs = ("text", "reference")
    columns = (pa.field("correct", pa.bool_()), pa.field("answer", pa.string()),
               pa.field("reference_answer", pa.string()))
    Config = Gsm8kConfig
    pass_column = "correct"

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        if self.config.pattern is None:
            self._pattern, self._group = GSM8K_MARKER, "answer"
        else:
            self._pattern, self._group = name_single_group(self.config.pattern, self.name)

    def score(self, batch: pa.Table) -> pa.Table:
        answer = extract_answer(_column(batch, "text"), self._pattern, self._group, fallback=self.config.fallback)
        reference = extract_answer(_column(batch, "reference"), GSM8K_MARKER, "answer", fallback="last_number")
        return pa.table({"correct": _verdict(answer, reference), "answer": answer.cast(pa.string()),
                         "reference_answer": reference.cast(pa.string())})


# ---------------------------------------------------------------------------------------------- exact match


def normalize_text(values: StrArray, *, strip: bool = True, collapse_whitespace: bool = True,
                   casefold: bool = False) -> StrArray:
    """The normalisation of exact_match_v1 (each step an option)."""
    if collapse_whitespace:
        # \s is ASCII in RE2; \p{Z} adds the Unicode spaces (no-break space, ideographic space ...)
        values = pc.replace_substring_regex(values, r"[\s\p{Z}]+", " ")
    if strip:
        values = pc.utf8_trim_whitespace(values)
    if casefold:
        values = pc.utf8_lower(values)
    return values


@dataclass(frozen=True)
class ExactMatchConfig:
    """strip: ignore leading/trailing whitespace. collapse_whitespace: any run of whitespace (Unicode
    spaces included) counts as one space. casefold: compare lower-cased (Unicode simple lower-casing,
    Arrow's utf8_lower: "Straße" and "STRASSE" stay different; full case folding has no vectorised kernel)."""

    strip: bool = True
    collapse_whitespace: bool = True
    casefold: bool = False


@register
class ExactMatch(Scorer):
    """`correct`: the sample's text equals its reference after the configured normalisation."""

    name = "exact_match_v1"
    batch_size = 8192  # vectorised string kernels: a large batch amortises their per-call cost
    description = "text equals the reference after normalisation (strip, collapse whitespace, casefold)"
    inputs = ("text", "reference")
    columns = (pa.field("correct", pa.bool_()),)
    Config = ExactMatchConfig
    pass_column = "correct"

    def score(self, batch: pa.Table) -> pa.Table:
        opts = dict(strip=self.config.strip, collapse_whitespace=self.config.collapse_whitespace,
                    casefold=self.config.casefold)
        text = normalize_text(_column(batch, "text"), **opts)
        reference = normalize_text(_column(batch, "reference"), **opts)
        return pa.table({"correct": _verdict(text, reference)})


# ---------------------------------------------------------------------------------------------- regex

REGEX_MODES = ("search", "full")
REGEX_FIELDS = ("text", "prompt", "reference", "metadata")


@dataclass(frozen=True)
class RegexConfig:
    """pattern (required): RE2 regex. mode: "search" (matches anywhere) or "full" (the whole field).
    field: which sample column to match (text, prompt, reference, metadata). ignore_case: match
    case-insensitively."""

    pattern: str = ""
    mode: str = "search"
    field: str = "text"
    ignore_case: bool = False

    def __post_init__(self) -> None:
        if not self.pattern:
            raise UsageError("regex_v1 needs option pattern (an RE2 regular expression), e.g. -o pattern='^\\d+$'")
        if self.mode not in REGEX_MODES:
            raise UsageError(f"regex_v1 option mode={self.mode!r}: expected one of {', '.join(REGEX_MODES)}")
        if self.field not in REGEX_FIELDS:
            raise UsageError(f"regex_v1 option field={self.field!r}: expected one of {', '.join(REGEX_FIELDS)}")
        compile_check(self.pattern, "regex_v1")


@register
class Regex(Scorer):
    """`correct`: the field matches the pattern (null where the field is null)."""

    name = "regex_v1"
    batch_size = 8192  # vectorised string kernels: a large batch amortises their per-call cost
    description = "a field (text by default) matches an RE2 pattern, anywhere or in full"
    inputs = ("text",)
    columns = (pa.field("correct", pa.bool_()),)
    Config = RegexConfig
    pass_column = "correct"

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        # the column read depends on the config: the instance narrows the class default
        self.inputs = (self.config.field,)
        # \A...\z rather than ^...$: whole field, whatever multi-line flags the pattern sets
        self._pattern = self.config.pattern if self.config.mode == "search" else rf"\A(?:{self.config.pattern})\z"

    def score(self, batch: pa.Table) -> pa.Table:
        values = _column(batch, self.config.field)
        matched = pc.match_substring_regex(values, self._pattern, ignore_case=self.config.ignore_case)
        return pa.table({"correct": matched})


# ---------------------------------------------------------------------------------------------- python


@dataclass(frozen=True)
class PythonFunctionConfig:
    """function (required): "module:function" (importable) or "path/to/file.py:function". threshold:
    when the function returns numbers, `correct` = score >= threshold (without it `correct` is null)."""

    function: str = ""
    threshold: float | None = None

    def __post_init__(self) -> None:
        module, _, attr = self.function.rpartition(":")
        if not module or not attr:
            raise UsageError(f"python_v1 option function={self.function!r}: expected 'module:function' or "
                             f"'path/to/file.py:function'")


@register
class PythonFunction(Scorer):
    """A user verifier: `function(batch) -> sequence`, called once per batch.

    The batch is the Arrow table of the scorer's inputs (`sample_id`, `text`, `prompt`, `reference`,
    `metadata`; nulls possible), so the function can be vectorised itself (Arrow compute, Polars via
    `pl.from_arrow`, numpy) instead of paying a Python call per row. It returns one value per row, in order:
    a list, tuple, numpy array, pyarrow array or Polars/pandas series of bools or numbers (None = unknown).
    Bools give `correct` (and `score` 1.0/0.0); numbers give `score`, and `correct` only with `threshold`.
    """

    name = "python_v1"
    description = "a user function module:function, called per batch with the Arrow table, returns bools or scores"
    inputs = ("text", "prompt", "reference", "metadata")
    columns = (pa.field("correct", pa.bool_()), pa.field("score", pa.float64()))
    Config = PythonFunctionConfig
    pass_column = "correct"

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._fn: Callable[[pa.Table], Any] | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fn"] = None  # resolved again by setup() in the receiving process
        return state

    def setup(self) -> None:
        self._fn = load_function(self.config.function, self.name)

    def score(self, batch: pa.Table) -> pa.Table:
        if self._fn is None:
            self.setup()
        target = self.config.function
        try:
            result = self._fn(batch)
        except Exception as exc:
            raise UsageError(f"python_v1 function {target!r} raised {type(exc).__name__}: {exc}") from exc
        values = _as_array(result, target)
        if len(values) != batch.num_rows:
            raise UsageError(f"python_v1 function {target!r} returned {len(values)} values for a batch of "
                             f"{batch.num_rows} rows; expected one per row")
        t = values.type
        if pa.types.is_boolean(t):
            correct, score = values, values.cast(pa.float64())
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            score = values.cast(pa.float64())
            correct = (pc.greater_equal(score, self.config.threshold) if self.config.threshold is not None
                       else pa.nulls(len(score), pa.bool_()))
        elif pa.types.is_null(t):
            correct, score = pa.nulls(len(values), pa.bool_()), pa.nulls(len(values), pa.float64())
        else:
            raise UsageError(f"python_v1 function {target!r} returned values of type {t}; expected bools or numbers")
        return pa.table({"correct": correct, "score": score})


def _as_array(result: Any, target: str) -> pa.Array:
    if isinstance(result, (pa.Array, pa.ChunkedArray)):
        return _combine(result)
    if isinstance(result, (str, bytes, bool, int, float)) or result is None or not hasattr(result, "__len__"):
        raise UsageError(f"python_v1 function {target!r} returned {type(result).__name__} {result!r:.60}; "
                         f"expected a sequence with one bool or number per row")
    if hasattr(result, "to_arrow"):  # polars Series
        return _combine(result.to_arrow())
    try:
        return pa.array(result)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise UsageError(f"python_v1 function {target!r} returned a {type(result).__name__} that is not a "
                         f"sequence of bools or numbers: {exc}") from exc


def load_function(target: str, scorer: str = "python_v1") -> Callable[..., Any]:
    """Resolve "module:function" or "path/to/file.py:function" (dots after the colon walk attributes)."""
    module_name, _, attr = target.rpartition(":")
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise UsageError(f"{scorer} function {target!r}: no such file {path}")
            spec = importlib.util.spec_from_file_location(f"_curator_user_{abs(hash(path))}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as exc:  # ImportError, or whatever the module raises while it loads
        raise UsageError(f"{scorer} function {target!r}: cannot import {module_name!r}: "
                         f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{scorer} function {target!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{scorer} function {target!r} is a {type(obj).__name__}, not callable")
    return obj
