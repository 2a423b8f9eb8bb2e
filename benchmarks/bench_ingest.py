"""Ingest throughput: curator against a plain-Python reference, datatrove, and a vectorised floor, on ONE core.

    .venv/bin/python benchmarks/bench_ingest.py            # everything (a few minutes)
    .venv/bin/python benchmarks/bench_ingest.py --quick    # smaller prefixes for the slow contenders
    .venv/bin/python benchmarks/bench_ingest.py --profile  # also a cProfile of the full curator ingest

Corpus: `benchmarks/corpus.py` (~100 MB JSONL built from ../shared/data by replicating GSM8K problems,
Shakespeare speeches and WikiText-2 articles with small seeded word perturbations; see its docstring).
MB = 10^6 bytes of JSONL input (the file size, JSON syntax included).

Contenders, each in a fresh subprocess pinned to one core (`taskset -c 0`) with POLARS_MAX_THREADS,
OMP_NUM_THREADS, RAYON_NUM_THREADS, LANCE_CPU_THREADS = 1 and `pyarrow.set_cpu_count(1)`, so that peak RSS
(the worker's VmHWM, /proc/self/status) is that contender's own. Times exclude interpreter start-up and
imports; `cpu/wall` below 1 means the shared core was busy with someone else's work during the run (the
machine is shared): `MB/cpu-s` (bytes over the process's CPU time, all its threads, on its one core) is then
the better estimate of one-core throughput. With `--repeat N` the fastest of N runs is kept; the full-corpus
curator, numpy-code and floor contenders run round-robin (one run of each per round), and each round's
floor/curator ratio is printed too, since the machine's speed drifts between rounds.

(a) curator `ingest` into a fresh store: parse, content ids + dedup, Lance write, n-gram statistics n = 1..4
    (totals, exact distinct, 10,000 hashed buckets, exact top-100 with doc frequency, 1/16 hash sample),
    counted from the stream for a new generation; also with the statistics engine on its numpy code (what a
    machine without a C compiler runs: curator/stats/kernels.py), side by side. Phases, each timed separately in its own process:
    `read_documents` alone (parse only); `ingest(stats=False)` (parse + ids + Lance write); the
    `NgramAccumulator` alone (tokenize + count + finish) over the reader's batches already in memory; and
    `ingest(stats=False)` followed by `recompute` of the statistics from the store (the path of `curator stats`
    and of an ingest into an existing generation: Lance scan + accumulate + write). Also run on the first 25
    and 50 MB, and on a 200 MB corpus built the same way (`--big-mb`): peak RSS must not grow with input size.
(b) plain Python doing the same counting (json.loads per line; `re.findall(r"[^\\W_]+", text.lower())`,
    i.e. runs of Unicode letters and digits; collections.Counter of the 1..4-grams and of their
    per-document sets; distinct; 10,000 buckets of a stable 64-bit blake2b hash; top-100; 1/16 sample),
    on a 10 MB prefix (it is too slow for the whole corpus).
(c) datatrove 0.10.1: `JsonlReader` + `GopherRepetitionFilter` (duplicate lines / paragraphs, top 2..4-gram
    and duplicated 5..10-gram character fractions: the nearest peer pass over words and n-grams), on a
    5 MB prefix. Its default English word tokenizer is spaCy's (`spacy.blank("en")`; skipped with a message
    when spacy is not installed); the filter takes any `WordTokenizer` through its `language` argument, so
    it is also run with a plain whitespace tokenizer (`str.split()`): once with
    the stock thresholds (a document stops being examined at the first check it fails) and once with
    thresholds no document can exceed (every check runs on every document: the same work for all docs).
    datatrove, spaCy, orjson and regex come from the `bench` extra (`make bench` installs it).
(d) the floor: one vectorised pass that reads the JSONL (pyarrow streaming JSON reader, 16 MiB blocks),
    lowercases, splits on whitespace and hashes every token (polars `Series.hash`), over the full corpus.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / pyarrow / polars imports

common.single_thread_env()

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

PROFILE_TXT = corpus.CACHE / "profile_ingest.txt"
TARGET_MBPS = 25.0
TARGET_VS_DATATROVE = 30.0
TARGET_VS_FLOOR = 4.0


# =========================================================================== workers (one per subprocess)


_peak_rss_mb = common.peak_rss_mb
_one_core_arrow = common.pin  # the worker is already under taskset: Arrow's pools only
_Clock = common.Clock


def _store_dir() -> Path:
    corpus.CACHE.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-store-", dir=corpus.CACHE))


def _totals(store) -> dict:
    from curator.store.query import connect

    con = connect(store, threads=1)
    rows = con.sql("SELECT n, documents, tokens, total, \"distinct\" FROM ngram_totals "
                   "WHERE origin = '*' ORDER BY n").fetchall()
    return {f"n{n}": {"documents": d, "tokens": t, "total": tot, "distinct": dis} for n, d, t, tot, dis in rows}


def w_curator(path: Path, stats: bool = True) -> dict:
    _one_core_arrow()
    from curator.ingest.pipeline import ingest
    from curator.ingest.readers import FieldMap
    from curator.store import Store

    root = _store_dir()
    rss0 = _peak_rss_mb()
    try:
        with _Clock() as c:
            store = Store(root / "store", create=True)
            result = ingest(store, [path], generation=0, origin="human", fields=FieldMap(text="text"),
                            stats=stats)
        from curator.stats import kernels

        out = {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "rss_after_imports_mb": rss0,
               "docs": result.rows_read, "rows_added": result.rows_added, "duplicates": result.duplicates,
               "kernels": kernels.status() if kernels.LIB is not None else "numpy"}
        if stats:
            totals = _totals(store)
            out["tokens"] = totals.get("n1", {}).get("tokens")
            out["ngram_totals"] = totals
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def w_curator_numpy(path: Path) -> dict:
    """(a) with the statistics engine on its numpy code (as without a C compiler): the compiled loops' gain."""
    from curator.stats import kernels

    kernels.LIB = None
    return w_curator(path)


