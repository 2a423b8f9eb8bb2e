"""`curator shift` on a store of 1M samples in two generations, on ONE core.

    .venv/bin/python benchmarks/bench_shift.py               # builds the corpus (cached) and a fresh store
    .venv/bin/python benchmarks/bench_shift.py --reuse-store # keep the store of a previous run, skip ingest
    .venv/bin/python benchmarks/bench_shift.py --n 100000    # a smaller store (n documents per generation)

Corpus (`corpus.shift_corpus`, cached in benchmarks/.data/): 500,000 short human-like documents (generation 0:
GSM8K questions and answer lines, Shakespeare speeches, WikiText paragraphs, perturbed copies) and 500,000
synthetic-like ones (generation 1: Zipf-skewed draws of the same units, tail words replaced by frequent words,
stock phrases injected); see corpus.py's docstring.

Steps, each timed: `ingest` of generation 0 (origin human) and of generation 1 (origin synthetic) into a
fresh store (parse, ids, Lance write, n-gram statistics); `connect` (DuckDB views over the Lance tables,
`threads=1`); `shift_report(con, 1, baseline=0)` end to end, twice (the first pays the cold reads); then every
query of `sql/shift/*.sql` on its own through the same connection (`curator.shift.run_query`), 3 runs each
(first and median reported). The process re-executes itself under `taskset -c 0`, with POLARS_MAX_THREADS,
OMP_NUM_THREADS, RAYON_NUM_THREADS, LANCE_CPU_THREADS = 1 and `pyarrow.set_cpu_count(1)`.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / pyarrow / polars imports

common.single_thread_env()

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

RESULTS_JSON = corpus.CACHE / "bench_shift.json"


def _pin(core: str | None) -> None:
    """Re-execute this script under `taskset -c CORE` once (no-op without taskset or when already pinned)."""
    prefix = common.taskset(core)
    if not prefix or os.environ.get("CURATOR_BENCH_PINNED"):
        return
    os.environ["CURATOR_BENCH_PINNED"] = core
    os.execvp("taskset", [*prefix, sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])


def timed(fn, *a, **k):
    with common.Clock() as c:
        out = fn(*a, **k)
    return out, c.wall, c.cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500_000, help="documents per generation")
    ap.add_argument("--core", default="0", help="CPU to pin to with taskset ('' = no pinning)")
    ap.add_argument("--reuse-store", action="store_true", help="reuse benchmarks/.data/shift-store-N if present")
    ap.add_argument("--keep-store", action="store_true", help="do not delete the store at the end")
    args = ap.parse_args(argv)
    if common.skip_without_data():
        return 0
    _pin(args.core)
    common.pin()  # the process is already under taskset: Arrow's pools only
    from curator.ingest.pipeline import ingest
    from curator.ingest.readers import FieldMap
    from curator.resources import sql_dir
    from curator.shift import format_report, run_query, shift_report
    from curator.store import Store
    from curator.store.query import connect

    gen0, gen1 = corpus.shift_corpus(args.n)
    root = corpus.CACHE / f"shift-store-{args.n}"
    res: dict = {"corpus": [corpus.describe(gen0), corpus.describe(gen1)],
                 "pinned_core": os.environ.get("CURATOR_BENCH_PINNED")}
    print(f"corpus: {gen0.name} ({gen0.stat().st_size / corpus.MB:.1f} MB), {gen1.name} "
          f"({gen1.stat().st_size / corpus.MB:.1f} MB); store {root}", file=sys.stderr, flush=True)

    if args.reuse_store and (root / "runs.lance").exists():
        store = Store(root)
        res["ingest"] = "reused"
    else:
        shutil.rmtree(root, ignore_errors=True)
        store = Store(root, create=True)
        res["ingest"] = {}
        for g, (path, origin) in enumerate(((gen0, "human"), (gen1, "synthetic"))):
            print(f"  ingest generation {g} ...", file=sys.stderr, flush=True)
            r, wall, cpu = timed(ingest, store, [path], generation=g, origin=origin, fields=FieldMap(text="text"))
            mb = path.stat().st_size / corpus.MB
            res["ingest"][f"gen{g}"] = {"wall_s": wall, "cpu_s": cpu, "rows_added": r.rows_added,
                                        "duplicates": r.duplicates, "mb": mb, "mb_s": mb / wall,
                                        "docs_s": r.rows_read / wall}

    con, wall, _ = timed(connect, store, threads=1)
    res["connect_s"] = wall
    counts = {t: con.sql(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]
              for t in ("samples", "ngram_totals", "ngram_buckets", "ngram_top", "ngram_sample")}
    res["table_rows"] = counts

    report = []
    for attempt in ("first", "second"):
        rows, wall, cpu = timed(shift_report, con, 1, baseline=0)
        res[f"shift_report_{attempt}_s"] = wall
        res[f"shift_report_{attempt}_cpu_s"] = cpu
        report = rows

    params = {"generation": 1, "baseline": 0, "origin": "*", "tokenizer": "word_v1", "n": 2, "limit_rows": 20}
    per_query = {}
    for path in sorted((sql_dir() / "shift").glob("*.sql")):
        name = f"shift/{path.stem}"
        times = []
        nrows = None
        for _ in range(3):
            table, wall, _ = timed(run_query, con, name, **params)
            times.append(wall)
            nrows = table.num_rows
        per_query[name] = {"first_s": times[0], "median_s": statistics.median(times), "rows": nrows,
                           "in_shift_report": path.stem in ("distinct_n", "concentration", "js_divergence",
                                                             "tail_loss", "length")}
    res["per_query"] = per_query
    res["peak_rss_mb"] = common.peak_rss_mb()
    res["alarms"] = [r.metric for r in report if r.status == "alarm"]

    # ------------------------------------------------------------------ print
    print()
    if isinstance(res["ingest"], dict):
        for g, r in res["ingest"].items():
            print(f"ingest {g}: {r['wall_s']:.2f} s  ({r['mb']:.1f} MB, {r['rows_added']:,} rows, "
                  f"{r['mb_s']:.2f} MB/s, {r['docs_s']:,.0f} docs/s, cpu/wall {r['cpu_s'] / r['wall_s']:.2f})")
    print(f"connect: {res['connect_s']:.3f} s; table rows: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    print(f"shift_report end to end: {res['shift_report_first_s']:.3f} s first, "
          f"{res['shift_report_second_s']:.3f} s second")
    print()
    print(f"{'query':28} {'first s':>8} {'median s':>9} {'rows':>5}  in report")
    print(f"{'-' * 28} {'-' * 8} {'-' * 9} {'-' * 5}  ---------")
    for name, q in per_query.items():
        flag = "yes" if q["in_shift_report"] else "no"
        print(f"{name:28} {q['first_s']:8.3f} {q['median_s']:9.3f} {q['rows']:5d}  {flag}")
    in_report = sum(q["median_s"] for q in per_query.values() if q["in_shift_report"])
    print(f"{'sum of the report queries':28} {'':8} {in_report:9.3f}")
    res["sum_report_queries_median_s"] = in_report
    print(f"\npeak RSS {res['peak_rss_mb']:.0f} MB\n")
    print(format_report(report))

    out = {"date": common.now(), "command": " ".join(sys.argv), "results": res, "report": [r.__dict__ for r in report]}
    # Only the default size writes bench_shift.json; a smaller run does not overwrite its results.
    target = RESULTS_JSON if args.n == 500_000 else RESULTS_JSON.with_name(f"bench_shift_{args.n}.json")
    target.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nresults written to {target}")
    if not args.keep_store:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
