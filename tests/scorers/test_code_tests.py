"""code_tests_v1 and its sandbox: hostile samples are stopped and scored as failures, the run goes on.

Small limits (2 s) keep this quick; the hostile batches run two samples at a time. Each case runs under
the default isolation ("auto": namespaces where the kernel allows them) and under "basic" (rlimits and
the audit hook only), the fallback other machines get.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from curator.errors import UsageError
from curator.scorers import create
from curator.scorers import sandbox as sb
from curator.scorers.code_tests import extract_code, fenced_blocks

HAS_NAMESPACES = sys.platform == "linux" and sb.probe()["namespaces"]
ISOLATIONS = ["auto", "basic"]
LIMITS = {"timeout_s": 2, "memory_mb": 256, "workers": 2}

GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
# Outside the sandbox's directory in both isolations (and read-only in the namespace one); the test
# checks afterwards that nothing was written there.
OUTSIDE = Path(sys.prefix) / "curator-sandbox-escape.txt"
HOSTILE = {
    "good": (GOOD, "passed"),
    "wrong": (WRONG, "failed"),
    "infinite loop": (GOOD + "while True:\n    pass\n", "timeout"),
    "unbounded allocation": (GOOD + "hog = []\nwhile True:\n    hog.append(bytearray(10**7))\n", "memory"),
    "network": (GOOD + "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)\n", "error"),
    "network, exception swallowed": (
        GOOD + "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n"
               "except OSError:\n    pass\n", "error"),
    "write outside": (GOOD + f"open({str(OUTSIDE)!r}, 'w').write('pwned')\n", "error"),
    "syntax error": ("def add(a, b) return a + b", "error"),
    "exits before the tests": (GOOD + "import os\nos._exit(0)\n", "error"),
    "prints a fake pass": (GOOD + "print('passed')\nraise SystemExit(0)\n", "error"),
    "segfault": (GOOD + "import faulthandler\nfaulthandler._sigsegv()\n", "killed"),
    "good again": (GOOD, "passed"),
}


def table(texts, references, metadata=None, prompts=None) -> pa.Table:
    n = len(texts)
    return pa.table({"sample_id": [f"s{i}" for i in range(n)], "text": pa.array(texts, pa.string()),
                     "prompt": pa.array(prompts or [None] * n, pa.string()),
                     "reference": pa.array(references, pa.string()),
                     "metadata": pa.array([None if m is None else json.dumps(m) for m in (metadata or [None] * n)],
                                          pa.string())})


def score(scorer, t: pa.Table) -> list[dict]:
    return scorer.check_output(t, scorer.score(t)).to_pylist()


@pytest.fixture(autouse=True)
def no_escape_file():
    OUTSIDE.unlink(missing_ok=True)
    yield
    assert not OUTSIDE.exists(), "a sample wrote outside its sandbox"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_hostile_samples_are_stopped_and_the_run_goes_on(isolation):
    scorer = create("code_tests_v1", {**LIMITS, "isolation": isolation})
    names = list(HOSTILE)
    start = time.perf_counter()
    out = score(scorer, table([HOSTILE[k][0] for k in names], [TESTS] * len(names)))
    elapsed = time.perf_counter() - start
    got = {name: r["status"] for name, r in zip(names, out)}
    expected = {name: status for name, (_, status) in HOSTILE.items()}
    assert got == expected, {n: r["output"] for n, r in zip(names, out)}
    for name, r in zip(names, out):
        assert r["correct"] is (r["status"] == "passed")
        assert r["duration_s"] is not None and r["duration_s"] < LIMITS["timeout_s"] + 1.5, (name, r)
    by_name = dict(zip(names, out))
    assert "wall-clock limit" in by_name["infinite loop"]["output"]
    assert "MemoryError" in by_name["unbounded allocation"]["output"]
    assert "refused: network access" in by_name["network"]["output"]
    assert "refused: network access" in by_name["network, exception swallowed"]["output"]
    assert "refused: write outside the sandbox directory" in by_name["write outside"]["output"]
    assert "SyntaxError" in by_name["syntax error"]["output"]
    assert "AssertionError" in by_name["wrong"]["output"]
    # 12 samples, 2 at a time, one of them running into the 2 s limit: the hung one held up nobody
    assert elapsed < 12


def _leftovers(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="looks for leftover processes in /proc")
@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("ending", ["hangs", "returns"])
def test_child_processes_die_with_the_sample(isolation, ending):
    """Sleeping children, one of them in its own session (out of the process group), and a small fork
    storm: whether the sample then hangs (killed at the limit) or returns, none of them survives."""
    marker = f"987.{os.getpid() % 1000}{len(isolation)}{len(ending)}"
    code = (
        "import os, subprocess, time\n"
        f"kids = [subprocess.Popen(['sleep', '{marker}']) for _ in range(3)]\n"
        f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
        "for _ in range(20):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(1000)\n"
        "        os._exit(0)\n"
        "def add(a, b):\n    return a + b\n"
        + ("while True:\n    time.sleep(0.1)\n" if ending == "hangs" else "")
    )
    scorer = create("code_tests_v1", {**LIMITS, "isolation": isolation, "allow_subprocess": True})
    [r] = score(scorer, table([code], [TESTS]))
    assert r["status"] == ("timeout" if ending == "hangs" else "passed"), r["output"]
    deadline = time.monotonic() + 2
    while _leftovers(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _leftovers(marker)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_processes_are_refused_unless_allowed(isolation):
    scorer = create("code_tests_v1", {**LIMITS, "isolation": isolation})
    codes = ["import os\nwhile True:\n    os.fork()\n",
             "import subprocess\nsubprocess.run(['true'])\n",
             "import os\nos.system('true')\n",
             # the one process-starting function that has no audit event of its own
             "import _posixsubprocess\n_posixsubprocess.fork_exec([b'/bin/true'], [b'/bin/true'], *[None] * 21)\n"]
    out = score(scorer, table([GOOD + c for c in codes], [TESTS] * len(codes)))
    assert [r["status"] for r in out] == ["error"] * len(codes), [r["output"] for r in out]
    assert all("refused: starting a process" in r["output"] for r in out)


def test_humaneval_and_mbpp_layouts():
    prompt = 'def add(a, b):\n    """Sum."""\n'
    humaneval_tests = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    mbpp = ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]
    texts = ["    return a + b\n", "    return a * b\n"]
    he = create("code_tests_v1", {**LIMITS, "prepend_prompt": True})
    out = score(he, table(texts, [humaneval_tests] * 2, [{"entry_point": "add"}] * 2, [prompt] * 2))
    assert [r["status"] for r in out] == ["passed", "failed"]
    # check() exists but the entry point is missing from the solution
    out = score(he, table(texts[:1], [humaneval_tests], [{"entry_point": "plus"}], [prompt]))
    assert out[0]["status"] == "failed" and "entry point 'plus'" in out[0]["output"]
    by_field = create("code_tests_v1", {**LIMITS, "tests_field": "test_list"})
    out = score(by_field, table([GOOD, WRONG, GOOD, None], [None] * 4,
                                [{"test_list": mbpp}, {"test_list": mbpp}, {}, {"test_list": mbpp}]))
    assert [r["status"] for r in out] == ["passed", "failed", None, None]
    assert [r["correct"] for r in out] == [True, False, None, None]  # no tests / no text: not judged


def test_code_extraction():
    answer = ("Here you go:\n```python\ndef add(a, b):\n    return a - b\n```\nOops, fixed:\n```py\ndef add(a, b):\n"
              "    return a + b\n```\nOutput:\n```\n3\n```\n```bash\npython x.py\n```\n")
    assert fenced_blocks(answer) == ["def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"]
    assert extract_code(answer, "auto", "first").endswith("a - b\n")
    assert extract_code(answer, "auto", "last").endswith("a + b\n")
    assert extract_code("x = 1", "auto") == "x = 1" and extract_code("x = 1", "fenced") is None
    assert extract_code("```\nx = 1\n```", "none") == "```\nx = 1\n```"
    assert fenced_blocks("```python\n    x = 1\n    y = 2\n") == ["x = 1\ny = 2\n"]  # cut at the token limit
    scorer = create("code_tests_v1", {**LIMITS})
    out = score(scorer, table([answer, "no code here"], [TESTS, TESTS]))
    assert out[0]["status"] == "passed"  # all python blocks, in order: the fixed definition wins
    assert out[1]["status"] == "error"
    fenced = create("code_tests_v1", {**LIMITS, "extract": "fenced"})
    out = score(fenced, table(["def add(a, b): return a + b"], [TESTS]))
    assert out[0]["status"] == "error" and "no fenced python code block" in out[0]["output"]


def test_output_is_capped_and_a_pass_needs_the_harness():
    scorer = create("code_tests_v1", {**LIMITS, "output_chars": 200})
    out = score(scorer, table([GOOD + "print('x' * 10**7)\n"], [TESTS]))
    assert out[0]["status"] == "passed" and len(out[0]["output"]) <= 200


def test_options_and_contract():
    with pytest.raises(UsageError, match=r"extract='markdown'.*auto, fenced, none"):
        create("code_tests_v1", {"extract": "markdown"})
    with pytest.raises(UsageError, match=r"block='middle'.*all, last, first"):
        create("code_tests_v1", {"block": "middle"})
    with pytest.raises(UsageError, match=r"isolation='docker'.*auto, namespaces, basic"):
        create("code_tests_v1", {"isolation": "docker"})
    with pytest.raises(UsageError, match=r"timeout_s=0.*positive"):
        create("code_tests_v1", {"timeout_s": 0})
    with pytest.raises(UsageError, match=r"memory_mb=16: expected at least 64"):
        create("code_tests_v1", {"memory_mb": 16})
    s = create("code_tests_v1", {"workers": 3})
    assert s.pass_column == "correct"
    assert pickle.loads(pickle.dumps(s)).config == s.config
    # the number of workers is not part of what the results mean
    assert s.config_hash == create("code_tests_v1", {"workers": 1}).config_hash
    assert s.config_hash != create("code_tests_v1", {"timeout_s": 3}).config_hash
    strict = create("code_tests_v1", {"isolation": "namespaces", **LIMITS})
    if HAS_NAMESPACES:
        strict.setup()
        assert score(strict, table([GOOD], [TESTS]))[0]["status"] == "passed"
    else:
        with pytest.raises(UsageError, match="does not give a sandbox its namespaces"):
            strict.setup()


# ---------------------------------------------------------------------------------------------- the layers


@pytest.mark.skipif(not HAS_NAMESPACES, reason="needs unprivileged user namespaces (unshare -rn)")
def test_namespaces_hold_without_the_audit_hook():
    """The kernel layer alone (audit hook off): no network, a read-only root with nothing of the host's
    private files, limits and locks that the sample cannot undo even through ctypes."""
    code = r'''
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("1.1.1.1", 53)); print("NET OPEN")
except OSError as e:
    print("net:", e.errno)
for path in ("/usr/evil", "/etc/evil", os.path.join(os.path.dirname(os.__file__), "evil.py")):
    try:
        open(path, "w"); print("WROTE", path)
    except OSError as e:
        print("write:", e.errno)
print("root visible:", sorted(os.listdir("/")))
print("home visible:", os.path.exists("/root/.ssh") or os.path.exists("/home"))
print("remount:", libc.mount(None, b"/", None, 32 | 4096, None), ctypes.get_errno())
print("umount:", libc.umount2(b"/usr", 2), ctypes.get_errno())
print("new userns:", libc.unshare(0x10000000), ctypes.get_errno())
open("scratch.txt", "w").write("ok")
print("uid:", os.getuid(), "pid:", os.getpid())
'''
    r = sb.run(sb.Job(code, None), sb.Limits(timeout_s=5), audit_hook=False)
    assert r.status == "passed", r.output
    assert "NET OPEN" not in r.output and "net: 101" in r.output  # ENETUNREACH
    assert "WROTE" not in r.output and r.output.count("write: 30") + r.output.count("write: 2") == 3
    assert "home visible: False" in r.output
    assert "remount: -1" in r.output and "umount: -1" in r.output and "new userns: -1" in r.output
    assert "uid: 65534" in r.output
    assert set(r.isolation) >= {"user", "net", "pid", "mnt", "fs", "locked"}


def test_probe_reports_the_layers():
    info = sb.probe()
    assert info["status"] == "passed"
    assert info["namespaces"] == ("locked" in info["layers"])
    assert sb.probe("basic")["layers"] == []