def w_curator_nostats(path: Path) -> dict:
    return w_curator(path, stats=False)


def w_curator_split(path: Path) -> dict:
    """ingest(stats=False), then the statistics recomputed from the store (what ingest does after its write)."""
    _one_core_arrow()
    from curator.ingest.pipeline import ingest
    from curator.ingest.readers import FieldMap
    from curator.stats.corpus import recompute
    from curator.store import Store

    root = _store_dir()
    try:
        store = Store(root / "store", create=True)
        with _Clock() as c1:
            result = ingest(store, [path], generation=0, origin="human", fields=FieldMap(text="text"), stats=False)
        with _Clock() as c2:
            recompute(store, [0])
        return {"wall_s": c1.wall + c2.wall, "cpu_s": c1.cpu + c2.cpu, "write_s": c1.wall, "stats_s": c2.wall,
                "peak_rss_mb": _peak_rss_mb(), "docs": result.rows_read}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def w_curator_read(path: Path) -> dict:
    _one_core_arrow()
    from curator.ingest.readers import FieldMap, read_documents

    docs = 0
    with _Clock() as c:
        for batch in read_documents(path, "jsonl", FieldMap(text="text")):
            docs += batch.table.num_rows
    return {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "docs": docs}


def w_curator_accumulator(path: Path) -> dict:
    """The n-gram accumulator alone, over the texts of `read_documents` already in memory, batch for batch
    as ingest feeds it (one update per 16 MiB reader batch), then `finish`."""
    _one_core_arrow()
    import numpy as np

    from curator.ingest.readers import FieldMap, read_documents
    from curator.stats import corpus as stats_corpus
    from curator.stats.ngrams import NgramAccumulator
    from curator.stats.tokenize import get_tokenizer

    batches = [b.table.column("text") for b in read_documents(path, "jsonl", FieldMap(text="text"))]
    d = stats_corpus.DEFAULTS
    rss0 = _peak_rss_mb()
    spill = _store_dir()
    try:
        with _Clock() as c:
            acc = NgramAccumulator(get_tokenizer("word_v1"), buckets=d["buckets"], top_k=d["top_k"],
                                   sample_rate=d["sample_rate"], spill_dir=spill)
            for texts in batches:
                acc.update(texts, np.zeros(len(texts), dtype=np.int32))
            result = acc.finish(["human"])
        spilled = acc.spilled_nbytes() if hasattr(acc, "spilled_nbytes") else None
        if hasattr(acc, "close"):
            acc.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    tokens = None
    try:
        tokens = next(r["tokens"] for r in result.totals.to_pylist() if r.get("n") == 1)
    except Exception:  # noqa: BLE001 - only for the tokens/s column
        pass
    return {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "rss_with_texts_mb": rss0,
            "docs": sum(len(t) for t in batches), "tokens": tokens,
            "spilled_mb": None if spilled is None else spilled / 2**20}


