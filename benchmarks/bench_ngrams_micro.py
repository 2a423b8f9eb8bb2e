"""Micro-benchmark of corpus n-gram statistics (the ingest hot path), one thread.

Corpus: documents of ../shared/data (tinyshakespeare split at blank lines, wikitext-2 split at
lines), replicated until --mb megabytes, each copy k >= 1 suffixed with " k" so that copies are
not identical (or, with --perturb P, with a share P of its words suffixed with k, which makes most
3- and 4-grams distinct as in a corpus without copies). Batches of --batch documents, all one
group unless --groups > 1 (then codes cycle).

    POLARS_MAX_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ngrams_micro.py --mb 50

Prints wall and CPU seconds, MB/s of input text, peak RSS, and a per-phase breakdown (the
phases are timed by wrapping the module's functions, which adds a little overhead).
"""
from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse
import random
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curator.stats import ngrams, tokenize  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def corpus(mb: float, perturb: float = 0.0) -> list[str]:
    shakespeare = (DATA / "tinyshakespeare.txt").read_text()
    wiki = (DATA / "wikitext2_valid.txt").read_text()
    docs = [p for p in re.split(r"\n\s*\n", shakespeare) if p.strip()]
    docs += [line for line in wiki.split("\n") if line.strip()]
    out: list[str] = []
    size = 0
    copy = 0
    rng = random.Random(0)
    while size < mb * 1e6:
        for d in docs:
            if copy == 0:
                text = d
            elif perturb:
                # Suffix a share of the words with the copy number: fewer repeated n-grams,
                # closer to a corpus without copies.
                text = " ".join(w + str(copy) if rng.random() < perturb else w for w in d.split(" "))
            else:
                text = f"{d} {copy}"
            out.append(text)
            size += len(text.encode())
        copy += 1
    return out


class Phases:
    """Accumulates CPU time of wrapped functions (outermost call only)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}

    def wrap(self, owner, name: str, label: str) -> None:
        fn = getattr(owner, name)
        phases = self

        def timed(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                phases.total[label] = phases.total.get(label, 0.0) + time.process_time() - t0

        setattr(owner, name, timed)


def calibrate() -> float:
    """ns per element of sorting 64k random uint64 (best of 30): how loaded the machine is.

    On this project's 2-core VM, idle, this read about 6-7 ns; under contention it rises and
    every figure above rises with it.
    """
    x = np.random.default_rng(0).integers(0, 2**63, 1 << 16, dtype=np.uint64)
    best = float("inf")
    for _ in range(30):
        t0 = time.process_time()
        np.sort(x)
        best = min(best, time.process_time() - t0)
    return best / len(x) * 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--perturb", type=float, default=0.0, help="share of words suffixed in each copy")
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--phases", action="store_true", help="also run once with per-phase timers")
    ap.add_argument("--block", type=int, default=None, help="tokens per aggregation block (tuning)")
    args = ap.parse_args()
    if args.block:
        ngrams._BLOCK_TOKENS = args.block
    if not DATA.is_dir():
        sys.exit(f"benchmark data not found at {DATA}")
    docs = corpus(args.mb, args.perturb)
    arr = pa.array(docs, pa.large_string())
    nbytes = arr.buffers()[2].size
    groups = np.arange(len(docs)) % args.groups
    print(f"{len(docs)} docs, {nbytes / 1e6:.1f} MB, batches of {args.batch}, {args.groups} group(s)")

    def run() -> tuple[float, float, ngrams.NgramStats]:
        acc = ngrams.NgramAccumulator()
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(arr), args.batch):
            acc.update(arr.slice(i, args.batch), groups[i : i + args.batch])
        state = acc.state_nbytes()
        stats = acc.finish([f"g{i}" for i in range(args.groups)])
        return time.perf_counter() - w0, time.process_time() - c0, stats, state

    # Warm-up: imports (polars) and caches (the Unicode table) are not the steady state.
    warm = ngrams.NgramAccumulator()
    warm.update(pa.array(["warm up café", "Ünïcode"]), np.zeros(2, np.int64))
    warm.finish(["x"])
    best = None
    for _ in range(args.repeat):
        wall, cpu, stats, state = run()
        print(f"wall {wall:.2f}s ({nbytes / wall / 1e6:.1f} MB/s)  cpu {cpu:.2f}s ({nbytes / cpu / 1e6:.1f} MB/s)")
        best = cpu if best is None else min(best, cpu)
    print(f"calibration: sort of 64k uint64 = {calibrate():.1f} ns/element")
    print(f"best cpu: {best:.2f}s = {nbytes / best / 1e6:.1f} MB/s; missing texts: {stats.missing_texts}")
    print(f"partial aggregates before finish: {state / 1e6:.0f} MB; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("distinct per (origin, n):", stats.totals.to_pydict()["distinct"])

    if args.phases:
        ph = Phases()
        ph.wrap(tokenize.WordTokenizer, "encode", "tokenize (all)")
        ph.wrap(tokenize, "_word_bytes", "  classify bytes")
        ph.wrap(tokenize, "_token_bounds", "  token bounds")
        ph.wrap(tokenize, "_hash_word_tokens", "  hash tokens")
        ph.wrap(tokenize, "_lowercase_docs", "  lowercase non-ascii docs")
        ph.wrap(ngrams.NgramAccumulator, "_add_block", "n-gram blocks (all)")
        ph.wrap(ngrams, "_aggregate", "  aggregate (sort, count, df)")
        ph.wrap(ngrams.NgramAccumulator, "_block_candidates", "  text candidates")
        ph.wrap(ngrams.NgramAccumulator, "_keep_texts", "keep texts")
        ph.wrap(ngrams.NgramAccumulator, "finish", "finish (all)")
        ph.wrap(ngrams, "_merge_runs", "  merge partials")
        wall, cpu, _, _ = run()
        print(f"with timers: cpu {cpu:.2f}s")
        for label, secs in ph.total.items():
            print(f"  {label:34s} {secs:6.2f}s")


if __name__ == "__main__":
    main()
