"""Micro-benchmark of corpus n-gram statistics (the ingest hot path), one thread.

Corpus: documents of ../shared/data (tinyshakespeare split at blank lines, wikitext-2 split at
lines), replicated until --mb megabytes, each copy k >= 1 suffixed with " k" so that copies are
not identical (or, with --perturb P, with a share P of its words suffixed with k, which makes most
3- and 4-grams distinct as in a corpus without copies). Batches of --batch documents, all one
group unless --groups > 1 (then codes cycle).

    POLARS_MAX_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ngrams_micro.py --mb 50

Prints wall and CPU seconds, MB/s of input text, peak RSS, and a per-phase breakdown (the
phases are timed by wrapping the module's functions, which adds a little overhead).

Streaming mode (``--jsonl PATH``): reads the "text" field of a JSONL file with pyarrow's streaming
JSON reader (16 MiB blocks, one thread) and feeds it in batches of 8192 documents (as
``curator.stats.corpus`` does), so that nothing but the accumulator grows with the corpus: peak RSS
then shows whether ingest memory is bounded. Run each size in a fresh process (peak RSS is per
process), pinned to one core::

    taskset -c 0 .venv/bin/python benchmarks/bench_ngrams_micro.py \
        --jsonl benchmarks/.data/corpus_100mb_prefix_50mb.jsonl --repeat 1 [--budget 268435456]

``--root DIR`` imports ``curator`` from another checkout (e.g. the previous commit, for a
before/after comparison); ``--budget``/``--spill-dir`` are only passed when given.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / pyarrow / polars imports

common.single_thread_env(keep_set=True)  # one thread unless the caller exported another count

import argparse
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

_ROOT = Path(__file__).resolve().parents[1]
if "--root" in sys.argv:
    _ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
sys.path.insert(0, str(_ROOT))

from curator.stats import ngrams, tokenize  # noqa: E402

DATA = common.corpus.SHARED_DATA


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
        fn = getattr(owner, name, None)
        if fn is None:  # another version of the engine (--root) without this function
            return
        phases = self

        def timed(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                phases.total[label] = phases.total.get(label, 0.0) + time.process_time() - t0

        setattr(owner, name, timed)

    def report(self) -> None:
        for label, secs in self.total.items():
            print(f"  {label:34s} {secs:6.2f}s")


def install_phases() -> Phases:
    """Wrap the engine's phases with CPU timers (outermost call of each only)."""
    from curator.stats import fold, texts

    ph = Phases()
    ph.wrap(tokenize.WordTokenizer, "_encode", "tokenize (all)")
    ph.wrap(tokenize, "_lowercase_docs", "  lowercase non-ascii docs")
    ph.wrap(tokenize, "_word_bytes", "  classify bytes")
    ph.wrap(tokenize, "_token_bounds", "  token bounds")
    ph.wrap(tokenize, "_hash_word_tokens", "  hash tokens")
    ph.wrap(ngrams.NgramAccumulator, "_add_block", "n-gram blocks (all)")
    ph.wrap(ngrams, "_aggregate_block", "  sort, count, doc_freq")
    ph.wrap(texts._TopTexts, "block", "  text candidates")
    ph.wrap(ngrams.NgramAccumulator, "_spill", "  spill")
    ph.wrap(texts._TopTexts, "keep", "keep texts")
    ph.wrap(ngrams.NgramAccumulator, "finish", "finish (all)")
    ph.wrap(ngrams, "_merge_unit", "  merge value ranges")
    ph.wrap(fold._Fold, "add", "  fold into the tables")
    return ph


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


def read_texts(path: str, chunk: int = 8 << 20):
    """The "text" column of a JSONL file, ~``chunk`` bytes of lines at a time.

    pyarrow's own streaming reader reads ahead by an amount that grows with the file, which
    would show up as peak RSS growing with the corpus; parsing chunks we cut ourselves keeps the
    reader's memory fixed.
    """
    import pyarrow.json as pj

    options = pj.ReadOptions(use_threads=False, block_size=chunk + (1 << 20))
    rest = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk)
            if not data:
                if rest.strip():
                    yield pj.read_json(pa.BufferReader(rest), read_options=options).column("text")
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                yield pj.read_json(pa.BufferReader(data[:cut]), read_options=options).column("text")


def stream_jsonl(args) -> None:
    """Feed a JSONL file's texts batch by batch; report time, peak RSS and spill activity."""
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    options = {}
    if args.budget is not None:
        options["memory_budget"] = args.budget
    if args.spill_dir is not None:
        options["spill_dir"] = args.spill_dir
    warm = ngrams.NgramAccumulator(**options)
    warm.update(pa.array(["warm up café", "Ünïcode"]), np.zeros(2, np.int64))
    warm.finish(["x"])
    del warm
    nbytes = Path(args.jsonl).stat().st_size
    ph = None
    for run_index in range(args.repeat + (1 if args.phases else 0)):
        if args.phases and run_index == args.repeat:
            ph = install_phases()
            print("with per-phase timers (adds a little overhead):")
        rss0 = common.peak_rss_mb()
        acc = ngrams.NgramAccumulator(**options)
        w0, c0 = time.perf_counter(), time.process_time()
        acc_cpu = 0.0
        peak_state = 0
        rss1 = None
        for texts in read_texts(args.jsonl):
            for i in range(0, len(texts), 8192):
                chunk = texts.slice(i, 8192)
                t = time.process_time()
                acc.update(chunk, np.zeros(len(chunk), np.int32))
                acc_cpu += time.process_time() - t
                peak_state = max(peak_state, acc.state_nbytes())
                rss1 = common.peak_rss_mb() if rss1 is None else rss1
        t = time.process_time()
        stats = acc.finish(["human"])
        finish_cpu = time.process_time() - t
        acc_cpu += finish_cpu
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        spilled = getattr(acc, "spilled_nbytes", lambda: 0)()
        if hasattr(acc, "close"):
            acc.close()
        print(f"{Path(args.jsonl).name}: {nbytes / 1e6:.1f} MB  wall {wall:.2f}s  cpu {cpu:.2f}s "
              f"(accumulator {acc_cpu:.2f}s = {nbytes / acc_cpu / 1e6:.2f} MB/cpu-s, finish {finish_cpu:.2f}s)  "
              f"peak RSS {common.peak_rss_mb():.0f} MB (before {rss0:.0f}, after one batch {rss1:.0f})  "
              f"peak state {peak_state / 2**20:.0f} MiB  "
              f"spilled {spilled / 2**20:.0f} MiB  missing {stats.missing_texts}  "
              f"distinct {stats.totals['distinct'].to_pylist()}", flush=True)
    if ph is not None:
        ph.report()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jsonl", default=None, help="stream this JSONL file's 'text' field (see docstring)")
    ap.add_argument("--budget", type=int, default=None, help="memory_budget in bytes (streaming mode)")
    ap.add_argument("--spill-dir", default=None, help="spill_dir (streaming mode)")
    ap.add_argument("--root", default=None, help="import curator from this checkout")
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
    if args.jsonl:
        stream_jsonl(args)
        return
    if common.skip_without_data():
        return
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
          f"peak RSS {common.peak_rss_mb():.0f} MB")
    print("distinct per (origin, n):", stats.totals.to_pydict()["distinct"])

    if args.phases:
        ph = install_phases()
        wall, cpu, _, _ = run()
        print(f"with timers: cpu {cpu:.2f}s")
        ph.report()


if __name__ == "__main__":
    main()
