"""perplexity_v1 on a tiny GPT-2 trained in the session, against direct torch computations; curator.models."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pyarrow as pa
import pytest

import torch  # noqa: E402  (a dependency of curator: a missing torch fails, never skips)

from curator import models  # noqa: E402
from curator.errors import UsageError  # noqa: E402
from curator.scorers import create  # noqa: E402
from curator.scorers.perplexity import Perplexity, plan_windows  # noqa: E402

from tests.scorers import tiny_models  # noqa: E402

LINES = [line for line in tiny_models.TRAIN_TEXT.splitlines() if line.strip()]


def batch(texts: list) -> pa.Table:
    return pa.table({"sample_id": [f"s{i}" for i in range(len(texts))], "text": pa.array(texts, type=pa.string())})


def run(scorer: Perplexity, texts: list) -> dict[str, list]:
    b = batch(texts)
    return scorer.check_output(b, scorer.score(b)).to_pydict()


@pytest.fixture(scope="module")
def lm(tiny_gpt2):
    return models.load_causal_lm(tiny_gpt2, device="cpu"), models.load_tokenizer(tiny_gpt2)


def direct_logprobs(model, ids: list[int]) -> np.ndarray:
    """log P(ids[t] | ids[:t]) for t = 1..n-1, one unpadded forward pass."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(x).logits[0].double(), dim=-1)
    return logp[:-1].gather(1, x[0, 1:, None]).squeeze(1).numpy()


# ---- the numbers ---------------------------------------------------------------------------------


def test_lower_on_training_text_than_on_shuffled_words(tiny_gpt2):
    scorer = create("perplexity_v1", {"model": str(tiny_gpt2)})
    shuffled = [tiny_models.shuffled_words(line, seed=i) for i, line in enumerate(LINES)]
    train = run(scorer, LINES)
    shuf = run(scorer, shuffled)
    lower = sum(a < b for a, b in zip(train["perplexity"], shuf["perplexity"]))
    assert lower >= 0.9 * len(LINES)
    # Corpus level: tokens are the same multiset per line, only the order differs.
    def corpus_ppl(r):
        return math.exp(-sum(m * n for m, n in zip(r["mean_logprob"], r["n_tokens"])) / sum(r["n_tokens"]))
    assert corpus_ppl(train) * 3 < corpus_ppl(shuf)


def test_agrees_with_direct_torch_loss(tiny_gpt2, lm):
    model, tok = lm
    scorer = create("perplexity_v1", {"model": str(tiny_gpt2), "batch_size": 4})
    texts = LINES[:9]
    got = run(scorer, texts)
    for i, text in enumerate(texts):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            loss = float(model(x, labels=x).loss)  # mean cross-entropy over tokens 2..n
        assert got["n_tokens"][i] == len(ids) - 1
        assert got["mean_logprob"][i] == pytest.approx(-loss, rel=1e-4)
        assert got["perplexity"][i] == pytest.approx(math.exp(loss), rel=1e-4)


@pytest.mark.parametrize("max_length,stride", [(None, None), (64, 32), (64, 5), (64, 63), (40, 17)])
def test_sliding_window_matches_direct_computation(tiny_gpt2, lm, max_length, stride):
    """A document longer than the window: each token scored once, with the context the window method gives."""
    model, tok = lm
    text = " ".join(LINES)  # ~350 tokens; the context is 128
    ids = tok(text, add_special_tokens=False)["input_ids"]
    M = max_length or 128
    S = stride or M // 2
    assert len(ids) > 2 * M
    expected = np.full(len(ids), np.nan)
    prev_end, begin = 1, 0
    while True:  # the Hugging Face recipe, one window at a time
        end = min(begin + M, len(ids))
        lp = direct_logprobs(model, ids[begin:end])  # lp[k]: token begin+k+1
        for t in range(prev_end, end):
            assert np.isnan(expected[t]), "a token scored twice"
            expected[t] = lp[t - begin - 1]
        prev_end = end
        if end == len(ids):
            break
        begin += S
    assert not np.isnan(expected[1:]).any()
    options = {"model": str(tiny_gpt2), "keep_token_probs": True}
    if max_length:
        options.update(max_length=max_length, stride=stride)
    got = run(create("perplexity_v1", options), [text, LINES[0]])
    assert got["n_tokens"][0] == len(ids) - 1
    probs = np.array(got["token_probs"][0], dtype=np.float64)
    np.testing.assert_allclose(np.log(probs), expected[1:], rtol=1e-4, atol=1e-5)
    assert got["mean_logprob"][0] == pytest.approx(expected[1:].mean(), rel=1e-5)


