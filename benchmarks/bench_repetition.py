"""Scorer throughput: `text_stats_v1` and `repetition_v1` (both variants) against datatrove's Gopher repetition
filter, on ONE core, over the same documents, on two corpora.

    .venv/bin/python benchmarks/bench_repetition.py               # 25 MB natural + 10 MB looping, best of 3
    .venv/bin/python benchmarks/bench_repetition.py --quick       # 5 MB + 2 MB, best of 1
    .venv/bin/python benchmarks/bench_repetition.py --mb 50 --looping-mb 20 --repeat 3
    .venv/bin/python benchmarks/bench_repetition.py --corpora looping

Corpora (`--corpora`, default both):

- natural: the first `--mb` MB (default 25) of `benchmarks/corpus.py`'s ingest corpus (GSM8K problems,
  Shakespeare speeches and WikiText-2 articles from ../shared/data, replicated with small seeded word
  perturbations; see its docstring).
- looping: `--looping-mb` MB (default 10) of generations stuck in a loop, built here (`looping_corpus`, cached
  in benchmarks/.data): each document is one to four consecutive sentences of a base document, repeated until
  the document has its length (200 to 20,000 words, log-uniform); each copy of a sentence is varied with a
  probability drawn per document from {0, 0.1, 0.3, 0.7} (a word replaced by a corpus word, dropped, or
  inserted, or replaced by the copy's number, as in "Step 7"); copies are joined by a space, a newline or a
  blank line (per document). Half of the documents start with 20 words to half their length of natural text
  (random sentences of the base documents), as a generation that collapses into a loop midway does. Here nearly
  every n-gram repeats, and the first copies of many keys fall inside datatrove's jumps.

Every contender scores the same documents. MB = 10^6 bytes of UTF-8 *text* (the `text` fields, not the JSONL
around them); tokens = whitespace words (`str.split()`), the words both implementations count.

Contenders, each in a fresh subprocess pinned to one core (`taskset -c`, and `os.sched_setaffinity`), with
POLARS_MAX_THREADS, OMP_NUM_THREADS, RAYON_NUM_THREADS = 1, OMP_WAIT_POLICY=PASSIVE and
`pyarrow.set_cpu_count(1)`; timings exclude start-up, imports and reading the corpus (done before the
clock starts, as a pipeline hands a scorer batches already in memory); the fastest of `--repeat` runs is kept:

- curator `text_stats_v1`, `repetition_v1` (variant datatrove) and `repetition_v1` (variant gopher):
  `scorer.score(batch)` over Arrow tables of `--batch-rows` documents (default 8,192);
- datatrove 0.10.1 `GopherRepetitionFilter(language=WhitespaceTokenizer())` (a `WordTokenizer` whose
  `word_tokenize` is `str.split`), its `filter(doc)` called in a loop over `Document` objects built before
  the clock starts: once with thresholds no document reaches (every fraction computed for every document:
  the same work as curator's), once with its stock thresholds (a document stops at the first check it fails,
  as in a user's pipeline; on the looping corpus most documents stop at the first, line-level checks).

Equality: after timing, curator's datatrove variant is compared value by value with the fractions of
datatrove's own functions (the statements of `filter()`, each comparison replaced by the value it tests) on
a sample of `--check-docs` documents of each corpus, and its verdicts with `filter()`'s.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / pyarrow / polars imports

common.single_thread_env()

import argparse
import json
import math
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

TARGET_VS_DATATROVE = 10.0
LOOPING_SEED = 20251121
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def looping_corpus(mb: float) -> Path:
    """`mb` MB of generations stuck in a loop (cached); see the module docstring."""
    path = corpus.CACHE / f"looping_{mb:g}mb.jsonl"
    if path.exists():
        return path
    docs = corpus.base_docs()
    sentences = [[x.split(" ") for x in _SENTENCE.split(d) if len(x.split()) >= 3 and "\n" not in x] for d in docs]
    sentences = [s for s in sentences if s]
    flat = [x for s in sentences for x in s]
    vocab = sorted({w for x in flat for w in x})
    rng = random.Random(LOOPING_SEED)
    target = int(mb * corpus.MB)

    def write(f) -> None:
        written = 0
        while written < target:
            length = int(math.exp(rng.uniform(math.log(200), math.log(20_000))))
            parts, words = [], 0
            if rng.random() < 0.5:  # a natural start, then the loop
                prefix = [w for x in rng.sample(flat, 40) for w in x][: rng.randint(20, max(20, length // 2))]
                parts.append(" ".join(prefix))
                words += len(prefix)
            source = rng.choice(sentences)
            first = rng.randrange(len(source))
            loop = source[first : first + rng.randint(1, 4)]
            vary = rng.choice((0.0, 0.1, 0.3, 0.7))
            copy = 0
            while words < length:
                copy += 1
                for sentence in loop:
                    sentence = list(sentence)
                    if rng.random() < vary:
                        j, kind = rng.randrange(len(sentence)), rng.random()
                        if kind < 0.4:
                            sentence[j] = rng.choice(vocab)
                        elif kind < 0.6 and len(sentence) > 1:
                            del sentence[j]
                        elif kind < 0.8:
                            sentence.insert(j, rng.choice(vocab))
                        else:
                            sentence[j] = str(copy)
                    parts.append(" ".join(sentence))
                    words += len(sentence)
            line = json.dumps({"text": rng.choice((" ", " ", "\n", "\n\n")).join(parts)}, ensure_ascii=False)
            f.write(line + "\n")
            written += len(line.encode("utf-8")) + 1

    print(f"building {path} ...", file=sys.stderr, flush=True)
    return corpus._write_atomic(path, write)
COLUMNS = ("dup_line_frac", "dup_line_char_frac", "dup_para_frac", "dup_para_char_frac",
           *(f"top_{n}gram_char_frac" for n in (2, 3, 4)), *(f"dup_{n}gram_char_frac" for n in range(5, 11)))


# =========================================================================== workers (one per subprocess)


def _texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


_Clock = common.Clock


def w_curator(path: Path, name: str, options: dict, batch_rows: int) -> dict:
    import pyarrow as pa

    from curator.scorers import create

    texts = _texts(path)
    table = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": pa.array(texts, pa.string())})
    batches = [table.slice(i, batch_rows) for i in range(0, table.num_rows, batch_rows)]
    scorer = create(name, options)
    scorer.score(batches[0].slice(0, 10))  # lazy tables and imports outside the clock
    with _Clock() as c:
        for batch in batches:
            scorer.score(batch)
    return {"wall_s": c.wall, "cpu_s": c.cpu}


def _datatrove_filter(never: bool):
    common.quiet_datatrove()
    from datatrove.pipeline.filters import GopherRepetitionFilter

    kwargs = {"language": common.datatrove_whitespace_tokenizer()}
    if never:  # every check runs on every document, none can drop it
        big = 1e9
        kwargs.update(dup_line_frac=big, dup_para_frac=big, dup_line_char_frac=big, dup_para_char_frac=big,
                      top_n_grams=((2, big), (3, big), (4, big)), dup_n_grams=tuple((n, big) for n in range(5, 11)))
    return GopherRepetitionFilter(**kwargs)


def w_datatrove(path: Path, never: bool) -> dict:
    from datatrove.data import Document

    flt = _datatrove_filter(never)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(_texts(path))]
    kept = 0
    with _Clock() as c:
        for doc in docs:
            kept += flt.filter(doc) is True
    return {"wall_s": c.wall, "cpu_s": c.cpu, "kept": kept}


def w_check(path: Path, sample: int) -> dict:
    """curator's datatrove variant against datatrove's own functions, on a sample of the documents."""
    import pyarrow as pa
    from datatrove.data import Document
    from datatrove.pipeline.filters.gopher_repetition_filter import (
        find_all_duplicate,
        find_duplicates,
        find_top_duplicate,
        get_n_grams,
    )
    from datatrove.utils.text import split_into_words

    from curator.scorers import create

    texts = _texts(path)
    rng = random.Random(0)
    texts = rng.sample(texts, min(sample, len(texts)))
    table = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": texts})
    rows = create("repetition_v1").score(table).to_pylist()
    flt = _datatrove_filter(never=False)

    def fractions(text: str) -> dict:
        out = {}
        paragraphs = flt.paragraph_exp.split(text.strip())
        d, c = find_duplicates(paragraphs)
        out["dup_para_frac"], out["dup_para_char_frac"] = d / len(paragraphs), c / len(text)
        lines = flt._line_splitter.split(text)
        d, c = find_duplicates(lines)
        out["dup_line_frac"], out["dup_line_char_frac"] = d / len(lines), c / len(text)
        words = split_into_words(text, flt.language)
        for n, _ in flt.top_n_grams:
            grams = get_n_grams(words, n)
            out[f"top_{n}gram_char_frac"] = find_top_duplicate(grams) / len(text) if grams else 0.0
        for n, _ in flt.dup_n_grams:
            out[f"dup_{n}gram_char_frac"] = find_all_duplicate(words, n) / len(text)
        return out

    def verdict(row: dict):
        checks = [(c, getattr(flt, c), c) for c in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac",
                                                      "dup_line_char_frac")]
        checks += [(f"top_{n}gram_char_frac", t, f"top_{n}_gram") for n, t in flt.top_n_grams]
        checks += [(f"dup_{n}gram_char_frac", t, f"duplicated_{n}_n_grams") for n, t in flt.dup_n_grams]
        for column, threshold, reason in checks:
            if row[column] > threshold:
                return False, reason
        return True

    worst, unequal, verdicts = 0.0, 0, 0
    for i, (text, row) in enumerate(zip(texts, rows)):
        if not text:
            unequal += any(row[c] is not None for c in COLUMNS)
            continue
        ref = fractions(text)
        diff = max(abs(row[c] - ref[c]) for c in COLUMNS)
        worst = max(worst, diff)
        unequal += diff > 1e-9
        verdicts += verdict(row) == flt.filter(Document(text=text, id=str(i)))
    return {"docs": len(texts), "max_abs_diff": worst, "unequal_docs": unequal, "equal_verdicts": verdicts}


WORKERS = {
    "text_stats": lambda p, a: w_curator(p, "text_stats_v1", {}, a.batch_rows),
    "repetition_datatrove": lambda p, a: w_curator(p, "repetition_v1", {"variant": "datatrove"}, a.batch_rows),
    "repetition_gopher": lambda p, a: w_curator(p, "repetition_v1", {"variant": "gopher"}, a.batch_rows),
    "datatrove_never": lambda p, a: w_datatrove(p, never=True),
    "datatrove_stock": lambda p, a: w_datatrove(p, never=False),
    "check": lambda p, a: w_check(p, a.check_docs),
}
LABELS = {
    "text_stats": "curator text_stats_v1",
    "repetition_datatrove": "curator repetition_v1, variant datatrove",
    "repetition_gopher": "curator repetition_v1, variant gopher",
    "datatrove_never": "datatrove Gopher repetition, whitespace, every check",
    "datatrove_stock": "datatrove Gopher repetition, whitespace, stock thresholds",
}


def worker_main(args: argparse.Namespace) -> None:
    common.pin(args.core)
    common.write_worker_result(args.out, common.guarded(WORKERS[args.worker], Path(args.input), args))


# =========================================================================== the parent


def run_worker(name: str, path: Path, args: argparse.Namespace, repeat: int) -> dict:
    """Run a worker `repeat` times in fresh pinned processes; keep the fastest (wall) run."""
    def once() -> dict:
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        return common.launch(__file__, ["--worker", name, "--input", str(path), "--core", str(args.core),
                                        "--batch-rows", str(args.batch_rows), "--check-docs", str(args.check_docs)],
                             cores=args.core, timeout=None)

    return common.best_of(once, repeat)


def describe(path: Path) -> dict:
    texts = _texts(path)
    return {"path": str(path), "docs": len(texts), "text_bytes": sum(len(t.encode("utf-8")) for t in texts),
            "words": sum(len(t.split()) for t in texts)}


def report(name: str, info: dict, results: dict) -> dict:
    """Print one corpus's table, ratios and equality check; return the ratios."""
    mb = info["text_bytes"] / corpus.MB
    print(f"\n== {name}: {info['docs']:,} documents, {mb:.1f} MB of text, {info['words'] / 1e6:.2f} M whitespace words")
    head = ("contender", "wall s", "cpu s", "docs/s", "MB/s", "MB/cpu-s", "Mtok/s", "cpu/wall")
    lines = [head]
    for key, label in LABELS.items():
        r = results.get(key)
        if r is None:
            continue
        if "error" in r:
            lines.append((label, "ERROR", "", "", "", "", "", ""))
            print(f"!! {key}: {r['error']}\n{r.get('traceback', '')}", file=sys.stderr)
            continue
        wall, cpu = r["wall_s"], r["cpu_s"]
        r.update(docs_s=info["docs"] / wall, mb_s=mb / wall, mb_s_cpu=mb / cpu, tokens_s=info["words"] / wall)
        lines.append((label, f"{wall:.2f}", f"{cpu:.2f}", f"{r['docs_s']:,.0f}", f"{r['mb_s']:.2f}",
                      f"{r['mb_s_cpu']:.2f}", f"{r['tokens_s'] / 1e6:.2f}", f"{cpu / wall:.2f}"))
    common.print_aligned(lines)

    ratios = {}
    ok = lambda k: k in results and "mb_s" in results[k]  # noqa: E731
    for ours in ("repetition_datatrove", "repetition_gopher"):
        for theirs in ("datatrove_never", "datatrove_stock"):
            if ok(ours) and ok(theirs):
                wall = results[ours]["mb_s"] / results[theirs]["mb_s"]
                cpu = results[ours]["mb_s_cpu"] / results[theirs]["mb_s_cpu"]
                ratios[f"{ours}/{theirs}"] = {"wall": wall, "cpu": cpu}
                met = "MET" if wall >= TARGET_VS_DATATROVE else "NOT MET"
                print(f"{LABELS[ours]} / {LABELS[theirs]}: {wall:.1f}x wall, {cpu:.1f}x cpu "
                      f"(target >= {TARGET_VS_DATATROVE:g}x: {met})")
    check = results.get("check")
    if check and "error" not in check:
        print(f"equality on {check['docs']:,} sampled documents: {check['unequal_docs']} with a value off by more "
              f"than 1e-9 (largest difference {check['max_abs_diff']:.3g}); datatrove's filter() verdict "
              f"reproduced for {check['equal_verdicts']:,} of {check['docs']:,}")
    elif check:
        print(f"!! check: {check['error']}\n{check.get('traceback', '')}", file=sys.stderr)
    return ratios


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=25, help="natural corpus size: the first MB of the ingest corpus")
    ap.add_argument("--looping-mb", type=float, default=10, help="looping corpus size in MB")
    ap.add_argument("--corpora", default="natural,looping", help="comma-separated subset of: natural, looping")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender; the fastest is kept")
    ap.add_argument("--core", type=int, default=0, help="the core every contender is pinned to")
    ap.add_argument("--batch-rows", type=int, default=8192, help="documents per batch handed to a curator scorer")
    ap.add_argument("--check-docs", type=int, default=3000, help="documents compared value by value with datatrove")
    ap.add_argument("--quick", action="store_true", help="5 MB + 2 MB, one run each")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(WORKERS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    if common.skip_without_data():
        return 0
    if args.quick:
        args.mb, args.looping_mb, args.repeat = 5, 2, 1
    builders = {"natural": lambda: corpus.prefix_corpus(args.mb), "looping": lambda: looping_corpus(args.looping_mb)}
    names = [c for c in args.corpora.split(",") if c]
    unknown = sorted(set(names) - set(builders))
    if unknown:
        ap.error(f"unknown corpora {unknown}; choose from {', '.join(builders)}")
    only = [w for w in args.only.split(",") if w] or list(WORKERS)
    out = {**common.header(common.machine(("numpy", "pyarrow", "datatrove"))), "corpora": {}}
    for name in names:
        path = builders[name]()
        info = describe(path)
        print(f"corpus {name}: {path.name}: {info['docs']:,} documents, {info['text_bytes'] / corpus.MB:.1f} MB "
              f"of text, {info['words'] / 1e6:.2f} M whitespace words; pinned to core {args.core}",
              file=sys.stderr)
        results = {key: run_worker(key, path, args, 1 if key == "check" else args.repeat) for key in only}
        out["corpora"][name] = {"corpus": info, "results": results}
    for name in names:
        entry = out["corpora"][name]
        entry["ratios"] = report(name, entry["corpus"], entry["results"])
    partial = bool(args.only or args.quick or args.corpora != "natural,looping")
    common.write_results("bench_repetition", out, partial=partial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
