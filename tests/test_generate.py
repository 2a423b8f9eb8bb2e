"""Generation with the transformers backend on a tiny GPT-2 trained in the test (the vLLM path needs a GPU)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402  (a dependency of curator: a missing torch fails, never skips)
from click.testing import CliRunner  # noqa: E402

from curator import generate as gen_mod  # noqa: E402
from curator.errors import UsageError  # noqa: E402
from curator.generate import generate  # noqa: E402
from curator.ingest.ids import IdHasher  # noqa: E402
from curator.ingest.pipeline import ingest  # noqa: E402
from curator.ingest.readers import FieldMap  # noqa: E402
from curator.store import Store  # noqa: E402
from tests.conftest import write_jsonl  # noqa: E402
from tests.scorers.tiny_models import TRAIN_TEXT, make_tiny_gpt2, one_thread  # noqa: E402

LINES = [line for line in TRAIN_TEXT.splitlines() if line.strip()]
K = 3
COMMON = dict(samples_per_prompt=K, temperature=0.9, max_new_tokens=12, batch_size=8)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    return make_tiny_gpt2(tmp_path_factory.mktemp("lm") / "gpt2", TRAIN_TEXT, steps=60, seed=0)


def _store(root: Path, prompted: bool = True) -> Store:
    st = Store(root / "store", create=True)
    rows = [{"text": line, "id": f"r{i}"} for i, line in enumerate(LINES[:6])]
    if prompted:
        rows[0].update(prompt="what does the river do?", reference="it runs")
        rows[1].update(prompt="what does the miller do?")
        rows[2].update(prompt="what does the river do?", reference="it runs")  # a repeated prompt: one prompt
    ingest(st, [write_jsonl(root / "human.jsonl", rows)], generation=0, origin="human",
           fields=FieldMap(text="text", prompt="prompt", id="id", reference="reference"))
    return st


@pytest.fixture
def store(tmp_path) -> Store:
    return _store(tmp_path)


def _gen(st: Store, g: int) -> list[dict]:
    return sorted(st.read("samples", filter=f"generation = {g}").to_pylist(),
                  key=lambda r: (r["parent_id"] or "", json.loads(r["decoding"])["sample_index"]))


def test_k_samples_per_prompt_with_links(store, lm):
    r = generate(store, model=lm, generation=1, prompts_from=0, seed=1, **COMMON)
    human = {row["sample_id"]: row for row in store.read("samples", filter="generation = 0").to_pylist()}
    rows = _gen(store, 1)
    # 2 distinct prompts + 3 prompt-less samples (prefix prompts), K samples each.
    assert r.prompts == 5 and r.generated == 5 * K
    assert r.rows_added + r.empty == 5 * K and r.duplicates == 0 and len(rows) == r.rows_added
    river = min(sid for sid, h in human.items() if h["prompt"] == "what does the river do?")
    hasher = IdHasher()
    import pyarrow as pa

    for row in rows:
        parent = human[row["parent_id"]]
        assert row["origin"] == "synthetic" and row["model"] == str(lm.resolve()) and row["text"]
        dec = json.loads(row["decoding"])
        assert dec == {"backend": "hf", "sampler": "gumbel_max_v1", "temperature": 0.9, "top_p": 1.0, "top_k": 0,
                       "max_new_tokens": 12, "seed": 1, "samples_per_prompt": K, "prefix_tokens": 16,
                       "sample_index": dec["sample_index"]}
        assert 0 <= dec["sample_index"] < K
        if parent["prompt"] is not None:
            # A distinct prompt: parent = its smallest sample id; the completion alone is the text.
            assert row["prompt"] == parent["prompt"] and row["prompt_id"] == parent["prompt_id"]
            assert row["reference"] == parent["reference"]
            if row["prompt"] == "what does the river do?":
                assert row["parent_id"] == river
        else:
            # A prefix prompt: the text is the verbatim prefix of the parent followed by the continuation.
            assert parent["text"].startswith(row["prompt"]) and row["text"].startswith(row["prompt"])
            assert 0 < len(row["prompt"]) < len(parent["text"]) and row["reference"] is None
        # Ids exactly as ingest computes them.
        ids = hasher.ids(pa.table({"external_id": [row["external_id"]], "prompt": [row["prompt"]],
                                   "text": [row["text"]]}), 1).to_pylist()[0]
        assert ids == {"sample_id": row["sample_id"], "text_hash": row["text_hash"], "prompt_id": row["prompt_id"]}
    per_parent = {}
    for row in rows:
        per_parent.setdefault(row["parent_id"], set()).add(json.loads(row["decoding"])["sample_index"])
    assert len(per_parent) == 5
    run = store.read("runs").to_pylist()[-1]
    assert run["command"] == "generate" and str(lm.resolve()) in run["checkpoints"]
    assert "gen-1" in store.tags()
    totals = store.read("ngram_totals", filter="generation = 1")
    assert totals.num_rows > 0


def test_same_seed_same_outputs_any_batch_layout(store, lm, tmp_path):
    generate(store, model=lm, generation=1, prompts_from=0, seed=7, **COMMON)
    first = _gen(store, 1)
    # Another batch size (one prompt per batch: no padding at all): same texts, same ids, nothing added.
    again = generate(store, model=lm, generation=1, prompts_from=0, seed=7, **{**COMMON, "batch_size": K})
    assert again.rows_added == 0 and again.duplicates == len(first)
    assert _gen(store, 1) == first
    # A fresh store gives the same texts too.
    other = _store(tmp_path / "other")
    generate(other, model=lm, generation=1, prompts_from=0, seed=7, **{**COMMON, "batch_size": 64})
    assert [r["sample_id"] for r in _gen(other, 1)] == [r["sample_id"] for r in first]


def test_different_seed_different_outputs(store, lm):
    a = generate(store, model=lm, generation=1, prompts_from=0, seed=1, **COMMON)
    texts_a = {r["text"] for r in _gen(store, 1)}
    b = generate(store, model=lm, generation=2, prompts_from=0, seed=2, **COMMON)
    texts_b = {r["text"] for r in _gen(store, 2)}
    assert a.rows_added and b.rows_added
    assert len(texts_a ^ texts_b) > len(texts_a) // 2
    # K samples of one prompt are different draws, not K copies.
    by_prompt = {}
    for r in _gen(store, 1):
        by_prompt.setdefault(r["parent_id"], set()).add(r["text"])
    assert sum(len(v) for v in by_prompt.values()) > len(by_prompt)


def test_greedy_is_deterministic_and_matches_plain_argmax(store, lm):
    from curator import models

    r = generate(store, model=lm, generation=1, prompts_from=0, seed=0, samples_per_prompt=2, temperature=0.0,
                 max_new_tokens=8, batch_size=4)
    rows = [x for x in _gen(store, 1) if x["prompt"] == "what does the miller do?"]
    # Two greedy samples of a prompt: identical texts, still two rows (two draws, distinct external ids).
    assert len(rows) == 2 and rows[0]["text"] == rows[1]["text"] and r.duplicates == 0
    tok, model = models.load_tokenizer(lm), models.load_causal_lm(lm, device="cpu")
    ids = torch.tensor([tok("what does the miller do?")["input_ids"]])
    with torch.inference_mode():
        for _ in range(8):
            nxt = model(ids).logits[0, -1].argmax()
            if int(nxt) == tok.eos_token_id:
                break
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    expect = tok.decode(ids[0, len(tok("what does the miller do?")["input_ids"]):], skip_special_tokens=True)
    assert rows[0]["text"] == expect


def test_gumbel_noise_matches_numpy_reference():
    from curator.stats.tokenize import mix64

    x = np.array([0, 1, 2**63, 2**64 - 1, 123456789], dtype=np.uint64)
    got = gen_mod._mix64_t(torch.from_numpy(x.view(np.int64).copy())).numpy().view(np.uint64)
    assert (got == mix64(x.copy())).all()
    # Gumbel(0, 1): mean ~ Euler's constant, std ~ pi / sqrt(6).
    keys = torch.from_numpy(gen_mod.row_keys(["a" * 32], 3, 1).view(np.int64).copy())
    sampler = gen_mod.GumbelSampler(keys, 0, 50000, "cpu")
    g = sampler(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 50000, dtype=torch.float64))[0].numpy()
    assert abs(g.mean() - 0.5772) < 0.03 and abs(g.std() - 1.2825) < 0.03
    k2 = gen_mod.row_keys(["a" * 32, "b" * 32], 3, 2)
    assert len(set(k2.tolist())) == 4 and k2[0] == gen_mod.row_keys(["a" * 32], 3, 2)[0]


def test_prompts_file(tmp_path, lm):
    st = _store(tmp_path)
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "the miller"}, {"prompt": "the baker", "reference": "bread"},
                                               {"prompt": "the miller"}])
    r = generate(st, model=lm, generation=3, prompts_file=jsonl, seed=0, **COMMON)
    rows = _gen(st, 3)
    assert r.prompts == 2 and len(rows) == r.rows_added
    assert {x["prompt"] for x in rows} == {"the miller", "the baker"}
    assert all(x["parent_id"] is None and x["source_file"] == str(jsonl) for x in rows)
    assert {x["source_row"] for x in rows if x["prompt"] == "the baker"} == {2}
    assert {x["reference"] for x in rows if x["prompt"] == "the baker"} == {"bread"}
    text = tmp_path / "p.txt"
    text.write_text("the river\n\nthe wheel\n")
    r = generate(st, model=lm, generation=4, prompts_file=text, seed=0, **COMMON)
    assert r.prompts == 2 and {x["prompt"] for x in _gen(st, 4)} == {"the river", "the wheel"}


def test_promptless_generation_uses_prefixes(tmp_path, lm):
    st = _store(tmp_path, prompted=False)
    r = generate(st, model=lm, generation=1, prompts_from=0, prefix_tokens=4, seed=0, **COMMON)
    human = {x["sample_id"]: x["text"] for x in st.read("samples", filter="generation = 0").to_pylist()}
    rows = _gen(st, 1)
    assert r.prompts == 6 and {x["parent_id"] for x in rows} == set(human)
    for x in rows:
        assert human[x["parent_id"]].startswith(x["prompt"]) and x["text"].startswith(x["prompt"])
        assert len(x["prompt"].split()) <= 4 and json.loads(x["decoding"])["prefix_tokens"] == 4


def test_errors(tmp_path, lm):
    st = _store(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    cases = [
        (dict(model=tmp_path / "nope", generation=1, prompts_from=0), "no model at"),
        (dict(model=lm, generation=0, prompts_from=0), "generation must be an integer >= 1"),
        (dict(model=lm, generation=1), "exactly one of prompts_from"),
        (dict(model=lm, generation=1, prompts_from=0, prompts_file=empty), "exactly one of prompts_from"),
        (dict(model=lm, generation=1, prompts_from=1), "equals prompts_from"),
        (dict(model=lm, generation=2, prompts_from=1), "generation 1 has no samples"),
        (dict(model=lm, generation=1, prompts_file=empty), "no prompts in"),
        (dict(model=lm, generation=1, prompts_file=tmp_path / "missing.txt"), "no prompts file at"),
        (dict(model=lm, generation=1, prompts_from=0, temperature=-1), "temperature must be"),
        (dict(model=lm, generation=1, prompts_from=0, top_p=0), "top_p must be in (0, 1], got 0"),
        (dict(model=lm, generation=1, prompts_from=0, top_k=-2), "top_k must be"),
        (dict(model=lm, generation=1, prompts_from=0, samples_per_prompt=0), "samples_per_prompt must be"),
        (dict(model=lm, generation=1, prompts_from=0, max_new_tokens=0), "max_new_tokens must be"),
        (dict(model=lm, generation=1, prompts_from=0, max_new_tokens=128), "max_new_tokens=128 leaves no room"),
        (dict(model=lm, generation=1, prompts_from=0, backend="tgi"), "unknown backend 'tgi'"),
        (dict(model=lm, generation=1, prompts_from=0, seed=-1), "seed must be"),
    ]
    before = st.version()
    for kwargs, message in cases:
        with pytest.raises(UsageError, match=None) as exc:
            generate(st, **kwargs)
        assert message in str(exc.value), (kwargs, str(exc.value))
    assert st.version() == before
    if not torch.cuda.is_available():
        with pytest.raises(UsageError):
            generate(st, model=lm, generation=1, prompts_from=0, backend="vllm", device="cuda")


def test_cli(tmp_path, lm):
    from curator.cli import cli
    from curator.cli_generate import register

    register(cli)
    register(cli)  # idempotent
    st = _store(tmp_path)
    runner = CliRunner()
    args = ["--store", str(st.root), "-q", "generate", "--model", str(lm), "--prompts-from", "0",
            "--samples-per-prompt", "2", "--generation", "3", "--temperature", "0.8", "--seed", "1",
            "--max-new-tokens", "10", "--top-p", "0.95", "--backend", "hf"]
    res = runner.invoke(cli, args, obj={})
    assert res.exit_code == 0, res.output
    assert "from 5 prompts into generation 3 with hf" in res.output
    assert len(_gen(st, 3)) > 0
    res = runner.invoke(cli, args, obj={})
    assert res.exit_code == 0 and "(0 new, 10 already present" in res.output
    bad = runner.invoke(cli, [*args[:-2], "--generation", "0"], obj={})
    assert bad.exit_code != 0
    bad = runner.invoke(cli, ["--store", str(st.root), "-q", "generate", "--model", str(lm), "--generation", "0",
                              "--prompts-from", "0"], obj={})
    assert bad.exit_code == 2 and "generation must be" in bad.output
    res = runner.invoke(cli, ["generate", "--help"], obj={})
    assert res.exit_code == 0 and "--samples-per-prompt" in res.output


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 0.8), (0.7, 0, 0.95), (1.0, 40, 1.0),
                                                       (0.9, 40, 0.6), (1.3, 0, 0.97)])
def test_truncated_sampler_draws_what_the_transformers_warpers_draw(temperature, top_k, top_p):
    import torch
    from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    from curator.generate import GumbelSampler, TruncatedGumbelSampler

    gen = torch.Generator().manual_seed(0)
    vocab, rows = 1000, 64
    # peaked rows, and flat ones where the first argmax often falls outside the nucleus (rejection rounds)
    scores = torch.randn(rows, vocab, generator=gen) * torch.tensor([6.0] * 32 + [0.05] * 32)[:, None]
    keys = torch.arange(rows, dtype=torch.int64) * 7919 + 11
    drawn = 0
    for step in range(20):
        ids = torch.zeros(rows, 3 + step, dtype=torch.long)
        fast = TruncatedGumbelSampler(keys, 3, vocab, "cpu", temperature=temperature, top_k=top_k, top_p=top_p)(
            ids, scores)
        ref = TemperatureLogitsWarper(temperature)(ids, scores.clone())
        if top_k:
            ref = TopKLogitsWarper(top_k)(ids, ref)
        if top_p < 1:
            ref = TopPLogitsWarper(top_p)(ids, ref)
        ref = GumbelSampler(keys, 3, vocab, "cpu")(ids, ref)
        assert torch.equal(fast.argmax(1), ref.argmax(1)), step                  # the same draw
        assert torch.isfinite(fast).sum(1).eq(1).all()                            # one token, 0 there
        drawn += len(set(fast.argmax(1)[32:].tolist()))
    assert drawn > 20 * 20  # the flat rows really draw different tokens step after step