@pytest.mark.parametrize("M,S", [(8, 4), (8, 1), (8, 7), (5, 3), (128, 64)])
@pytest.mark.parametrize("first", [1, 2])
def test_windows_cover_every_position_once(M, S, first):
    lengths = np.arange(0, 60)
    w = plan_windows(lengths, first, M, S)
    for doc, length in enumerate(lengths):
        mine = np.flatnonzero(w["doc"] == doc)
        positions = np.concatenate([np.arange(w["end"][k] - w["scored"][k], w["end"][k]) for k in mine])
        assert positions.tolist() == list(range(first, length))
        assert (w["end"][mine] - w["begin"][mine] <= M).all()
        later = mine[1:]
        # every window after the first sees at least M - S tokens before its first scored token
        assert (w["end"][later] - w["scored"][later] - w["begin"][later] >= M - S).all()


def test_batch_composition_and_order_do_not_change_results(tiny_gpt2):
    texts = [LINES[3], "the", " ".join(LINES[:6]), "", LINES[0][:20], " ".join(LINES), None, LINES[7]]
    batched = run(create("perplexity_v1", {"model": str(tiny_gpt2), "batch_size": 3, "keep_token_probs": True}),
                  texts)
    single = create("perplexity_v1", {"model": str(tiny_gpt2), "batch_size": 1, "keep_token_probs": True})
    for i, text in enumerate(texts):
        one = run(single, [text])
        assert one["n_tokens"][0] == batched["n_tokens"][i]
        if one["perplexity"][0] is None:
            assert batched["perplexity"][i] is None
            continue
        assert batched["perplexity"][i] == pytest.approx(one["perplexity"][0], rel=1e-5)
        np.testing.assert_allclose(batched["token_probs"][i], one["token_probs"][0], rtol=1e-4)
    order = [5, 2, 0, 7, 1, 6, 3, 4]
    permuted = run(create("perplexity_v1", {"model": str(tiny_gpt2), "batch_size": 3}), [texts[k] for k in order])
    for pos, k in enumerate(order):
        assert permuted["n_tokens"][pos] == batched["n_tokens"][k]
        if batched["perplexity"][k] is not None:
            assert permuted["perplexity"][pos] == pytest.approx(batched["perplexity"][k], rel=1e-5)


def test_token_probs(tiny_gpt2):
    texts = LINES[:4] + [" ".join(LINES)]
    kept = run(create("perplexity_v1", {"model": str(tiny_gpt2), "keep_token_probs": True}), texts)
    for probs, n, ppl in zip(kept["token_probs"], kept["n_tokens"], kept["perplexity"]):
        assert len(probs) == n
        probs = np.array(probs, dtype=np.float64)
        assert ((probs > 0) & (probs <= 1)).all()
        assert math.exp(np.log(probs).mean()) == pytest.approx(1 / ppl, rel=1e-5)
    plain = run(create("perplexity_v1", {"model": str(tiny_gpt2)}), texts)
    assert plain["token_probs"] == [None] * len(texts)
    assert plain["perplexity"] == pytest.approx(kept["perplexity"], rel=1e-9)


def test_empty_null_and_one_token_texts(tiny_gpt2, lm):
    _, tok = lm
    one_token = next(w for w in ("the", "The", "a", "\n") if len(tok(w, add_special_tokens=False)["input_ids"]) == 1)
    got = run(create("perplexity_v1", {"model": str(tiny_gpt2), "keep_token_probs": True}),
              ["", None, one_token, LINES[0]])
    assert got["n_tokens"][:3] == [0, 0, 0]
    assert got["perplexity"][:3] == [None, None, None]
    assert got["mean_logprob"][:3] == [None, None, None]
    assert got["token_probs"][:3] == [[], [], []]
    assert got["n_tokens"][3] > 0 and got["perplexity"][3] > 1
    assert run(create("perplexity_v1", {"model": str(tiny_gpt2)}), [])["n_tokens"] == []


