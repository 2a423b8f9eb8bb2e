"""Verifier throughput: gsm8k_answer_v1 against a plain-Python reference (ONE core), and code_tests_v1 samples/s.

    .venv/bin/python benchmarks/bench_verifiers.py            # everything (about two minutes)
    .venv/bin/python benchmarks/bench_verifiers.py --quick    # 5 MB of answers, 40 code samples

Data: the GSM8K answers of ../shared/data (train + test, 8,792 human solutions ending in "#### <n>"),
replicated in order to `--mb` MB (10^6 bytes of answer text, default 25). Each row is scored as a sample
whose text AND reference are that answer, so every row costs two extractions (sample and reference), a
normalisation of both and a comparison; MB/s counts the text column only. Two variants:
  marker    the answers as they are: the "####" rule finds every answer;
  fallback  "####" replaced by "The answer is": every sample takes the last-number path (the reference
            keeps its marker), the cost of model outputs that ignore the format.

Contenders, each in a fresh subprocess pinned to one core (`os.sched_setaffinity`) with
`pyarrow.set_cpu_count(1)` and the usual thread variables at 1:
(a) curator `gsm8k_answer_v1.score` over batches of 256 rows (the CLI's default batch) and of 65,536 rows;
(b) plain Python doing the same extraction and normalisation row by row (`re`, compiled patterns, one
    `for` loop: what one would write without Arrow). The worker also scores its data with curator (not
    timed) and counts the rows where the two disagree.
Times exclude interpreter start-up, imports and building the table; with `--repeat N` the fastest run
is kept. `cpu/wall` below 1 means the shared core was busy with someone else's work.

(c) code_tests_v1 on trivial programs ("def f(x): return 2 * x" against two asserts), `--code-samples`
    of them, with `workers` 1 and 2 and isolation "auto" (namespaces here) and "basic". Not pinned: two
    workers need the two cores. Each sample is a fresh sandbox (a new interpreter, namespaces, a pivoted
    root, a tmpfs), so this measures the sandbox's fixed cost per sample.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / pyarrow imports

common.single_thread_env()

import argparse
import json
import re
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))
import corpus  # noqa: E402

MB = corpus.MB


# =========================================================================== data


def gsm8k_answers() -> list[str]:
    answers = []
    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        with open(corpus.SHARED_DATA / name, encoding="utf-8") as f:
            answers += [json.loads(line)["answer"] for line in f if line.strip()]
    return answers


def rows(target_mb: float, variant: str) -> tuple[list[str], list[str]]:
    """(texts, references): the answers repeated in order until the texts reach target_mb."""
    base = gsm8k_answers()
    texts, refs, size, i = [], [], 0, 0
    while size < target_mb * MB:
        answer = base[i % len(base)]
        text = answer.replace("####", "The answer is") if variant == "fallback" else answer
        texts.append(text)
        refs.append(answer)
        size += len(text.encode())
        i += 1
    return texts, refs


# =========================================================================== workers (one per subprocess)


_one_core = common.pin
_Clock = common.Clock


def w_curator(args: dict) -> dict:
    _one_core(args["core"])
    import pyarrow as pa
    import pyarrow.compute as pc

    from curator.scorers import create

    texts, refs = rows(args["mb"], args["variant"])
    table = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": texts, "reference": refs})
    scorer = create("gsm8k_answer_v1")
    bs = args["batch"]
    batches = [table.slice(i, bs) for i in range(0, table.num_rows, bs)]
    accepted = 0
    with _Clock() as c:
        for b in batches:
            accepted += pc.sum(scorer.score(b).column("correct")).as_py() or 0
    return {"wall_s": c.wall, "cpu_s": c.cpu, "docs": table.num_rows, "bytes": sum(len(t.encode()) for t in texts),
            "accepted": accepted}


# The plain-Python reference: the same rules as curator.scorers.verifiers, one row at a time.
NUMBER = r"[-+]?\$?(?:[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)%?"
MARKER = re.compile(r"####[\s*$]*(" + NUMBER + ")")
ANY_NUMBER = re.compile(NUMBER)
DROP = re.compile(r"[\s,$]+")
PLAIN = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def py_normalize(s: str | None) -> str | None:
    if s is None:
        return None
    s = DROP.sub("", s)
    if s.startswith("+"):
        s = s[1:]
    if s.endswith(("%", ".")):
        s = s[:-1]
    if PLAIN.fullmatch(s):
        sign = "-" if s.startswith("-") else ""
        digits = s.lstrip("-")
        whole, _, frac = digits.partition(".")
        whole = whole.lstrip("0") or "0"
        frac = frac.rstrip("0")
        s = sign + whole + ("." + frac if frac else "")
        if s == "-0":
            s = "0"
    return s or None


def py_extract(text: str | None, fallback: bool = True) -> str | None:
    if text is None:
        return None
    m = MARKER.search(text)
    if m:
        return py_normalize(m.group(1))
    if fallback:
        found = ANY_NUMBER.findall(text)
        return py_normalize(found[-1]) if found else None
    return None


def py_score(texts: list[str], refs: list[str]) -> list[bool | None]:
    out = []
    for text, ref in zip(texts, refs):
        r = py_extract(ref)
        a = py_extract(text)
        out.append(None if r is None else a == r)
    return out


def w_python(args: dict) -> dict:
    _one_core(args["core"])
    texts, refs = rows(args["mb"], args["variant"])
    with _Clock() as c:
        verdicts = py_score(texts, refs)
    # agreement with curator on the same rows (not timed)
    import pyarrow as pa

    from curator.scorers import create

    table = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": texts, "reference": refs})
    ours = create("gsm8k_answer_v1").score(table).column("correct").to_pylist()
    disagree = sum(1 for a, b in zip(verdicts, ours) if a != b)
    return {"wall_s": c.wall, "cpu_s": c.cpu, "docs": len(texts), "bytes": sum(len(t.encode()) for t in texts),
            "accepted": sum(1 for v in verdicts if v), "disagreements": disagree}


def w_code(args: dict) -> dict:
    import pyarrow as pa

    from curator.scorers import create
    from curator.scorers import sandbox

    n = args["n"]
    table = pa.table({"sample_id": [str(i) for i in range(n)],
                      "text": [f"def f(x):\n    return 2 * x  # sample {i}\n" for i in range(n)],
                      "prompt": [None] * n, "reference": ["assert f(2) == 4\nassert f(-1) == -2\n"] * n,
                      "metadata": [None] * n})
    scorer = create("code_tests_v1", {"workers": args["workers"], "isolation": args["isolation"], "timeout_s": 10})
    scorer.setup()
    with _Clock() as c:
        out = scorer.score(table)
    statuses = out.column("status").to_pylist()
    durations = out.column("duration_s").to_pylist()
    layers = sandbox.probe(args["isolation"])["layers"]
    return {"wall_s": c.wall, "cpu_s": c.cpu, "docs": n, "passed": statuses.count("passed"),
            "median_sample_s": sorted(durations)[n // 2], "layers": layers}


WORKERS = {"curator": w_curator, "python": w_python, "code": w_code}


def worker_main(name: str, args: dict, out: Path) -> None:
    common.write_worker_result(out, common.guarded(WORKERS[name], args))


# =========================================================================== the parent


def run_worker(name: str, args: dict, repeat: int = 1) -> dict:
    def once() -> dict:
        print(f"  running {name} {args} ...", file=sys.stderr, flush=True)
        return common.launch(__file__, ["--worker", name, "--args", json.dumps(args)])

    best = common.best_of(once, repeat)
    if "error" in best:
        print(f"!! {name}: {best['error']}\n{best.get('traceback', '')}", file=sys.stderr)
        return best
    s = best["wall_s"]
    best["docs_s"] = best["docs"] / s
    if "bytes" in best:
        best["mb_s"] = best["bytes"] / MB / s
        best["mb_s_cpu"] = best["bytes"] / MB / best["cpu_s"] if best["cpu_s"] else None
    best["cpu_wall"] = best["cpu_s"] / s if s else None
    return best


fmt = common.fmt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--args", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--core", type=int, default=0, help="CPU to pin the gsm8k contenders to (-1 = no pinning)")
    ap.add_argument("--mb", type=float, default=25, help="MB of answer text for gsm8k_answer_v1")
    ap.add_argument("--python-mb", type=float, default=None, help="MB for the plain-Python reference (default: --mb)")
    ap.add_argument("--code-samples", type=int, default=120, help="trivial programs per code_tests_v1 run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timed contender (fastest kept)")
    ap.add_argument("--quick", action="store_true", help="5 MB, 40 code samples, one run each")
    ap.add_argument("--only", default="", help="comma-separated subset: gsm8k,code")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, json.loads(args.args), args.out)
        return 0
    if common.skip_without_data():
        return 0
    if args.quick:
        args.mb, args.code_samples, args.repeat = 5, 40, 1
    core = None if args.core < 0 else args.core
    py_mb = args.python_mb or args.mb
    only = set(filter(None, args.only.split(","))) or {"gsm8k", "code"}
    results: dict[str, dict] = {}
    table: list[tuple[str, dict]] = []

    if "gsm8k" in only:
        for variant in ("marker", "fallback"):
            for bs in (256, 65536):
                key = f"curator_{variant}_b{bs}"
                results[key] = run_worker("curator", {"core": core, "mb": args.mb, "variant": variant, "batch": bs},
                                          args.repeat)
                table.append((f"(a) curator gsm8k_answer_v1, {variant}, batches of {bs:,}", results[key]))
            key = f"python_{variant}"
            results[key] = run_worker("python", {"core": core, "mb": py_mb, "variant": variant}, args.repeat)
            table.append((f"(b) plain Python, {variant}", results[key]))
    if "code" in only:
        for isolation in ("auto", "basic"):
            for workers in (1, 2):
                key = f"code_{isolation}_w{workers}"
                results[key] = run_worker("code", {"n": args.code_samples, "workers": workers,
                                                   "isolation": isolation}, 1)
                table.append((f"(c) code_tests_v1, isolation={isolation}, workers={workers}", results[key]))

    print()
    print("| contender | input | wall s | docs/s | MB/s | MB/cpu-s | cpu/wall | note |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, r in table:
        if "error" in r:
            print(f"| {label} | | | | | | | ERROR {r['error']} |")
            continue
        size = f"{r['bytes'] / MB:.0f} MB" if "bytes" in r else f"{r['docs']} samples"
        note = ""
        if "disagreements" in r:
            note = f"{r['disagreements']} rows disagree with curator"
        elif "accepted" in r:
            note = f"{r['accepted']:,} of {r['docs']:,} accepted"
        elif "passed" in r:
            note = (f"{r['passed']}/{r['docs']} passed, median sandbox {r['median_sample_s'] * 1000:.0f} ms, "
                    f"layers {'+'.join(r['layers']) or 'none'}")
        print(f"| {label} | {size} | {r['wall_s']:.2f} | {r['docs_s']:,.0f} | {fmt(r.get('mb_s'), '.2f')} | "
              f"{fmt(r.get('mb_s_cpu'), '.2f')} | {fmt(r.get('cpu_wall'), '.2f')} | {note} |")
    print()
    for variant in ("marker", "fallback"):
        py = results.get(f"python_{variant}", {})
        for bs in (256, 65536):
            cur = results.get(f"curator_{variant}_b{bs}", {})
            if "mb_s" in cur and "mb_s" in py:
                print(f"{variant}: curator (batches of {bs:,}) / plain Python = {cur['mb_s'] / py['mb_s']:.1f}x wall, "
                      f"{cur['mb_s_cpu'] / py['mb_s_cpu']:.1f}x cpu")
    out = {**common.header(common.machine(("pyarrow",))), "results": results}
    common.write_results("bench_verifiers", out, partial=bool(args.only or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
