"""`curator demo`: model collapse and its prevention, end to end on CPU, in minutes.

The experiment (a built-in `curator loop` config; `demo_config` returns it):

- **Human data**: paragraphs of the Python standard library's own docstrings (every machine with Python has
  them; nothing is downloaded), or `--corpus FILE` (documents split by blank lines). A fixed hash split holds
  some out (`heldout.jsonl`): held-out perplexity is measured on it and nothing ever trains on it.
- **Round 0**: a byte-level BPE tokenizer and a small GPT-2 are trained from scratch on the human documents
  (the base model, shared by every arm).
- **Rounds 1..R**, in each arm: the arm's latest model continues the first tokens of every human training
  document (the generated text is a new generation in the store), the generation is scored (perplexity under
  the base model, repetition), its shift against the human data recorded, a selector chain and a mixing policy
  choose the next training set, which is exported and fine-tunes the arm's model for the next round; held-out
  perplexity is measured after every round.
- **Arms**: `replace` (train only on the newest generation, uncurated: the collapsing regime of Shumailov et
  al.), `accumulate` (human data plus every generation so far: Gerstgrasser et al.), `curated` (thresholds fixed
  against the human reference: perplexity under the base model inside the human documents' band and repetition
  no worse than the human text's, near-duplicates removed, and a fixed human share of the training set; the
  verify-and-select recipe of Feng et al.).

What is shown: `summary.json` (per arm and round: held-out perplexity, distinct-2/3, JS divergence and more),
`report.html` (the plots), `main_plot.svg` (the three key curves), and the store itself (`DIR/store`: every
sample, score, selection, export and run; try `curator --store DIR/store log --lineage`). Settings were chosen
by measurement so that the effect is visible within the time budget; see DEMO_SETTINGS for what and why.
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STDLIB_MODULES = (
    "abc argparse ast asyncio base64 bisect calendar collections configparser contextlib copy csv dataclasses "
    "datetime decimal difflib email enum fractions functools gettext glob gzip hashlib heapq hmac html http "
    "imaplib inspect io ipaddress itertools json logging mailbox math mimetypes operator optparse os pathlib "
    "pickle pprint queue random re sched secrets shelve shlex shutil smtplib socket sqlite3 statistics string "
    "struct subprocess tarfile tempfile textwrap threading timeit tokenize traceback typing unittest urllib "
    "uuid warnings weakref xml zipfile zoneinfo"
).split()

# What the summary table prints (summary.json holds every metric of the report).
TABLE = ("heldout_ppl", "distinct_2", "distinct_3", "js_divergence_2")
CURATION_STEPS = ("edit", "score", "shift", "select", "export")   # everything but generate, train and eval


def stdlib_corpus() -> list[str]:
    """Paragraphs (>= 8 words) of the standard library's docstrings (see `_stdlib_docstrings`), read in a fresh
    isolated interpreter: a library imported into this process can patch a stdlib function (and its
    docstring), and the corpus must be the same for every run on a given Python. Falls back to this process
    when curator cannot be imported by an isolated interpreter (a source checkout on PYTHONPATH)."""
    code = "import json, sys; from curator.demo import _stdlib_docstrings as f; json.dump(f(), sys.stdout)"
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                          env={"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "")})
    if proc.returncode == 0:
        return json.loads(proc.stdout)
    return _stdlib_docstrings()


def _stdlib_docstrings() -> list[str]:
    """Paragraphs (>= 8 words) of the docstrings of the modules in _STDLIB_MODULES and of the classes and
    functions each defines, sorted. Only objects a module defines itself are visited (by `__module__`; its C
    accelerator `_name` counts), never submodules (they appear as attributes only once something imports
    them), and paragraphs are kept by content."""
    docs: set[str] = set()
    for name in _STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # a module missing from a slim Python build is simply skipped
            continue
        own = (name, "_" + name)
        objs = [mod] + [obj for attr, obj in sorted(vars(mod).items())
                        if not attr.startswith("_") and not inspect.ismodule(obj)
                        and getattr(obj, "__module__", None) in own]
        for obj in objs:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str):
                continue
            for para in re.split(r"\n\s*\n", doc):
                para = " ".join(para.split())
                if len(para.split()) >= 8:
                    docs.add(para)
    return sorted(docs)


def corpus_documents(corpus: Path | None) -> tuple[list[str], str]:
    """(documents, where they came from): the stdlib docstrings, or a file split by blank lines."""
    if corpus is None:
        return stdlib_corpus(), "Python standard-library docstrings"
    from .errors import UsageError

    if not corpus.is_file():
        raise UsageError(f"--corpus {corpus}: no such file")
    text = corpus.read_bytes().decode("utf-8", errors="replace")
    docs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(docs) < 50:
        raise UsageError(f"--corpus {corpus}: {len(docs)} document(s) (split by blank lines); the demo needs at "
                         f"least 50")
    return docs, str(corpus)


# The experiment. Every number here was chosen by running it, in two seeds (README, "The demo", says what was
# measured and what was tried and dropped); `quick` trims rounds and data, not the design.
# - fine-tune from the arm's previous checkpoint with the same optimizer steps in every arm and round
#   (compute-matched; retraining from scratch each round left even the accumulate arm worse than the base);
# - nucleus sampling, T = 1.0, top-p 0.8, from 8-token prefixes of the human documents: pure sampling
#   (T = 1, no truncation) left diversity flat for many rounds, and lower temperatures collapse document
#   length first, which pushes corpus-level distinct-n back up and hides the collapse;
# - a seeded subset of the corpus (1500 documents, 10% held out): the whole corpus doubles the time and shows
#   the same curves.
DEMO_SETTINGS: dict[str, Any] = {
    "documents": 1500,
    "rounds": 5,
    "vocab_size": 2048,
    "model": {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_positions": 128},
    "base_train": {"epochs": 8, "lr": 3e-3, "batch_size": 16, "block_size": 128},
    "round_train": {"steps": 48, "lr": 1e-3, "batch_size": 16, "block_size": 128},
    "generate": {"prefix_tokens": 8, "samples_per_prompt": 1, "temperature": 1.0, "top_p": 0.8,
                 "max_new_tokens": 32, "batch_size": 256},
    "band": [0.1, 0.9],          # curated: base-model perplexity inside the human documents' 10-90% band
    "human_fraction": 0.5,       # curated: half of every training set is human text
}
QUICK_SETTINGS: dict[str, Any] = {"documents": 1000, "rounds": 3}


def settings(quick: bool) -> dict[str, Any]:
    return {**DEMO_SETTINGS, **(QUICK_SETTINGS if quick else {})}


def subset(docs: list[str], n: int, seed: int) -> list[str]:
    """A seeded sample of n documents (all of them when there are fewer), in corpus order."""
    import numpy as np

    if len(docs) <= n:
        return docs
    pick = np.sort(np.random.default_rng(seed).choice(len(docs), size=n, replace=False))
    return [docs[i] for i in pick]


def demo_config(out: Path, human_file: Path, *, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """The demo's loop config (a dict `curator loop` accepts; `--print-config` shows it as JSON)."""
    s = settings(quick)
    human: dict[str, Any] = {"path": str(human_file), "heldout_fraction": 0.1}
    lo, hi = s["band"]
    return {
        "loop": {"name": "demo", "workdir": str(out), "rounds": s["rounds"], "seed": seed, "threads": 1},
        "human": human,
        "base": {"vocab_size": s["vocab_size"], **s["model"], "train": dict(s["base_train"])},
        "generate": dict(s["generate"]),
        "score": {"scorers": ["perplexity_v1", "repetition_v1"],
                  "perplexity_v1": {"model": "base", "batch_size": 64}},
        "train": {"init": "previous", **s["round_train"]},
        "eval": {"batch_size": 64},
        "arm": [
            {"name": "replace", "mix": {"policy": "replace"}},
            {"name": "accumulate", "mix": {"policy": "accumulate"}},
            {"name": "curated",
             "select": [
                 {"selector": "reference_band_v1", "column": "perplexity_v1.perplexity", "lower": lo, "upper": hi},
                 {"selector": "near_dedup_v1"},
             ],
             "mix": {"policy": "accumulate", "human_fraction": s["human_fraction"]}},
        ],
    }


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if metric == "heldout_ppl" else f"{value:.4f}"