def test_add_bos_scores_the_first_token(tiny_gpt2, lm):
    model, tok = lm
    text = LINES[2]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    got = run(create("perplexity_v1", {"model": str(tiny_gpt2), "add_bos": True, "keep_token_probs": True}),
              [text, ""])
    expected = direct_logprobs(model, [tok.eos_token_id] + ids)  # tiny tokenizer: bos = eos = <|endoftext|>
    assert got["n_tokens"] == [len(ids), 0]
    np.testing.assert_allclose(np.log(np.array(got["token_probs"][0], dtype=np.float64)), expected, rtol=1e-4)
    # The GPT-2-style tokenizer adds no prefix of its own: auto and false both score tokens 2..n.
    for add_bos in (None, False):
        opts = {"model": str(tiny_gpt2)} | ({} if add_bos is None else {"add_bos": add_bos})
        assert run(create("perplexity_v1", opts), [text])["n_tokens"] == [len(ids) - 1]


# ---- the contract ---------------------------------------------------------------------------------


def test_schema_and_registry(tiny_gpt2):
    scorer = create("perplexity_v1", {"model": str(tiny_gpt2), "keep_token_probs": "true", "max_length": "64"})
    assert isinstance(scorer, Perplexity)
    assert scorer.config.keep_token_probs is True and scorer.config.max_length == 64
    assert scorer.output_schema() == pa.schema([
        pa.field("perplexity", pa.float64()), pa.field("mean_logprob", pa.float64()),
        pa.field("n_tokens", pa.int64()), pa.field("token_probs", pa.list_(pa.float32()))])
    # the columns do not depend on the config
    assert create("perplexity_v1", {"model": str(tiny_gpt2)}).output_schema() == scorer.output_schema()


def test_picklable_before_and_after_setup(tiny_gpt2):
    scorer = create("perplexity_v1", {"model": str(tiny_gpt2)})
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone.config == scorer.config and clone.config_hash == scorer.config_hash
    scorer.setup()
    shipped = pickle.loads(pickle.dumps(scorer))
    assert shipped._rt is None  # the model stays behind; the worker's setup() loads it
    assert run(shipped, [LINES[0]])["perplexity"] == pytest.approx(run(scorer, [LINES[0]])["perplexity"])


def test_errors(tiny_gpt2, tmp_path):
    with pytest.raises(UsageError, match="perplexity_v1 needs a model"):
        create("perplexity_v1")
    with pytest.raises(UsageError, match=r"no model at gpt2: expected a transformers checkpoint \(config.json\)"):
        create("perplexity_v1", {"model": "gpt2"})  # a Hub id is not a local folder: nothing downloads
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no model at .*empty"):
        create("perplexity_v1", {"model": str(tmp_path / "empty")})
    with pytest.raises(UsageError, match="stride=64 must be less than max_length=64"):
        create("perplexity_v1", {"model": str(tiny_gpt2), "max_length": 64, "stride": 64})
    with pytest.raises(UsageError, match="unknown backend 'jax'.*auto, torch, vllm"):
        create("perplexity_v1", {"model": str(tiny_gpt2), "backend": "jax"})
    with pytest.raises(UsageError, match="unknown dtype 'int8'"):
        create("perplexity_v1", {"model": str(tiny_gpt2), "dtype": "int8"})
    with pytest.raises(UsageError, match="max_length=4096 exceeds the context .* \\(128 tokens\\)"):
        create("perplexity_v1", {"model": str(tiny_gpt2), "max_length": 4096}).setup()
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="backend=vllm needs a CUDA device"):
            create("perplexity_v1", {"model": str(tiny_gpt2), "backend": "vllm", "device": "cpu"}).setup()
        with pytest.raises(UsageError, match="device 'cuda'.*no CUDA GPU"):
            create("perplexity_v1", {"model": str(tiny_gpt2), "device": "cuda"}).setup()


def test_a_tokenizer_folder_is_not_a_causal_lm(tmp_path):
    tok = tiny_models.train_tokenizer(tiny_models.TRAIN_TEXT, 300)
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    with pytest.raises(UsageError, match="cannot load .* as a causal language model"):
        models.load_causal_lm(tmp_path, device="cpu", cache=False)


def test_a_model_folder_without_tokenizer(tiny_gpt2, tmp_path):
    import shutil

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_gpt2 / name, tmp_path / name)
    with pytest.raises(UsageError, match="no tokenizer at .*: expected tokenizer.json"):
        create("perplexity_v1", {"model": str(tmp_path)}).setup()


