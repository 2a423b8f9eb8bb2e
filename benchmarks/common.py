"""Plumbing shared by the benchmark scripts: one-core set-up, worker processes, timing, peak RSS, tables and
the results file. Nothing here measures anything by itself; each script decides what it times.

Import it FIRST in a script and call `single_thread_env()` before numpy, pyarrow, polars, torch or lance are
imported: their thread pools read the environment once, at import.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import corpus

# Every library thread pool a benchmark can start, set to one thread: the benchmarks measure ONE core, and a
# pool of N threads on a pinned core only adds switching (and on the 2-core VM, steals the other core).
THREAD_VARS = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "RAYON_NUM_THREADS", "LANCE_CPU_THREADS",
               "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_thread_env(*, keep_set: bool = False) -> list[str]:
    """Hold every thread pool to one thread; return the variables set (a GPU run lifts them: `lift_single_thread`).

    keep_set: leave a variable the caller already exported (the model benchmarks and the micro-benchmark let
    the user choose). When CURATOR_BENCH_DEVICE is not "cpu" (a GPU run's parent sets it for its workers) the
    thread variables are left alone: the host side of a GPU run should not be held to one thread.
    """
    chosen = []
    if os.environ.get("CURATOR_BENCH_DEVICE", "cpu") == "cpu":
        chosen = [v for v in THREAD_VARS if not (keep_set and v in os.environ)]
        for var in chosen:
            os.environ[var] = "1"
    # An idle OpenMP thread spins for a while by default (ACTIVE): on one shared core that spinning is measured.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # HF tokenizers start their own pool (and warn, or deadlock, when a process forks after using it).
    if keep_set:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Nothing is downloaded by a benchmark: a missing model must fail at once, not fetch (or time a fetch).
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    return chosen


def lift_single_thread(chosen: list[str], device: str) -> None:
    """A GPU run: drop the one-thread settings in this process, and tell the workers (they inherit the variable)."""
    os.environ["CURATOR_BENCH_DEVICE"] = device
    for var in chosen:
        os.environ.pop(var, None)


# =========================================================================== pinning


def _cores(cores) -> list[int] | None:
    if cores is None or cores == "":
        return None
    if isinstance(cores, int):
        return [cores]
    if isinstance(cores, str):
        return [int(c) for c in cores.split(",")]
    return [int(c) for c in cores]


def pin(cores=None) -> None:
    """Pin this process to `cores` (an int, "0,1", a list; None: leave the affinity) and hold Arrow's CPU and I/O
    pools to one thread (pyarrow sizes them from the core count, not from the environment)."""
    import pyarrow as pa

    chosen = _cores(cores)
    if chosen is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(chosen))
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def taskset(cores) -> list[str]:
    """The `taskset -c CORES` prefix of a worker's command line (empty without taskset or without cores): the
    worker is pinned from its first instruction, its imports and thread pools included."""
    if cores is None or cores == "" or not shutil.which("taskset"):
        return []
    # a string goes to taskset as given ("0", "0,1", "0-3"); an int or a list of ints is joined
    return ["taskset", "-c", cores if isinstance(cores, str) else ",".join(map(str, _cores(cores)))]


# =========================================================================== measuring


def peak_rss_mb() -> float:
    """This process's peak RSS (MB of 2^20 bytes). VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over
    from the parent across fork + exec, so a worker started by a large parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_seconds(children: bool = False) -> float:
    """CPU seconds of this process (all its threads); with `children`, plus its waited-for children's (sandboxes)."""
    if not children:
        return time.process_time()
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


class Clock:
    """`with Clock() as c:` -> c.wall, c.cpu (CPU seconds; this process's own plus, with children=True, its
    waited-for children's) and c.own_cpu (this process's alone). CPU time next to wall time because the machine is
    shared: cpu/wall below 1 means someone else had the core, and per-CPU-second rates are then the better estimate."""

    def __init__(self, children: bool = False) -> None:
        self.children = children

    def __enter__(self):
        self.wall0, self.cpu0, self.own0 = time.perf_counter(), cpu_seconds(self.children), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = cpu_seconds(self.children) - self.cpu0
        self.own_cpu = time.process_time() - self.own0


# =========================================================================== workers (one contender per process)


def guarded(fn, *args, **kwargs) -> dict:
    """fn's result, or {"error", "traceback"}: a failing contender is reported by the parent, not fatal."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the parent reports it
        import traceback

        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def write_worker_result(out: Path, result: dict) -> None:
    Path(out).write_text(json.dumps(result, default=str))


def launch(script: Path | str, args: list[str], *, spec: dict | None = None, cores=None,
           timeout: float | None = 3600) -> dict:
    """Run `python SCRIPT ARGS --out FILE` (with `--worker SPEC.json` first when `spec` is given) in a fresh process,
    under `taskset` when `cores` is given, and return the JSON it wrote. A fresh process per contender: its peak
    RSS, imports and caches are its own. A worker that dies without writing gives {"error", "traceback"}."""
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        out = Path(tmp) / "out.json"
        args = list(args)
        if spec is not None:
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_text(json.dumps(spec))
            args = ["--worker", str(spec_path), *args]
        cmd = [*taskset(cores), sys.executable, str(Path(script).resolve()), *args, "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        result = json.loads(out.read_text()) if out.exists() and out.stat().st_size else {}
    if proc.returncode != 0 and "error" not in result:
        result = {"error": f"worker exited {proc.returncode}", "traceback": proc.stderr[-4000:]}
    return result


def best_of(run_once, repeat: int) -> dict:
    """Call `run_once()` `repeat` times and keep the fastest result (wall_s): the run least disturbed by the
    other work on the shared machine. An "error" (or "skipped") result is returned at once."""
    best: dict | None = None
    for _ in range(repeat):
        result = run_once()
        if "error" in result or "skipped" in result:
            return result
        if best is None or result.get("wall_s", float("inf")) < best.get("wall_s", float("inf")):
            best = result
    assert best is not None
    best["runs"] = repeat
    return best


# =========================================================================== datatrove (the peer in several benchmarks)


def quiet_datatrove() -> None:
    """No log lines inside a timed loop (datatrove logs through loguru, some dependencies through logging)."""
    import logging

    from loguru import logger

    logger.remove()
    logging.disable(logging.CRITICAL)


def datatrove_whitespace_tokenizer():
    """A datatrove `WordTokenizer` whose words are `str.split()`: the words curator's scorers count, so both sides
    do the same work (datatrove's English default is spaCy's)."""
    from datatrove.utils.word_tokenizers import WordTokenizer

    class WhitespaceTokenizer(WordTokenizer):
        def __init__(self) -> None:
            super().__init__("en")

        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    return WhitespaceTokenizer()


# =========================================================================== reporting


def fmt(x, spec: str = ".1f", none: str = "-") -> str:
    """format(x, spec), or `none` for a missing value."""
    return none if x is None else format(x, spec)


def print_aligned(lines: list[tuple], left: int = 1) -> None:
    """A plain-text table: lines[0] is the header (followed by a rule); the first `left` columns are left-aligned,
    the rest (numbers) right-aligned."""
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(lines[0]))]
    for k, l in enumerate(lines):
        print("  ".join(str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(l, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def md_row(cells) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(cells) + " |"


def skip_without_data() -> bool:
    """True (after printing `skipped: ...`) when ../shared/data is missing: the caller exits 0, so that a
    checkout without the shared data still runs every script."""
    msg = corpus.missing_data()
    if msg:
        print(msg)
    return bool(msg)


def _version(md, name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def machine(packages: tuple[str, ...] = (), *, gpu: bool = False, git: bool = False) -> dict:
    """What the numbers were measured on: cores, CPU model, RAM, load average at the start (a loaded machine
    explains slow runs), and the versions of `packages` that are installed."""
    import importlib.metadata as md

    info = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "?")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    try:
        kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        info["ram_gib"] = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    info["versions"] = {p: v for p in packages if (v := _version(md, p)) is not None}
    if gpu:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible"
    if git:
        repo = str(corpus.REPO)
        try:
            info["commit"] = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                                            text=True).stdout.strip()
            # other work in progress in the same checkout: which curator files differ from the commit
            info["uncommitted"] = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "curator"],
                                                 capture_output=True, text=True).stdout.splitlines()
        except OSError:
            pass
    return info


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def header(info: dict, date: str | None = None) -> dict:
    """The first keys of a results file: when, the command line, the machine."""
    return {"date": date or now(), "command": " ".join(sys.argv), "machine": info}


def write_results(name: str, out: dict, *, partial: bool = False) -> Path:
    """Write `benchmarks/.data/NAME.json`, or NAME_partial.json for a partial run (--quick, --only, ...) so that
    a smoke run never overwrites the results of a full one; print where."""
    target = corpus.CACHE / (name + ("_partial" if partial else "") + ".json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nresults written to {target}")
    return target