def w_curator_profile(path: Path) -> dict:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile(time.process_time)  # CPU time: robust to other work on the shared core
    prof.enable()
    out = w_curator(path)
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    buf.write(f"cProfile (CPU time) of curator ingest of {path} ({path.stat().st_size / corpus.MB:.1f} MB), one core\n")
    buf.write("\n=== by cumulative time ===\n")
    st.sort_stats("cumulative").print_stats(45)
    buf.write("\n=== by own (tottime) time ===\n")
    st.sort_stats("tottime").print_stats(30)
    PROFILE_TXT.write_text(buf.getvalue())
    out["profile"] = str(PROFILE_TXT)
    return out


def w_python_ref(path: Path) -> dict:
    """Plain Python: the same counting as curator's statistics, line by line."""
    import hashlib
    import heapq
    import re
    from collections import Counter

    word = re.compile(r"[^\W_]+")
    n_max, n_buckets, sample_rate, top_k = 4, 10_000, 16, 100
    limit = 2**64 // sample_rate
    rss0 = _peak_rss_mb()
    with _Clock() as c:
        counts = [Counter() for _ in range(n_max)]
        doc_freq = [Counter() for _ in range(n_max)]
        docs = tokens = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                toks = word.findall(json.loads(line)["text"].lower())
                docs += 1
                tokens += len(toks)
                for n in range(1, n_max + 1):
                    grams = [" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)]
                    counts[n - 1].update(grams)
                    doc_freq[n - 1].update(set(grams))
        summary = {}
        for n in range(1, n_max + 1):
            cnt, df = counts[n - 1], doc_freq[n - 1]
            buckets = [0] * n_buckets
            sample = []
            for gram, k in cnt.items():
                h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")
                buckets[h % n_buckets] += k
                if h < limit:
                    sample.append((h, k, df[gram]))
            top = heapq.nsmallest(top_k, cnt.items(), key=lambda kv: (-kv[1], kv[0]))
            top = [(g, k, df[g]) for g, k in top]
            summary[f"n{n}"] = {"total": sum(cnt.values()), "distinct": len(cnt), "sampled": len(sample),
                                "top1": top[0][:2] if top else None}
    return {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "rss_after_imports_mb": rss0,
            "docs": docs, "tokens": tokens, "ngram_totals": summary}


def _datatrove_setup() -> str:
    """datatrove needs `orjson` and `regex` (the `bench` extra installs them with spaCy)."""
    try:
        import orjson  # noqa: F401
        import regex  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"install the bench extra to run datatrove: pip install -e '.[bench]' ({exc})") from exc
    return "orjson"


