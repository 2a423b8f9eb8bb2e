"""`curator demo`: a small end-to-end run on a corpus every machine has.

The human corpus is the Python standard library's own docstrings (or `--corpus FILE`, documents split by
blank lines). Synthetic generations come from a word-bigram language model fitted on the previous
generation and sampled at temperature 0.7, each generation trained only on the one before (the "replace"
regime of the model-collapse experiments). Both are ingested into a fresh store and `shift` reports each
synthetic generation against the human one: n-gram diversity falls and concentration rises generation after
generation. The bigram model stands in for the GPT-2 loop of the full demo; everything else (store,
statistics, SQL, shift) is the real pipeline.
"""
from __future__ import annotations

import importlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

_STDLIB_MODULES = (
    "abc argparse ast asyncio base64 bisect calendar collections configparser contextlib copy csv dataclasses "
    "datetime decimal difflib email enum fractions functools gettext glob gzip hashlib heapq hmac html http "
    "imaplib inspect io ipaddress itertools json logging mailbox math mimetypes operator optparse os pathlib "
    "pickle pprint queue random re sched secrets shelve shlex shutil smtplib socket sqlite3 statistics string "
    "struct subprocess tarfile tempfile textwrap threading timeit tokenize traceback typing unittest urllib "
    "uuid warnings weakref xml zipfile zoneinfo"
).split()


def stdlib_corpus() -> list[str]:
    """Paragraphs of the standard library's docstrings: modules, classes, functions and methods."""
    docs: list[str] = []
    seen: set[str] = set()
    for name in _STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # a module missing from a slim Python build is simply skipped
            continue
        objs = [mod] + [getattr(mod, a, None) for a in sorted(dir(mod)) if not a.startswith("_")]
        for obj in objs:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str) or id(doc) in seen:
                continue
            seen.add(id(doc))
            for para in re.split(r"\n\s*\n", doc):
                para = " ".join(para.split())
                if len(para.split()) >= 8:
                    docs.append(para)
    return sorted(set(docs))


class BigramModel:
    """A word-bigram language model over observed continuations, sampled for whole batches at once.

    Rows are kept sparse (CSR: each word's observed next words), and sampling with temperature is one
    `searchsorted` per position over all documents: row r's tempered cumulative probabilities are stored
    shifted by r, so `searchsorted(cum, state + u)` lands inside the right row.
    """

    def __init__(self, docs: list[str]) -> None:
        tokens = [d.split() for d in docs]
        self.vocab = sorted({t for doc in tokens for t in doc} | {"</s>"})
        index = {t: i for i, t in enumerate(self.vocab)}
        self.eos = index["</s>"]
        ids = [[self.eos] + [index[t] for t in doc] + [self.eos] for doc in tokens]
        prev = np.concatenate([np.array(d[:-1]) for d in ids])
        nxt = np.concatenate([np.array(d[1:]) for d in ids])
        v = len(self.vocab)
        pairs, counts = np.unique(prev.astype(np.int64) * v + nxt, return_counts=True)
        self.row = pairs // v
        self.col = pairs % v
        self.logc = np.log(counts.astype(np.float64))
        self.indptr = np.searchsorted(self.row, np.arange(v + 1))

    def _cumulative(self, temperature: float) -> np.ndarray:
        w = np.exp((self.logc - self.logc.max()) / temperature)
        row_sum = np.add.reduceat(w, self.indptr[:-1][np.diff(self.indptr) > 0])
        totals = np.zeros(len(self.vocab))
        totals[np.unique(self.row)] = row_sum
        cum = np.cumsum(w) - np.repeat(np.concatenate([[0.0], np.cumsum(row_sum)[:-1]]), np.diff(self.indptr)[np.diff(self.indptr) > 0])
        return self.row + cum / totals[self.row]

    def sample(self, n_docs: int, *, temperature: float, max_words: int, rng: np.random.Generator) -> list[str]:
        cum = self._cumulative(temperature)
        state = np.full(n_docs, self.eos)
        out = np.full((n_docs, max_words), self.eos)
        alive = np.ones(n_docs, dtype=bool)
        for pos in range(max_words):
            pick = np.searchsorted(cum, state + rng.random(n_docs) * (1 - 1e-12))
            pick = np.minimum(pick, np.minimum(self.indptr[state + 1] - 1, len(cum) - 1))
            choice = self.col[pick]
            if pos < 4:  # no empty documents
                choice = np.where(choice == self.eos, state, choice)
            out[:, pos] = np.where(alive, choice, self.eos)
            alive &= choice != self.eos
            state = choice
        words = np.array(self.vocab, dtype=object)
        return [" ".join(words[row[row != self.eos]]) for row in out]


def _write_jsonl(path: Path, docs: list[str]) -> None:
    with path.open("w") as fh:
        for doc in docs:
            fh.write(json.dumps({"text": doc}) + "\n")


def run_demo(out: Path, *, corpus: Path | None = None, seed: int = 0, generations: int = 3, quiet: bool = False,
             echo: Callable[[str], None] = print) -> list[dict]:
    """Run the example; returns the summary rows (one per generation) and writes them to out/summary.json."""
    from .ingest.pipeline import ingest
    from .progress import reporter
    from .shift import shift_report
    from .store import Store
    from .store.query import connect

    out.mkdir(parents=True, exist_ok=True)
    store_dir = out / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = Store(store_dir, create=True)
    rng = np.random.default_rng(seed)
    if corpus is None:
        human = stdlib_corpus()
        source = "Python standard-library docstrings"
    else:
        human = [" ".join(p.split()) for p in re.split(r"\n\s*\n", corpus.read_text(errors="replace")) if p.strip()]
        source = str(corpus)
    human_file = out / "gen0_human.jsonl"
    _write_jsonl(human_file, human)
    echo(f"human corpus: {len(human)} documents from {source}")
    with reporter(quiet) as progress:
        ingest(store, [human_file], generation=0, origin="human", progress=progress)
        previous = human
        lengths = [len(d.split()) for d in human]
        max_words = int(np.percentile(lengths, 90))
        for g in range(1, generations + 1):
            model = BigramModel(previous)
            docs = model.sample(len(human), temperature=0.7, max_words=max_words, rng=rng)
            path = out / f"gen{g}_synthetic.jsonl"
            _write_jsonl(path, docs)
            ingest(store, [path], generation=g, origin="synthetic", model="bigram-t0.7",
                   decoding={"temperature": 0.7, "seed": seed, "trained_on": g - 1}, progress=progress)
            echo(f"generation {g}: {len(docs)} samples from a bigram model fitted on generation {g - 1}")
            previous = docs
    con = connect(store)
    summary = []
    for g in range(1, generations + 1):
        rows = {r.metric: r for r in shift_report(con, g, 0)}
        if g == 1:
            summary.append({"generation": 0, **{m: rows[m].baseline for m in _SUMMARY}, "alarms": 0})
        summary.append({"generation": g, **{m: rows[m].value for m in _SUMMARY},
                        "alarms": sum(r.status == "alarm" for r in rows.values())})
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    echo("")
    echo(f"{'gen':>3} " + " ".join(f"{m:>16}" for m in _SUMMARY) + f" {'alarms':>6}")
    for row in summary:
        echo(f"{row['generation']:>3} " + " ".join(f"{_fmt(row[m]):>16}" for m in _SUMMARY) + f" {row['alarms']:>6}")
    echo("")
    echo(f"store: {store_dir}   try: curator --store {store_dir} shift --generation {generations}")
    return summary


_SUMMARY = ("distinct_2", "distinct_3", "top_bucket_mass_2", "js_divergence_2", "tail_loss_3")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
