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

import os

_ONE_THREAD = [v for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS",
                           "RAYON_NUM_THREADS", "LANCE_CPU_THREADS") if v not in os.environ
               and os.environ.get("CURATOR_BENCH_DEVICE", "cpu") == "cpu"]
for _var in _ONE_THREAD:
    os.environ[_var] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
import bench_models  # noqa: E402  (models, document sample, machine info)
import corpus  # noqa: E402

STORE = corpus.CACHE / "edit-store"
RESULTS_JSON = corpus.CACHE / "bench_edit.json"


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
           "peak_rss_mb": bench_models._peak_rss_mb(), "torch_threads": torch.get_num_threads()}
    if spec["device"].startswith("cuda"):
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def worker_main(spec_path: Path, out_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    try:
        result = worker(spec)
    except Exception as e:  # noqa: BLE001 - the parent reports it
        import traceback

        result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out_path.write_text(json.dumps(result, default=str))


def run_worker(spec: dict, *, core: str | None, timeout: float = 3600) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path), "--out", str(out_path)]
        if core is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", core, *cmd]
        print(f"  running {spec['label']} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        result = json.loads(out_path.read_text()) if out_path.exists() and out_path.stat().st_size else {}
    if proc.returncode != 0 and "error" not in result:
        result = {"error": f"worker exited {proc.returncode}", "traceback": proc.stderr[-4000:]}
    if "error" in result:
        return result
    result["tokens_s"] = result["tokens"] / result["wall_s"]
    result["docs_s"] = result["docs"] / result["wall_s"]
    result["cpu_wall"] = result["cpu_s"] / result["wall_s"]
    result["tokens_s_cpu"] = result["tokens"] / result["cpu_s"] if result["cpu_s"] else None
    return result


def print_table(rows: list[tuple[str, dict]]) -> None:
    fmt = bench_models.fmt
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
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    for k, l in enumerate(lines):
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(l, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


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
    msg = corpus.missing_data()
    if msg:
        print(msg)
        return 0
    cuda = args.device.startswith("cuda")
    core = None if cuda or not args.core else args.core
    if cuda:
        os.environ["CURATOR_BENCH_DEVICE"] = args.device
        for var in _ONE_THREAD:
            os.environ.pop(var, None)
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
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
           "machine": bench_models.machine(args.device), "results": results}
    name = "bench_edit" + ("" if args.device == "cpu" else "_" + args.device.replace(":", ""))
    target = RESULTS_JSON.with_name(name + ("_partial" if args.only or args.quick else "") + ".json")
    target.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nresults written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
