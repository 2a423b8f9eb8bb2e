"""code_tests_v1: run each sample's Python code against its unit tests, in a sandboxed subprocess.

What runs: the sample's code (the `text`; with `prepend_prompt`, the `prompt` and then the text, for
HumanEval-style completions), then the tests, in the same module namespace, in a fresh sandbox per sample
(`sandbox.py`: time, memory, CPU, file-size and disk limits, no network, no writes outside its directory,
namespaces where the kernel allows them). Then, HumanEval style, when the tests define `check` and the
sample names an entry point, `check(<entry point>)`.

Where the tests come from: the `reference` column by default (Python source, e.g. MBPP's asserts joined by
newlines, or HumanEval's `def check(candidate): ...`), or the metadata field `tests_field` (a string, or a
list of strings joined by newlines, like MBPP's `test_list`). The entry point is the metadata field
`entry_point_field` ("entry_point", as in HumanEval), if present.

Code extraction (`extract`): "auto" (default) takes the text's fenced code blocks when it has any, else
the whole text; "fenced" requires a block (none = status `error`); "none" runs the text as it is. The
blocks are those tagged python / py / python3 / py3, or, if none is tagged so, the untagged ones (other
languages never: ```bash, ```output). `block` picks among them: "all" (default: joined in order, so a
solution split over blocks works and a later corrected definition wins; usage examples run too),
"last" or "first".

Columns: `correct` (all tests passed; null when the sample has no tests or no text: not judged), `status`
(passed, failed, error, timeout, memory, killed: see `sandbox.py`; null when not run), `duration_s` (wall
time of the sandbox, process start-up included), `output` (the tail of stdout+stderr, with a `[sandbox]`
line saying why it was stopped, when it was).

Samples run `workers` at a time (default: the usable cores), each its own process tree: a hostile or
hung sample costs at most its own time limit and never an exception of the run.
"""
from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import UsageError
from . import sandbox
from .base import Scorer
from .registry import register

EXTRACT_MODES = ("auto", "fenced", "none")
BLOCK_CHOICES = ("all", "last", "first")
# Fenced blocks tagged python / py / python3 / py3, or untagged, are code to run; other languages
# (```bash, ```text, ```output) are not.
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})


@dataclass(frozen=True)
class CodeTestsConfig:
    """Options of code_tests_v1 (limits are per sample)."""

    tests_field: str | None = None
    entry_point_field: str = "entry_point"
    extract: str = "auto"
    block: str = "all"
    prepend_prompt: bool = False
    timeout_s: float = 10.0
    cpu_s: float | None = None
    memory_mb: int = 512
    file_mb: int = 16
    disk_mb: int = 64
    output_chars: int = 2000
    workers: int = 0
    isolation: str = "auto"
    allow_subprocess: bool = False

    def __post_init__(self) -> None:
        if self.extract not in EXTRACT_MODES:
            raise UsageError(f"code_tests_v1 option extract={self.extract!r}: expected one of "
                             f"{', '.join(EXTRACT_MODES)}")
        if self.block not in BLOCK_CHOICES:
            raise UsageError(f"code_tests_v1 option block={self.block!r}: expected one of {', '.join(BLOCK_CHOICES)}")
        if self.isolation not in sandbox.ISOLATIONS:
            raise UsageError(f"code_tests_v1 option isolation={self.isolation!r}: expected one of "
                             f"{', '.join(sandbox.ISOLATIONS)}")
        if self.workers < 0:
            raise UsageError(f"code_tests_v1 option workers={self.workers}: expected 0 (one per usable core) or more")
        self.limits()  # a bad limit fails here, naming itself

    def limits(self) -> sandbox.Limits:
        return sandbox.Limits(timeout_s=self.timeout_s, cpu_s=self.cpu_s, memory_mb=self.memory_mb,
                              file_mb=self.file_mb, disk_mb=self.disk_mb, output_chars=self.output_chars)