def step_times(result: Any) -> dict[str, float]:
    """Seconds per step kind over every round that ran (round 0 included)."""
    out: dict[str, float] = {}
    for rec in result.records:
        for step in rec.steps:
            out[step.step] = out.get(step.step, 0.0) + step.seconds
    return out


def run_demo(out: Path, *, corpus: Path | None = None, seed: int = 0, quick: bool = False, resume: bool = False,
             quiet: bool = False, echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run the demo into `out` (store, report.html, main_plot.svg, summary.json); returns the summary rows."""
    from .loop import run_loop
    from .progress import reporter
    from .report import collect, main_figure, render, summary_rows

    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    if not resume:  # a fresh experiment; --resume continues an interrupted one (same settings)
        for name in ("store", "ckpt", "exports", "human", "tokenizer", "heldout.jsonl"):
            path = out / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    docs, source = corpus_documents(corpus)
    docs = subset(docs, settings(quick)["documents"], seed)
    human_file = out / "human_corpus.jsonl"
    with human_file.open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps({"text": doc}, ensure_ascii=False) + "\n")
    config = demo_config(out, human_file, quick=quick, seed=seed)
    (out / "demo_config.json").write_text(json.dumps(config, indent=1) + "\n")
    echo(f"human corpus: {len(docs)} documents from {source} (10% held out); {config['loop']['rounds']} rounds x 3 arms "
         f"({'quick' if quick else 'default'} settings)")
    with reporter(quiet) as progress:
        result = run_loop(config, progress=progress, echo=echo, quiet=quiet)
    data = collect(result.store)
    (out / "report.html").write_text(render(data), encoding="utf-8")
    (out / "main_plot.svg").write_text(main_figure(data), encoding="utf-8")
    rows = summary_rows(data)
    (out / "summary.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    times = step_times(result)
    echo("")
    echo(f"{'arm':<11} {'gen':>3} " + " ".join(f"{m:>15}" for m in TABLE))
    for row in rows:
        echo(f"{row['arm']:<11} {row['generation']:>3} " + " ".join(f"{_fmt(row.get(m), m):>15}" for m in TABLE))
    total = sum(times.values())
    curation = sum(v for k, v in times.items() if k in CURATION_STEPS)
    echo("")
    echo("time by step: " + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(times.items(), key=lambda kv: -kv[1])))
    echo(f"curation (score, shift, select, export{', edit' if 'edit' in times else ''}): {curation:.1f}s of "
         f"{total:.1f}s ({100 * curation / total if total else 0:.0f}%)")
    echo(f"wrote {out / 'report.html'}, {out / 'summary.json'}, {out / 'main_plot.svg'}; store: {out / 'store'}")
    return rows