def w_datatrove(path: Path, tokenizer: str = "whitespace", thresholds: str = "stock") -> dict:
    import logging

    json_impl = _datatrove_setup()
    from loguru import logger

    logger.remove()  # no per-step log lines inside the timed loop
    logging.disable(logging.CRITICAL)
    from datatrove.pipeline.filters import GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils.word_tokenizers import WordTokenizer

    counted = {"tokens": 0}

    class WhitespaceTokenizer(WordTokenizer):
        def __init__(self) -> None:
            super().__init__("eng")

        def word_tokenize(self, text: str) -> list[str]:
            words = text.split()
            counted["tokens"] += len(words)
            return words

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    if tokenizer == "default":
        try:
            import spacy  # noqa: F401
        except ImportError:
            return {"skipped": "datatrove's default English word tokenizer is spaCy's; spacy is not installed "
                               "in this venv (and we install nothing)"}
        language = "eng"
        from datatrove.utils import word_tokenizers as wt

        assigned = wt.load_word_tokenizer(language)  # what the filter will use (spaCy's for English)
        cls = type(assigned)
        original = cls.word_tokenize

        def counting(self, text: str) -> list[str]:  # count tokens (one add per document)
            words = original(self, text)
            counted["tokens"] += len(words)
            return words

        cls.word_tokenize = counting
    else:
        language = WhitespaceTokenizer()
    kwargs = {"language": language}
    if thresholds == "never":  # every check runs on every document, none can drop it
        big = 1e9
        kwargs.update(dup_line_frac=big, dup_para_frac=big, dup_line_char_frac=big, dup_para_char_frac=big,
                      top_n_grams=((2, big), (3, big), (4, big)),
                      dup_n_grams=tuple((n, big) for n in range(5, 11)))
    flt = GopherRepetitionFilter(**kwargs)
    reader = JsonlReader(str(path.parent), glob_pattern=path.name, recursive=False, text_key="text")
    rss0 = _peak_rss_mb()
    docs = kept = 0
    with _Clock() as c:
        for _doc in flt.run(reader.run()):
            kept += 1
        docs = flt.stats.stats["total"].total if "total" in flt.stats.stats else None
    out = {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "rss_after_imports_mb": rss0,
           "docs": docs, "kept": kept, "tokens": counted["tokens"],
           "json": json_impl}
    # The filter alone, over Documents already parsed (no JSON, no reader): the share of the pass it is.
    from datatrove.data import Document

    docs_mem = [Document(text=json.loads(line)["text"], id=str(i))
                for i, line in enumerate(open(path, encoding="utf-8"))]
    flt2 = GopherRepetitionFilter(**kwargs)
    with _Clock() as c2:
        for d in docs_mem:
            flt2.filter(d)
    out["filter_only_s"] = c2.wall
    return out


def w_datatrove_ws_never(path: Path) -> dict:
    return w_datatrove(path, "whitespace", "never")


def w_datatrove_default(path: Path) -> dict:
    return w_datatrove(path, "default", "stock")


def w_floor(path: Path) -> dict:
    """Read, lowercase, split on whitespace and hash every token: one vectorised streaming pass."""
    _one_core_arrow()
    import polars as pl
    import pyarrow.compute as pc
    import pyarrow.json as pj

    rss0 = _peak_rss_mb()
    docs = tokens = 0
    acc = 0
    with _Clock() as c:
        reader = pj.open_json(path, read_options=pj.ReadOptions(use_threads=False, block_size=16 << 20))
        for batch in reader:
            text = batch.column("text")
            words = pc.list_flatten(pc.utf8_split_whitespace(pc.utf8_lower(text)))
            hashes = pl.Series(values=words).hash(seed=0)
            acc ^= int(hashes.bitwise_xor() or 0)
            docs += batch.num_rows
            tokens += len(words)
    return {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "rss_after_imports_mb": rss0,
            "docs": docs, "tokens": tokens, "checksum": acc}


WORKERS = {
    "curator": w_curator,
    "curator_numpy": w_curator_numpy,
    "curator_nostats": w_curator_nostats,
    "curator_split": w_curator_split,
    "curator_read": w_curator_read,
    "curator_accumulator": w_curator_accumulator,
    "curator_profile": w_curator_profile,
    "python_ref": w_python_ref,
    "datatrove": w_datatrove,
    "datatrove_never": w_datatrove_ws_never,
    "datatrove_default": w_datatrove_default,
    "floor": w_floor,
}


def worker_main(name: str, path: Path, out: Path) -> None:
    result = common.guarded(WORKERS[name], path)
    result.setdefault("bytes", path.stat().st_size)
    common.write_worker_result(out, result)


# =========================================================================== the parent


def machine() -> dict:
    return common.machine(("pyarrow", "polars", "numpy", "duckdb", "pylance", "datatrove"))


def run_worker(name: str, path: Path, *, core: str | None, repeat: int = 1, timeout: float = 3600) -> dict:
    """Run a worker `repeat` times in fresh processes; keep the fastest run, and the highest peak RSS."""
    peaks = []

    def once() -> dict:
        print(f"  running {name} on {path.name} ...", file=sys.stderr, flush=True)
        result = common.launch(__file__, ["--worker", name, "--input", str(path)], cores=core, timeout=timeout)
        peaks.append(result.get("peak_rss_mb", 0))
        return result

    best = common.best_of(once, repeat)
    if "error" not in best and "skipped" not in best:
        best["peak_rss_mb_max"] = max(peaks)
    return best


