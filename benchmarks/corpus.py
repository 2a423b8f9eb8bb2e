"""Benchmark corpora built from the real, human-written data in ../shared/data (see its README).

Nothing here is downloaded: every corpus is derived, deterministically, from four small public files
(GSM8K train + test, tinyshakespeare, the WikiText-2 validation split) and cached under
`benchmarks/.data/` (git-ignored). A cached file is rebuilt only when it is missing.

How the ~100 MB ingest corpus (`ingest_corpus()`, `corpus_100mb.jsonl`) is made
-----------------------------------------------------------------------------
1. Base documents (about 6.5 MB of text, ~16k documents):
   - GSM8K: one document per problem, `question + "\\n" + answer` (train and test, 8,792 documents);
   - tinyshakespeare: split at blank lines (one speech per document, ~7.2k documents);
   - WikiText-2 (validation): split at the top-level `= Title =` header lines (60 articles; the header line
     stays at the top of its article, sub-headers `= = Section = =` stay inside).
2. Replica 0 is the base set as is. Replicas 1, 2, ... are copies with small, seeded, deterministic
   perturbations, word by word (words = space-separated pieces, lines kept): 2% of the words dropped, 2%
   swapped with their right neighbour, 2% replaced by a word drawn from the base corpus's own words.
   A copy that comes out identical to a document already written gets its replica number appended on a
   line of its own (`(r)`, or `(r.k)` if that too was taken; base documents that repeat, such as a speech
   that is only a speaker's name, are numbered the same way), so no two documents of the corpus are
   byte-identical (ingest would drop duplicates and the benchmark would measure less work than it claims).
3. Within each replica the documents are shuffled (seeded), and replicas are written one after another
   until the file reaches the target size (100 * 10^6 bytes by default; it stops at a document boundary),
   so every prefix of a few MB already mixes the three sources. `{"text": ...}` per line, UTF-8.

The perturbed replicas are *not* new human text: they keep the vocabulary and most n-grams of the base
corpus, so distinct n-gram counts grow more slowly with size than in a real 100 MB corpus. They do make every
document distinct and add new 2- to 4-grams at every drop, swap and replacement.

Prefixes (`prefix_corpus(mb)`) are the first whole lines of that file up to `mb * 10^6` bytes.

The two-generation corpus of the shift benchmark (`shift_corpus()`)
------------------------------------------------------------------
Short documents ("units", ~60k): each GSM8K question, each line of each GSM8K answer, each Shakespeare speech,
each WikiText paragraph (cut after its second sentence). Then, by default 500,000 documents per generation:
- generation 0 ("human-like"): the units in seeded random order, over and over, each copy perturbed as above
  (2% drop / swap / replace);
- generation 1 ("synthetic-like", a caricature of a collapsing model): units drawn with a Zipf-skewed
  preference (a few units dominate), 8% of the words replaced by one of the 500 most frequent words of the
  base corpus (the tail thins out), and stock phrases ("Let's think step by step." ...) inserted into half of
  the documents.
Every document of a generation is distinct (a collision is re-drawn three times, then gets the smallest copy
number ` (j)` that makes it new; about a fifth of generation 0's documents carry one).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import sys
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CACHE = BENCH_DIR / ".data"
SHARED_DATA = Path(os.environ.get("CURATOR_SHARED_DATA", REPO.parent / "shared" / "data"))
FILES = ("gsm8k_train.jsonl", "gsm8k_test.jsonl", "tinyshakespeare.txt", "wikitext2_valid.txt")
MB = 1_000_000  # benchmark MB are 10^6 bytes

_WIKI_TITLE = re.compile(r"^ = [^=].* = $")
_SENTENCE_END = re.compile(r"(?<=[.!?]) ")
SEED = 20240611

STOCK_PHRASES = (
    "Let's think step by step.",
    "The answer is clear.",
    "Therefore, the final answer is",
    "First, we need to understand the problem.",
    "This is a simple calculation.",
    "In conclusion, it is important to note that",
)


class DataMissing(RuntimeError):
    """The shared data folder (or one of its files) is absent."""


def missing_data() -> str | None:
    """None when every input file is present, else a message saying what is missing (for a skip)."""
    absent = [name for name in FILES if not (SHARED_DATA / name).is_file()]
    if absent:
        return f"skipped: needs {', '.join(absent)} in {SHARED_DATA} (the shared data folder beside the repository)"
    return None


def _require_data() -> None:
    msg = missing_data()
    if msg:
        raise DataMissing(msg)


# --------------------------------------------------------------------------- base documents


def gsm8k_docs() -> list[str]:
    docs = []
    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        with open(SHARED_DATA / name, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    docs.append(f"{row['question']}\n{row['answer']}")
    return docs


def shakespeare_docs() -> list[str]:
    text = (SHARED_DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
    return [d.strip() for d in re.split(r"\n\s*\n", text) if d.strip()]


def wikitext_docs() -> list[str]:
    docs: list[list[str]] = []
    for line in (SHARED_DATA / "wikitext2_valid.txt").read_text(encoding="utf-8").splitlines():
        if _WIKI_TITLE.match(line):
            docs.append([line.strip()])
        elif docs and line.strip():
            docs[-1].append(line.strip())
    return ["\n".join(d) for d in docs]


def base_docs() -> list[str]:
    _require_data()
    return gsm8k_docs() + shakespeare_docs() + wikitext_docs()


# --------------------------------------------------------------------------- perturbation


class Perturber:
    """Seeded word-level perturbation: drop, swap with the next word, replace by a word of `vocab`."""

    def __init__(self, vocab: list[str], *, drop: float = 0.02, swap: float = 0.02, replace: float = 0.02) -> None:
        self.vocab = vocab
        self.drop, self.swap, self.replace = drop, drop + swap, drop + swap + replace

    def __call__(self, text: str, rng: random.Random) -> str:
        rand, choice, vocab = rng.random, rng.choice, self.vocab
        p_drop, p_swap, p_replace = self.drop, self.swap, self.replace
        lines = []
        for line in text.split("\n"):
            words = line.split(" ")
            out: list[str] = []
            i, n = 0, len(words)
            while i < n:
                u = rand()
                if u >= p_replace:
                    out.append(words[i])
                elif u < p_drop:
                    pass
                elif u < p_swap and i + 1 < n:
                    out.append(words[i + 1])
                    out.append(words[i])
                    i += 1
                else:
                    out.append(choice(vocab))
                i += 1
            lines.append(" ".join(out))
        return "\n".join(lines)


def _vocab(docs: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for d in docs:
        counts.update(w for w in d.split() if w)
    return counts


def _digest(text: str) -> bytes:
    return hashlib.md5(text.encode("utf-8")).digest()


def _write_atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        write(f)
    os.replace(tmp, path)
    return path


def _line(text: str) -> str:
    return json.dumps({"text": text}, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- the ingest corpus


def ingest_corpus(target_mb: float = 100, *, verbose: bool = True) -> Path:
    """The ~`target_mb` MB JSONL corpus (cached); see the module docstring for how it is made."""
    path = CACHE / f"corpus_{target_mb:g}mb.jsonl"
    if path.exists():
        return path
    docs = base_docs()
    vocab = sorted(_vocab(docs))
    perturb = Perturber(vocab)
    target = int(target_mb * MB)
    if verbose:
        print(f"building {path} ({target_mb:g} MB from {len(docs)} base documents) ...", file=sys.stderr, flush=True)

    def write(f) -> None:
        written, replica = 0, 0
        seen: set[bytes] = set()
        while written < target:
            rng = random.Random(SEED * 1_000_003 + replica)
            order = list(range(len(docs)))
            rng.shuffle(order)
            for i in order:
                text = docs[i] if replica == 0 else perturb(docs[i], rng)
                digest = _digest(text)
                k = 0
                while digest in seen:  # a copy equal to an earlier document: number it
                    marked = f"{text}\n({replica})" if k == 0 else f"{text}\n({replica}.{k})"
                    digest = _digest(marked)
                    k += 1
                if k:
                    text = marked
                seen.add(digest)
                line = _line(text)
                f.write(line)
                written += len(line.encode("utf-8"))
                if written >= target:
                    break
            replica += 1

    return _write_atomic(path, write)


def prefix_corpus(mb: float, source: Path | None = None) -> Path:
    """The first whole lines of the ingest corpus up to `mb` MB (cached)."""
    source = source or ingest_corpus()
    path = CACHE / f"{source.stem}_prefix_{mb:g}mb.jsonl"
    if path.exists():
        return path
    limit = int(mb * MB)

    def write(f) -> None:
        written = 0
        with open(source, encoding="utf-8") as src:
            for line in src:
                size = len(line.encode("utf-8"))
                if written and written + size > limit:
                    break
                f.write(line)
                written += size

    return _write_atomic(path, write)


# --------------------------------------------------------------------------- the shift corpus


def units() -> list[str]:
    """Short documents: GSM8K questions and answer lines, Shakespeare speeches, WikiText paragraphs."""
    _require_data()
    out: list[str] = []
    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        with open(SHARED_DATA / name, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    out.append(row["question"])
                    out.extend(l for l in row["answer"].split("\n") if l.strip())
    out.extend(shakespeare_docs())
    for line in (SHARED_DATA / "wikitext2_valid.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("="):
            out.append(" ".join(_SENTENCE_END.split(line)[:2]))
    return out


def shift_corpus(n_per_generation: int = 500_000, *, verbose: bool = True) -> tuple[Path, Path]:
    """Two JSONL files (generation 0 human-like, generation 1 synthetic-like), cached; see the module docstring."""
    gen0 = CACHE / f"shift_gen0_{n_per_generation}.jsonl"
    gen1 = CACHE / f"shift_gen1_{n_per_generation}.jsonl"
    if gen0.exists() and gen1.exists():
        return gen0, gen1
    base = units()
    counts = _vocab(base)
    vocab = sorted(counts)
    frequent = [w for w, _ in counts.most_common(500)]
    if verbose:
        print(f"building {gen0.name}, {gen1.name} ({n_per_generation} documents each from {len(base)} units) ...",
              file=sys.stderr, flush=True)

    def unique(text: str, seen: set[bytes], redraw) -> str:
        for _ in range(3):
            digest = _digest(text)
            if digest not in seen:
                seen.add(digest)
                return text
            text = redraw()
        j = 1
        while _digest(f"{text} ({j})") in seen:  # small copy numbers: few new distinct tokens
            j += 1
        text = f"{text} ({j})"
        seen.add(_digest(text))
        return text

    def write_human(f) -> None:
        rng = random.Random(SEED + 1)
        perturb = Perturber(vocab)
        seen: set[bytes] = set()
        order: list[int] = []
        for k in range(n_per_generation):
            if not order:
                order = list(range(len(base)))
                rng.shuffle(order)
            text = base[order.pop()]
            f.write(_line(unique(perturb(text, rng), seen, lambda t=text: perturb(t, rng))))

    def write_synthetic(f) -> None:
        rng = random.Random(SEED + 2)
        perturb = Perturber(frequent, drop=0.01, swap=0.01, replace=0.08)
        ranked = list(range(len(base)))
        rng.shuffle(ranked)
        # Zipf-skewed preference over units (cumulative weights: choices() is O(log n) per draw with them)
        cum = list(itertools.accumulate(1.0 / (r + 1) ** 0.8 for r in range(len(base))))
        seen: set[bytes] = set()

        def draw() -> str:
            text = perturb(base[rng.choices(ranked, cum_weights=cum)[0]], rng)
            if rng.random() < 0.5:
                sentences = _SENTENCE_END.split(text)
                for phrase in rng.sample(STOCK_PHRASES, rng.choice((1, 2))):
                    sentences.insert(rng.randrange(len(sentences) + 1), phrase)
                text = " ".join(sentences)
            return text

        for k in range(n_per_generation):
            f.write(_line(unique(draw(), seen, draw)))

    if not gen0.exists():
        _write_atomic(gen0, write_human)
    if not gen1.exists():
        _write_atomic(gen1, write_synthetic)
    return gen0, gen1


def describe(path: Path) -> dict:
    """Size in bytes and number of documents (lines) of a corpus file."""
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    return {"path": str(path), "bytes": path.stat().st_size, "documents": lines}


if __name__ == "__main__":
    msg = missing_data()
    if msg:
        print(msg)
        sys.exit(0)
    for p in (ingest_corpus(), *shift_corpus()):
        print(describe(p))
