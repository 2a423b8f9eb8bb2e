"""Where the time of a loop round goes: `curator demo` end to end, then each step per round from the store.

    .venv/bin/python benchmarks/bench_loop.py [--full] [--cores 0]

Runs `curator demo --quick` (or the default demo with `--full`) as a user would (a subprocess, one torch
thread, OMP_WAIT_POLICY=PASSIVE), times it, then reads every step's wall time back from the store's `runs`
(each loop step is one run marked with its arm, round and step; the mark holds when the step started). Prints:

- the demo's wall time, CPU time and peak RSS;
- seconds per step and round, summed over the arms (round 0 = the shared base model);
- the curation share: everything but generate, train and eval (score, shift, select, export, edit), of the
  loop's step time in all and of an average round;
- generation and training throughput (tokens/s) from the runs' summaries.

Results go to `benchmarks/.data/bench_loop.json`; record them in RESULTS.md with the command and machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
from common import fmt, header, machine, print_aligned, taskset, write_results  # noqa: E402

CURATION = ("edit", "score", "shift", "select", "export")
ORDER = ("ingest", "generate", "edit", "score", "shift", "select", "export", "train", "eval")


def run_demo(out: Path, full: bool, cores) -> dict:
    cmd = [*taskset(cores), sys.executable, "-m", "curator.cli", "-q", "demo", "--out", str(out)]
    if not full:
        cmd.append("--quick")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=BENCH.parent)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_rss_mb": after.ru_maxrss / 1024, "stdout_tail": proc.stdout[-2500:]}


def step_table(store_path: Path) -> dict:
    from curator.loop.steps import context, step_seconds
    from curator.store import Store

    runs = Store(store_path).runs().sort_by("seq").to_pylist()
    seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    tokens = {"generate_new_tokens": 0, "generate_s": 0.0, "train_tokens": 0, "train_s": 0.0}
    for run in runs:
        ctx = context(run)
        if "step" not in ctx or ctx.get("step") == "start":
            continue
        s = step_seconds(run)
        seconds[int(ctx["round"])][ctx["step"]] += s
        summary = json.loads(run["summary"])
        if ctx["step"] == "generate":
            tokens["generate_new_tokens"] += int(summary.get("new_tokens", 0))
            tokens["generate_s"] += s
        if ctx["step"] == "train":
            tokens["train_tokens"] += int(summary.get("tokens_trained", 0))
            tokens["train_s"] += s
    return {"seconds": {r: dict(v) for r, v in sorted(seconds.items())}, **tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the default demo instead of --quick")
    ap.add_argument("--cores", default=None, help="pin the demo to these cores (taskset list, e.g. 0 or 0,1)")
    args = ap.parse_args()
    info = machine(("torch", "transformers", "pylance", "duckdb"), git=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        demo = run_demo(out, args.full, args.cores)
        table = step_table(out / "store")
        summary = json.loads((out / "summary.json").read_text())
    secs = table["seconds"]
    steps = [s for s in ORDER if any(s in v for v in secs.values())]
    print(f"curator demo{'' if args.full else ' --quick'}: {demo['wall_s']:.1f} s wall, {demo['cpu_s']:.1f} s CPU, "
          f"peak RSS {demo['peak_rss_mb']:.0f} MB\n")
    lines = [("round", *steps, "all", "curation share")]
    total = defaultdict(float)
    for r, v in secs.items():
        all_s = sum(v.values())
        cur = sum(v.get(s, 0.0) for s in CURATION)
        lines.append((str(r), *(fmt(v.get(s)) for s in steps), fmt(all_s), f"{100 * cur / all_s:.0f}%" if all_s else "-"))
        for s, x in v.items():
            total[s] += x
    all_s = sum(total.values())
    cur = sum(total.get(s, 0.0) for s in CURATION)
    lines.append(("all", *(fmt(total.get(s)) for s in steps), fmt(all_s), f"{100 * cur / all_s:.0f}%"))
    print("seconds per step and round (summed over the arms; round 0 = the shared base model)")
    print_aligned(lines)
    rounds = [r for r in secs if r > 0]
    per_round = {s: sum(secs[r].get(s, 0.0) for r in rounds) / max(len(rounds), 1) for s in steps}
    round_all = sum(per_round.values())
    round_cur = sum(per_round.get(s, 0.0) for s in CURATION)
    gen_tps = table["generate_new_tokens"] / table["generate_s"] if table["generate_s"] else None
    train_tps = table["train_tokens"] / table["train_s"] if table["train_s"] else None
    print(f"\nan average round (rounds 1..{max(rounds)}, all arms): {round_all:.1f} s, curation "
          f"{round_cur:.1f} s = {100 * round_cur / round_all:.0f}%")
    print(f"generation: {fmt(gen_tps, '.0f')} new tokens/s; training: {fmt(train_tps, '.0f')} tokens/s (CPU, one thread)")
    write_results("bench_loop" + ("" if args.full else "_quick"), {
        **header(info), "demo": {k: v for k, v in demo.items() if k != "stdout_tail"}, "steps": secs,
        "per_round": per_round, "curation_share_round": round_cur / round_all, "curation_share_all": cur / all_s,
        "generate_tokens_per_s": gen_tps, "train_tokens_per_s": train_tps, "summary": summary})


if __name__ == "__main__":
    main()
