"""The GPU paths: vLLM generation, vLLM perplexity and bf16 training on a CUDA device.

Marked `gpu` and skipped (with the reason) where no CUDA device, or no vLLM, is present; on a machine with a GPU
they run against a tiny GPT-2 built on the fly, like every other model test.
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")]
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed (pip install -e '.[gpu]')")


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    from curator.tinylm import TRAIN_TEXT, make_tiny_gpt2

    return make_tiny_gpt2(tmp_path_factory.mktemp("lm") / "gpt2", TRAIN_TEXT, steps=60, seed=0)


@pytest.fixture
def store(tmp_path):
    from curator.ingest.pipeline import ingest
    from curator.store import Store
    from curator.tinylm import TRAIN_TEXT
    from tests.conftest import write_jsonl

    st = Store(tmp_path / "store", create=True)
    rows = [{"text": line} for line in TRAIN_TEXT.splitlines() if line.strip()]
    ingest(st, [write_jsonl(tmp_path / "human.jsonl", rows)], generation=0, origin="human")
    return st


@needs_vllm
def test_vllm_generation_records_decoding_and_repeats_with_a_seed(store, lm):
    from curator.generate import generate
    from curator.store.query import connect, run_sql

    kw = dict(model=lm, prompts_from=0, prefix_tokens=4, samples_per_prompt=3, temperature=0.8, top_p=0.9,
              max_new_tokens=16, seed=7, backend="vllm", device="cuda")
    first = generate(store, generation=1, **kw)
    second = generate(store, generation=2, **kw)
    assert first.backend == "vllm" and first.rows_added > 0 and second.rows_added == first.rows_added
    rows = run_sql(connect(store), "SELECT generation, external_id, text, decoding FROM samples "
                                   "WHERE generation > 0 ORDER BY generation, external_id").to_pylist()
    dec = json.loads(rows[0]["decoding"])
    assert dec["backend"] == "vllm" and dec["temperature"] == 0.8 and dec["top_p"] == 0.9 and dec["seed"] == 7
    by_gen = {g: [(r["external_id"], r["text"]) for r in rows if r["generation"] == g] for g in (1, 2)}
    assert by_gen[1] == by_gen[2]  # per-request seeds: the same samples again on the same GPU


@needs_vllm
def test_vllm_perplexity_agrees_with_torch(store, lm):
    from curator.scorers import create
    from curator.tinylm import TRAIN_TEXT

    texts = [line for line in TRAIN_TEXT.splitlines() if line.strip()]
    import pyarrow as pa

    batch = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": texts})
    values = {}
    for backend in ("torch", "vllm"):
        scorer = create("perplexity_v1", {"model": str(lm), "backend": backend, "device": "cuda"})
        scorer.setup()
        values[backend] = scorer.score(batch).column("perplexity").to_pylist()
    for a, b in zip(values["torch"], values["vllm"]):
        assert math.isclose(a, b, rel_tol=0.02), (a, b)


def test_bf16_training_on_the_gpu(store, lm, tmp_path):
    from curator.export import export
    from curator.selectors.pipeline import select
    from curator.train import train

    select(store, generation=0, name="all", origins=("human",))
    shards = export(store, "all", fmt="parquet", shards=1, seed=0, out=tmp_path / "shards")
    result = train(store, export=shards.out, base=lm, out=tmp_path / "ckpt", steps=20, batch_size=8,
                   block_size=64, lr=1e-3, device="cuda", dtype="bfloat16")
    assert result.device.startswith("cuda") and result.dtype == "bfloat16"
    assert all(math.isfinite(x) for x in result.losses) and result.last_loss < result.first_loss
    assert (tmp_path / "ckpt" / "config.json").exists()