@register
class CodeTests(Scorer):
    """Unit-test execution in a subprocess sandbox (see the module docstring)."""

    name = "code_tests_v1"
    description = ("runs the sample's Python code against its tests in a sandboxed subprocess "
                   "(time/memory limits, no network)")
    inputs = ("text", "prompt", "reference", "metadata")
    columns = (pa.field("correct", pa.bool_()), pa.field("status", pa.string()),
               pa.field("duration_s", pa.float64()), pa.field("output", pa.string()))
    Config = CodeTestsConfig
    pass_column = "correct"

    def setup(self) -> None:
        if self.config.isolation == "namespaces":
            got = sandbox.probe("auto")
            if not got["namespaces"]:
                raise UsageError("code_tests_v1 option isolation='namespaces': this machine does not give a "
                                 f"sandbox its namespaces ({'; '.join(got['notes']) or got['output']}); "
                                 "use isolation='auto' or 'basic'")

    def workers(self) -> int:
        if self.config.workers:
            return self.config.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)

    def score(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        texts = _strings(batch, "text")
        prompts = _strings(batch, "prompt") if self.config.prepend_prompt else [None] * n
        references = _strings(batch, "reference")
        metadata = [_parse_metadata(m) for m in _strings(batch, "metadata")]
        correct: list[bool | None] = [None] * n
        status: list[str | None] = [None] * n
        duration: list[float | None] = [None] * n
        output: list[str | None] = [None] * n
        jobs: list[sandbox.Job] = []
        rows: list[int] = []
        # One Python step per row is fine here: every row then costs a process (tens of milliseconds).
        for i in range(n):
            tests = self._tests(references[i], metadata[i])
            if texts[i] is None or tests is None:
                output[i] = "not run: no tests" if texts[i] is not None else "not run: no text"
                continue
            code = extract_code(texts[i], self.config.extract, self.config.block)
            if code is None:
                correct[i], status[i], duration[i] = False, "error", 0.0
                output[i] = "[sandbox] not run: no fenced python code block in the text (extract='fenced')"
                continue
            if prompts[i]:
                code = prompts[i] + code
            entry = metadata[i].get(self.config.entry_point_field) if metadata[i] else None
            jobs.append(sandbox.Job(code, tests, entry if isinstance(entry, str) else None))
            rows.append(i)
        results = sandbox.run_many(jobs, self.config.limits(), workers=self.workers(),
                                   isolation=self.config.isolation, allow_subprocess=self.config.allow_subprocess)
        for i, r in zip(rows, results):
            correct[i], status[i], duration[i], output[i] = r.status == "passed", r.status, r.duration_s, r.output
        return pa.table({"correct": pa.array(correct, pa.bool_()), "status": pa.array(status, pa.string()),
                         "duration_s": pa.array(duration, pa.float64()), "output": pa.array(output, pa.string())})

    def _tests(self, reference: str | None, metadata: dict | None) -> str | None:
        if self.config.tests_field is None:
            return reference if reference and reference.strip() else None
        value = (metadata or {}).get(self.config.tests_field)
        if isinstance(value, list):
            value = "\n".join(str(v) for v in value)
        return value if isinstance(value, str) and value.strip() else None


def extract_code(text: str, mode: str = "auto", block: str = "all") -> str | None:
    """The code to run from a sample's text (see the module docstring); None when `mode="fenced"` finds none."""
    if mode == "none":
        return text
    blocks = fenced_blocks(text)
    if not blocks:
        return text if mode == "auto" else None
    if block == "first":
        return blocks[0]
    if block == "last":
        return blocks[-1]
    return "\n".join(blocks)


def fenced_blocks(text: str) -> list[str]:
    """The code blocks of a markdown text, in order, dedented: those tagged python / py / python3 / py3,
    or, when no block is tagged so, the untagged ones.

    Line by line, pairing each opening fence with the next fence line: a regex over the whole text would
    take the closing fence of a ```bash block for the opening of an untagged one. A block left open at the
    end (generation stopped at its token limit) counts.
    """
    blocks: list[tuple[bool, str]] = []  # (tagged as python, code)
    tag: str | None = None
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if tag is None:
            if stripped.startswith("```"):
                tag, lines = stripped[3:].strip().lower(), []
        elif stripped.startswith("```"):
            if tag in _PYTHON_TAGS:
                blocks.append((tag != "", textwrap.dedent("".join(lines))))
            tag = None
        else:
            lines.append(line)
    if tag in _PYTHON_TAGS and lines:
        blocks.append((tag != "", textwrap.dedent("".join(lines))))
    # when some blocks say they are python, the untagged ones are most likely program output or prose
    tagged = [code for is_tagged, code in blocks if is_tagged]
    return tagged or [code for _, code in blocks]


def _strings(batch: pa.Table, name: str) -> list[str | None]:
    if name not in batch.column_names:
        return [None] * batch.num_rows
    return batch.column(name).to_pylist()


def _parse_metadata(value: Any) -> dict | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None