def test_a_tokenizer_saved_on_its_own_loads(tiny_gpt2, tmp_path):
    import shutil

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_gpt2 / name, tmp_path / name)
    alone = models.load_tokenizer(tmp_path, cache=False)
    assert alone("the river runs")["input_ids"] == models.load_tokenizer(tiny_gpt2)("the river runs")["input_ids"]
    with pytest.raises(UsageError, match="no tokenizer at .*missing: expected a folder"):
        models.load_tokenizer(tmp_path / "missing")


def test_vllm_path_reads_prompt_logprobs_like_torch(tiny_gpt2, lm, monkeypatch):
    """The vLLM branch, on a stand-in engine that answers `prompt_logprobs=0` the way vLLM documents it: one
    entry per prompt position, None first, then {actual token id: Logprob(logprob)}."""
    import sys
    import types
    from dataclasses import dataclass

    model, _ = lm

    @dataclass
    class Logprob:
        logprob: float
        rank: int | None = None
        decoded_token: str | None = None

    class SamplingParams:
        def __init__(self, **kwargs):
            assert kwargs["prompt_logprobs"] == 0 and kwargs["max_tokens"] == 1
            self.kwargs = kwargs

    class FakeLLM:
        def generate(self, prompts, params, use_tqdm=True):
            outs = []
            for p in prompts:
                ids = p["prompt_token_ids"]
                assert len(ids) <= 128
                lp = direct_logprobs(model, ids)
                entries = [None] + [{ids[t]: Logprob(float(lp[t - 1]), rank=1)} for t in range(1, len(ids))]
                outs.append(types.SimpleNamespace(prompt_token_ids=ids, prompt_logprobs=entries))
            return outs

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=SamplingParams))
    texts = [" ".join(LINES), LINES[0], "", LINES[4]]
    options = {"model": str(tiny_gpt2), "keep_token_probs": True, "max_length": 64, "stride": 24}
    expected = run(create("perplexity_v1", options), texts)
    scorer = create("perplexity_v1", options)
    scorer.setup()
    scorer._rt.backend, scorer._rt.model = "vllm", FakeLLM()
    got = run(scorer, texts)
    assert got["n_tokens"] == expected["n_tokens"]
    for a, b in zip(got["token_probs"], expected["token_probs"]):
        np.testing.assert_allclose(a, b, rtol=1e-4)


# ---- curator.models -------------------------------------------------------------------------------


def test_models_cache_device_dtype_threads(tiny_gpt2, monkeypatch):
    a = models.load_causal_lm(tiny_gpt2, device="cpu")
    assert models.load_causal_lm(str(tiny_gpt2), device="auto" if not torch.cuda.is_available() else "cpu") is a
    assert models.load_causal_lm(tiny_gpt2, device="cpu", cache=False) is not a
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    assert models.load_causal_lm(tiny_gpt2, device="cpu", dtype="bfloat16").dtype == torch.bfloat16
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert models.resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert models.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        models.resolve_device("tpu")
    assert models.context_length(tiny_gpt2) == 128
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(models.THREADS_ENV, "2")
        assert models.set_threads(None, "cpu") == 2
        assert models.set_threads(1, "cpu") == 1  # an explicit option beats the environment
        monkeypatch.delenv(models.THREADS_ENV)
        assert models.set_threads(None, "cpu") == 1  # otherwise torch's current setting stays
        monkeypatch.setenv(models.THREADS_ENV, "many")
        with pytest.raises(UsageError, match="CURATOR_TORCH_THREADS='many'"):
            models.set_threads(None, "cpu")
    finally:
        torch.set_num_threads(before)


def test_models_offline_and_missing_packages():
    import os

    models.offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    import huggingface_hub.constants as hub

    assert hub.HF_HUB_OFFLINE is True
    with pytest.raises(UsageError, match="install no-such-pkg to use the moon backend"):
        models.require("no_such_module_xyz", "no-such-pkg", "the moon backend")


def test_tiny_gpt2_builder_is_deterministic(tmp_path):
    """Later parts (token editor, demo, trainer) rely on the same seed giving the same model."""
    from safetensors.torch import load_file

    a = tiny_models.make_tiny_gpt2(tmp_path / "a", steps=5, seed=3)
    b = tiny_models.make_tiny_gpt2(tmp_path / "b", steps=5, seed=3)
    c = tiny_models.make_tiny_gpt2(tmp_path / "c", steps=5, seed=4)
    wa, wb, wc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
