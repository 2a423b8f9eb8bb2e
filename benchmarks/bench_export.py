"""Export throughput on ONE core: parquet, jsonl and tokens shards of a ~50 MB selection.

    .venv/bin/python benchmarks/bench_export.py              # 50 MB corpus prefix (default)
    .venv/bin/python benchmarks/bench_export.py --mb 100     # the whole 100 MB corpus

Corpus: the first `--mb` MB of `benchmarks/corpus.py`'s ingest corpus (GSM8K problems, Shakespeare speeches
and WikiText-2 articles from ../shared/data, replicated with small seeded word perturbations; see its
docstring), ingested once (`stats=False`) into a cached store under `benchmarks/.data/bench_export_store_<mb>mb`
with one selection `all` (every sample, weight 1). Tokens use a byte-level BPE (vocabulary 8,192) trained
once on the base documents and cached beside it.

MB/s = UTF-8 bytes of the exported documents' `text` (10^6 bytes per MB) over the wall time of `export(...)`
(read the selection, plan, fetch rows from Lance, write 8 shards, sha256 every file, commit the run).
`verify` is timed too (it re-reads and hashes every file: MB of files / s). The process is pinned to one core
with every thread pool at 1; `cpu/wall` below 1 means the shared machine's core was busy with other work.
Results: a table on stdout and `benchmarks/.data/bench_export.json`.
"""
from __future__ import annotations

import common  # first: the thread settings below must precede numpy / pyarrow imports

common.single_thread_env()

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

import corpus  # noqa: E402
from curator.export import export, verify  # noqa: E402
from curator.ingest.pipeline import ingest  # noqa: E402
from curator.store import Store  # noqa: E402

RESULTS = corpus.CACHE / "bench_export.json"
SHARDS = 8


def build_store(mb: float) -> Store:
    root = corpus.CACHE / f"bench_export_store_{mb:g}mb"
    done = root / ".complete"
    if done.exists():
        return Store(root)
    shutil.rmtree(root, ignore_errors=True)
    src = corpus.prefix_corpus(mb)
    print(f"building {root} from {src.name} ...", file=sys.stderr, flush=True)
    store = Store(root, create=True)
    ingest(store, [src], generation=0, origin="human", stats=False)
    ids = store.read("samples", columns=["sample_id"]).column("sample_id")
    n = len(ids)
    with store.transaction("select", {"name": "all", "bench": True}) as tx:
        tx.append("selections", pa.table({
            "selection": pa.array(["all"] * n), "sample_id": ids, "generation": pa.array([0] * n, pa.int32()),
            "origin": pa.array(["human"] * n), "weight": pa.array([1.0] * n), "reason": pa.array(["all"] * n),
            "config_hash": pa.array(["0" * 16] * n), "run_id": pa.array([tx.run_id] * n)}))
    done.touch()
    return store


def build_tokenizer() -> Path:
    folder = corpus.CACHE / "bench_export_tokenizer"
    if (folder / "tokenizer.json").exists():
        return folder
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=8192, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus.base_docs(), trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--formats", default="parquet,jsonl,tokens")
    args = parser.parse_args()
    if common.skip_without_data():
        return
    common.pin(sorted(os.sched_getaffinity(0))[0] if hasattr(os, "sched_getaffinity") else None)
    store = build_store(args.mb)
    tokenizer = build_tokenizer()
    texts = store.read("samples", columns=["text"]).column("text")
    text_bytes = int(pc.sum(pc.binary_length(texts)).as_py())
    docs = len(texts)
    del texts
    out_root = corpus.CACHE / "bench_export_out"
    rows = []
    for fmt in args.formats.split(","):
        out = out_root / fmt
        shutil.rmtree(out, ignore_errors=True)
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = export(store, "all", fmt=fmt, shards=SHARDS, seed=0, out=out,
                        tokenizer=tokenizer if fmt == "tokens" else None, overwrite=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        t1 = time.perf_counter()
        report = verify(out)
        vwall = time.perf_counter() - t1
        assert report.ok, report.message()
        rows.append({"format": fmt, "documents": result.documents, "text_MB": round(text_bytes / 1e6, 1),
                     "out_MB": round(result.bytes / 1e6, 1), "seconds": round(wall, 2), "cpu/wall": round(cpu / wall, 2),
                     "MB/s": round(text_bytes / 1e6 / wall, 1),
                     "MB/cpu-s": round(text_bytes / 1e6 / cpu, 1), "verify_MB/s": round(result.bytes / 1e6 / vwall, 1)})
        print(rows[-1], file=sys.stderr, flush=True)
    cols = list(rows[0])
    print(" ".join(f"{c:>12}" for c in cols))
    for r in rows:
        print(" ".join(f"{r[c]:>12}" for c in cols))
    RESULTS.write_text(json.dumps({
        "when": common.now(), "machine": platform.platform(),
        "python": platform.python_version(), "corpus_mb": args.mb, "documents": docs, "text_bytes": text_bytes,
        "shards": SHARDS, "peak_rss_mb": common.peak_rss_mb(), "results": rows,
    }, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