def rates(r: dict) -> dict:
    if "wall_s" not in r:
        return r
    s = r["wall_s"]
    r["mb_s"] = r["bytes"] / corpus.MB / s
    r["docs_s"] = (r.get("docs") or 0) / s
    r["tokens_s"] = (r["tokens"] / s) if r.get("tokens") else None
    r["cpu_wall"] = r["cpu_s"] / s if s else None
    r["mb_s_cpu"] = r["bytes"] / corpus.MB / r["cpu_s"] if r.get("cpu_s") else None
    return r


fmt = common.fmt


def print_table(rows: list[tuple[str, str, dict]]) -> None:
    head = ("contender", "input", "MB", "wall s", "MB/s", "MB/cpu-s", "docs/s", "Mtok/s", "peak RSS MB", "cpu/wall")
    lines = [head]
    for label, inp, r in rows:
        if "error" in r or "skipped" in r:
            lines.append((label, inp, "", "", "", "", "", "", "", ("ERROR" if "error" in r else "skipped")))
            continue
        lines.append((label, inp, fmt(r["bytes"] / corpus.MB), fmt(r["wall_s"], ".2f"), fmt(r["mb_s"], ".2f"),
                      fmt(r.get("mb_s_cpu"), ".2f"),
                      fmt(r["docs_s"], ",.0f"), fmt(r["tokens_s"] / 1e6 if r.get("tokens_s") else None, ".2f"),
                      fmt(r.get("peak_rss_mb_max", r.get("peak_rss_mb")), ".0f"), fmt(r.get("cpu_wall"), ".2f")))
    common.print_aligned(lines, left=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--core", default="0", help="CPU to pin every contender to with taskset ('' = no pinning)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per timed contender (fastest kept)")
    ap.add_argument("--corpus-mb", type=float, default=100)
    ap.add_argument("--big-mb", type=float, default=200,
                    help="also ingest a corpus this large (built like the main one, more replicas) for the "
                         "peak-RSS scaling check (0 = skip)")
    ap.add_argument("--ref-mb", type=float, default=10, help="prefix for the plain-Python reference")
    ap.add_argument("--datatrove-mb", type=float, default=5, help="prefix for datatrove")
    ap.add_argument("--quick", action="store_true",
                    help="2 MB / 1 MB prefixes for the slow contenders, no scaling runs")
    ap.add_argument("--profile", action="store_true", help="also cProfile the full curator ingest")
    ap.add_argument("--only", default="",
                    help="comma-separated subset: curator,phases,scaling,python,datatrove,floor,profile")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.input, args.out)
        return 0

    if common.skip_without_data():
        return 0
    core = args.core or None
    if args.quick:
        args.ref_mb, args.datatrove_mb = 2, 1
    only = set(filter(None, args.only.split(","))) or {"curator", "phases", "scaling", "python", "datatrove", "floor"}
    full = corpus.ingest_corpus(args.corpus_mb)
    info = corpus.describe(full)
    print(f"corpus: {full} ({info['bytes'] / corpus.MB:.1f} MB, {info['documents']:,} documents); "
          f"pinned to core {core or '(none)'}", file=sys.stderr)
    results: dict[str, dict] = {}
    rows: list[tuple[str, str, dict]] = []

    def run(key: str, label: str, worker: str, path: Path, repeat: int = 1) -> dict:
        r = rates(run_worker(worker, path, core=core, repeat=repeat))
        r["input"] = path.name
        results[key] = r
        rows.append((label, f"{r.get('bytes', path.stat().st_size) / corpus.MB:.0f} MB", r))
        if "error" in r:
            print(f"!! {label}: {r['error']}\n{r.get('traceback', '')}", file=sys.stderr)
        return r

    # The full-corpus contenders whose ratios matter run round-robin, one run of each per round, so that
    # each round meets one phase of the shared machine; the paired floor/curator ratio of each round is
    # reported beside the ratio of the fastest runs.
    paired = [spec for spec, want in ((("curator", "(a) curator ingest (full)", "curator"), "curator" in only),
                                      (("curator_numpy", "    same, engine on its numpy code", "curator_numpy"),
                                       "curator" in only),
                                      (("floor", "(d) floor: read+lower+split+hash", "floor"), "floor" in only)) if want]
    rounds: dict[str, list[dict]] = {key: [] for key, _, _ in paired}
    for _ in range(max(1, args.repeat) if paired else 0):
        for key, _, worker in paired:
            rounds[key].append(rates(run_worker(worker, full, core=core)))
    floor_row = None
    for key, label, _ in paired:
        runs = rounds[key]
        bad = [r for r in runs if "error" in r or "skipped" in r]
        r = bad[0] if bad else dict(min(runs, key=lambda x: x["wall_s"]), runs=len(runs),
                                    peak_rss_mb_max=max(x.get("peak_rss_mb_max", 0) for x in runs),
                                    walls_s=[x["wall_s"] for x in runs])
        r["input"] = full.name
        results[key] = r
        row = (label, f"{r.get('bytes', full.stat().st_size) / corpus.MB:.0f} MB", r)
        if key == "floor":
            floor_row = row  # listed last, as before
        else:
            rows.append(row)
        if "error" in r:
            print(f"!! {label}: {r['error']}\n{r.get('traceback', '')}", file=sys.stderr)
    if "curator" in rounds and "floor" in rounds and all("wall_s" in r for r in rounds["curator"] + rounds["floor"]):
        results["paired_floor_over_curator"] = [c["wall_s"] / f["wall_s"] for c, f in zip(rounds["curator"], rounds["floor"])]
    if "phases" in only:
        run("curator_read", "    phase: read_documents only", "curator_read", full, args.repeat)
        run("curator_nostats", "    phase: ingest stats=False", "curator_nostats", full, args.repeat)
        run("curator_split", "    phase: write, then recompute", "curator_split", full, 1)
        run("curator_accumulator", "    phase: NgramAccumulator only", "curator_accumulator", full, args.repeat)
    if "scaling" in only and not args.quick:
        for mb in (25, 50):
            run(f"curator_{mb}mb", f"(a) curator ingest, first {mb} MB", "curator", corpus.prefix_corpus(mb, full))
        if args.big_mb:
            big = corpus.ingest_corpus(args.big_mb)
            run(f"curator_{args.big_mb:g}mb", f"(a) curator ingest, {args.big_mb:g} MB corpus", "curator", big)
    if "python" in only:
        run("python_ref", "(b) plain Python reference", "python_ref", corpus.prefix_corpus(args.ref_mb, full))
    if "datatrove" in only:
        dt = corpus.prefix_corpus(args.datatrove_mb, full)
        run("datatrove_default", "(c) datatrove Gopher, spaCy (default)", "datatrove_default", dt)
        run("datatrove", "(c) datatrove Gopher, whitespace", "datatrove", dt, args.repeat)
        run("datatrove_never", "(c) datatrove Gopher, ws, no early exit", "datatrove_never", dt, args.repeat)
    if floor_row is not None:
        rows.append(floor_row)
    if args.profile or "profile" in only:
        r = run("curator_profile", "    curator ingest under cProfile", "curator_profile", full)
        if "profile" in r:
            print(f"profile written to {r['profile']}", file=sys.stderr)

    print()
    print_table(rows)
    print()
    ratios = report_ratios(results)
    for line in ratios["lines"]:
        print(line)
    out = {**common.header(machine()), "corpus": info, "results": results, "ratios": ratios["values"]}
    # A partial run (--only / --quick) does not overwrite the results of a full one.
    common.write_results("bench_ingest", out, partial=bool(args.only or args.quick))
    return 0


