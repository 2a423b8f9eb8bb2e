"""ToEdit token-editor throughput (`curator.transforms.edit`), on ONE CPU core by default or a GPU with
`--device cuda`.

    .venv/bin/python benchmarks/bench_edit.py                 # CPU, one pinned core (a few minutes)
    .venv/bin/python benchmarks/bench_edit.py --quick         # a quarter of the documents
    .venv/bin/python benchmarks/bench_edit.py --device cuda   # GPU: more documents, larger batches

Documents: the seeded sample of base documents of `bench_models.py` (GSM8K problems with their answers,
Shakespeare speeches, WikiText-2 articles, from ../shared/data; nothing downloaded), ingested as generation 0
(origin human) into a fresh store under `benchmarks/.data/edit-store/`. Each contender edits them into its own
generation. Models: `tiny-gpt2` and `gpt2-small-random` (GPT-2-small's shape, 124M parameters, random
weights), built and cached by `bench_models.build_models()` in `benchmarks/.data/models/`.

Each contender runs in a fresh subprocess. On CPU it is pinned to one core (`taskset -c 0`) with
OMP_NUM_THREADS=1 etc., `OMP_WAIT_POLICY=PASSIVE` and one torch thread. The model is loaded before the clock
starts (load s); timed is one `edit()` call: reading the source, the teacher-forced passes, the draws, decoding
and the writes of `samples`/`edits`/`edit_samples` and the run commit; the n-gram statistics of the target
generation are switched off (`stats=False`: they are ingest's cost, measured by bench_ingest). tokens/s =
parent tokens (prior tokenizer) / wall seconds; tokens/cpu-s over the process's CPU time (better on a busy
shared core: cpu/wall < 1 means someone else had the core).
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / torch imports

_ONE_THREAD = common.single_thread_env(keep_set=True)  # a GPU run lifts these: see main()

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
import bench_models  # noqa: E402  (models, document sample, machine info)
import corpus  # noqa: E402

STORE = corpus.CACHE / "edit-store"


def build_store(n_docs: int) -> Path:
    """A fresh store holding `n_docs` sampled documents as generation 0 (human)."""
    from curator.ingest.pipeline import ingest
    from curator.store import Store

    shutil.rmtree(STORE, ignore_errors=True)
    STORE.mkdir(parents=True)
    src = STORE.parent / "edit-store-input.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in bench_models.sample_docs(n_docs)))
    ingest(Store(STORE, create=True), [src], generation=0, origin="human", stats=False)
    return STORE


def worker(spec: dict) -> dict:
    import pyarrow as pa
    import torch

    from curator import models
    from curator.store import Store
    from curator.transforms import edit

    if spec["device"] == "cpu":
        torch.set_num_threads(1)
        pa.set_cpu_count(1)
    t0 = time.perf_counter()
    models.load_causal_lm(spec["model"], device=spec["device"])
    models.load_tokenizer(spec["model"])
    load_s = time.perf_counter() - t0
    store = Store(STORE)
    opts = dict(spec["options"])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    r = edit(store, generation=0, into=spec["into"], model=spec["model"], device=spec["device"], stats=False, **opts)
    if spec["device"].startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    out = {"docs": r.documents, "tokens": r.tokens, "eligible": r.eligible, "changed": r.changed,
           "deleted": r.deleted, "wall_s": wall, "cpu_s": cpu, "load_s": load_s,
           "peak_rss_mb": common.peak_rss_mb(), "torch_threads": torch.get_num_threads()}
    if spec["device"].startswith("cuda"):
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def worker_main(spec_path: Path, out_path: Path) -> None:
    common.write_worker_result(out_path, common.guarded(worker, json.loads(spec_path.read_text())))


def run_worker(spec: dict, *, core: str | None, timeout: float = 3600) -> dict:
    print(f"  running {spec['label']} ...", file=sys.stderr, flush=True)
    result = common.launch(__file__, [], spec=spec, cores=core, timeout=timeout)
    if "error" in result:
        return result
    result["tokens_s"] = result["tokens"] / result["wall_s"]
    result["docs_s"] = result["docs"] / result["wall_s"]
    result["cpu_wall"] = result["cpu_s"] / result["wall_s"]
    result["tokens_s_cpu"] = result["tokens"] / result["cpu_s"] if result["cpu_s"] else None
    return result


def print_table(rows: list[tuple[str, dict]]) -> None:
    fmt = common.fmt
    head = ("contender", "docs", "tokens", "eligible", "changed", "deleted", "load s", "wall s", "tokens/s", "tokens/cpu-s",
            "peak RSS MB", "cpu/wall")
    lines = [head]
    for label, r in rows:
        if "error" in r:
            lines.append((label, *[""] * (len(head) - 2), "ERROR"))
            continue
        lines.append((label, f"{r['docs']:,}", f"{r['tokens']:,}", f"{r['eligible']:,}", f"{r['changed']:,}",
                      f"{r['deleted']:,}", fmt(r["load_s"]), fmt(r["wall_s"]), fmt(r["tokens_s"], ",.0f"), fmt(r.get("tokens_s_cpu"), ",.0f"),
                      fmt(r["peak_rss_mb"], ".0f"), fmt(r["cpu_wall"], ".2f")))
    common.print_aligned(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help="cpu (one pinned core) or cuda")
    ap.add_argument("--core", default="0", help="CPU to pin every contender to ('' = no pinning; ignored on cuda)")
    ap.add_argument("--quick", action="store_true", help="a quarter of the documents")
    ap.add_argument("--only", default="", help="comma-separated subset of contender keys (prefixes match)")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.out)
        return 0
    if common.skip_without_data():
        return 0
    cuda = args.device.startswith("cuda")
    core = None if cuda or not args.core else args.core
    if cuda:
        common.lift_single_thread(_ONE_THREAD, args.device)
    scale = 0.25 if args.quick else 1
    n_tiny = int((20000 if cuda else 2000) * scale)
    n_small = int((4000 if cuda else 40) * scale)
    batch = 32 if cuda else 16
    paths = bench_models.build_models()
    # `edit` reads a whole generation: a contender with another document count gets a store rebuilt with
    # that many (the first n of the same seeded order, so the small model's documents are a prefix of the tiny's).
    contenders = [
        {"key": "tiny", "label": "tiny GPT-2 (p=0.99, k=8, beta=1.5)", "model": str(paths["tiny"]), "docs": n_tiny,
         "into": 1, "options": {"batch_size": batch}},
        {"key": "tiny_delete", "label": "tiny GPT-2, + delete P<0.001", "model": str(paths["tiny"]), "docs": n_tiny,
         "into": 2, "options": {"batch_size": batch, "delete_below": 0.001}},
        # The benchmark's tiny GPT-2 is barely trained (its largest token probabilities are ~0.04), so p=0.99
        # exercises only the teacher-forced pass; p=0.02 makes a good share of positions eligible (draws, edits rows).
        {"key": "tiny_p002", "label": "tiny GPT-2, p=0.02 (many draws)", "model": str(paths["tiny"]), "docs": n_tiny,
         "into": 4, "options": {"batch_size": batch, "threshold": 0.02}},
        {"key": "small", "label": "GPT-2-small shape (124M, random)", "model": str(paths["small"]), "docs": n_small,
         "into": 3, "options": {"batch_size": batch}},
    ]
    if args.only:
        contenders = [c for c in contenders if c["key"].startswith(tuple(args.only.split(",")))]
    print(f"device {args.device}; pinned to core {core or '(none)'}", file=sys.stderr)
    results: dict[str, dict] = {}
    rows: list[tuple[str, dict]] = []
    built = None
    for spec in contenders:
        if built != spec["docs"]:
            print(f"  ingesting {spec['docs']:,} documents into {STORE} ...", file=sys.stderr, flush=True)
            build_store(spec["docs"])
            built = spec["docs"]
        r = run_worker({**spec, "device": args.device}, core=core)
        r["spec"] = spec
        results[spec["key"]] = r
        rows.append((spec["label"], r))
        if "error" in r:
            print(f"!! {spec['label']}: {r['error']}\n{r.get('traceback', '')}", file=sys.stderr)
    print()
    print_table(rows)
    out = {**common.header(bench_models.machine(args.device)), "results": results}
    name = "bench_edit" + ("" if args.device == "cpu" else "_" + args.device.replace(":", ""))
    common.write_results(name, out, partial=bool(args.only or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