def report_ratios(res: dict) -> dict:
    lines, values = [], {}
    cur = res.get("curator", {})
    ok = lambda r: bool(r) and "mb_s" in r  # noqa: E731
    if ok(cur):
        values["curator_mb_s"] = cur["mb_s"]
        values["curator_mb_s_cpu"] = cur["mb_s_cpu"]
        lines.append(f"statistics engine: {cur.get('kernels', '?')}")
        if ok(res.get("curator_numpy")):
            values["curator_over_numpy"] = gain = res["curator_numpy"]["wall_s"] / cur["wall_s"]
            lines.append(f"compiled kernels / numpy code, full ingest: {gain:.2f}x "
                         f"({res['curator_numpy']['mb_s']:.2f} MB/s on the numpy code)")
        lines.append(f"curator ingest with statistics: {cur['mb_s']:.2f} MB/s per core "
                     f"({cur['mb_s_cpu']:.2f} MB per cpu-second) "
                     f"(target >= {TARGET_MBPS:g}: {'MET' if cur['mb_s'] >= TARGET_MBPS else 'NOT MET'})")
        for key, label in (("datatrove_default", "datatrove Gopher (default spaCy tokenizer, stock thresholds)"),
                           ("datatrove", "datatrove Gopher (whitespace tokenizer, stock thresholds)"),
                           ("datatrove_never", "datatrove Gopher (whitespace tokenizer, every check on every doc)")):
            if ok(res.get(key)):
                ratio = cur["mb_s"] / res[key]["mb_s"]
                values[f"curator_over_{key}"] = ratio
                values[f"curator_over_{key}_cpu"] = cpu_ratio = cur["mb_s_cpu"] / res[key]["mb_s_cpu"]
                lines.append(f"curator / {label}: {ratio:.1f}x wall, {cpu_ratio:.1f}x cpu "
                             f"(target >= {TARGET_VS_DATATROVE:g}x: "
                             f"{'MET' if ratio >= TARGET_VS_DATATROVE else 'NOT MET'})")
        if ok(res.get("python_ref")):
            ratio = cur["mb_s"] / res["python_ref"]["mb_s"]
            values["curator_over_python_ref"] = ratio
            lines.append(f"curator / plain-Python reference: {ratio:.1f}x")
        if ok(res.get("floor")):
            ratio = res["floor"]["mb_s"] / cur["mb_s"]
            values["floor_over_curator"] = ratio
            values["floor_over_curator_cpu"] = cpu_ratio = res["floor"]["mb_s_cpu"] / cur["mb_s_cpu"]
            lines.append(f"floor / curator: {ratio:.2f}x wall, {cpu_ratio:.2f}x cpu (target <= {TARGET_VS_FLOOR:g}x: "
                         f"{'MET' if ratio <= TARGET_VS_FLOOR else 'NOT MET'})")
        paired = res.get("paired_floor_over_curator")
        if paired:
            values["paired_floor_over_curator"] = paired
            lines.append("floor / curator per round (curator wall / floor wall, run back to back): "
                         + ", ".join(f"{x:.2f}x" for x in paired) + f"; median {statistics.median(paired):.2f}x")
    phases = {k: res[k]["wall_s"] for k in ("curator", "curator_read", "curator_nostats", "curator_accumulator")
              if ok(res.get(k))}
    if ok(res.get("curator_split")):
        phases["split_write"] = res["curator_split"]["write_s"]
        phases["split_stats"] = res["curator_split"]["stats_s"]
    if len(phases) > 1:
        values["phases_s"] = phases
        lines.append("breakdown of curator ingest (s, separate processes): " + ", ".join(
            f"{k}={v:.2f}" for k, v in phases.items()))
        if "curator_read" in phases and "curator_nostats" in phases:
            lines.append(f"  parse (read_documents) {phases['curator_read']:.2f} s; ids + dedup + Lance write "
                         f"{phases['curator_nostats'] - phases['curator_read']:.2f} s; statistics (full - stats=False) "
                         + (f"{phases['curator'] - phases['curator_nostats']:.2f} s" if "curator" in phases else "?"))
        if "split_stats" in phases and "curator_accumulator" in phases:
            lines.append(f"  statistics from the store {phases['split_stats']:.2f} s, of which the accumulator "
                         f"on in-memory texts {phases['curator_accumulator']:.2f} s")
    keys = ["curator_25mb", "curator_50mb", "curator"] + sorted(
        (k for k in res if k.startswith("curator_") and k.endswith("mb") and k not in ("curator_25mb", "curator_50mb")),
        key=lambda k: res[k].get("bytes", 0))
    peaks = [(k, res[k].get("peak_rss_mb_max", res[k].get("peak_rss_mb")), res[k]["bytes"] / corpus.MB)
             for k in keys if ok(res.get(k))]
    if len(peaks) > 1:
        values["peak_rss_by_size"] = {f"{mb:.0f}MB": p for _, p, mb in peaks}
        lines.append("curator ingest peak RSS by input size: "
                     + ", ".join(f"{mb:.0f} MB -> {p:.0f} MB" for _, p, mb in peaks))
    return {"lines": lines, "values": values}


if __name__ == "__main__":
    sys.exit(main())
