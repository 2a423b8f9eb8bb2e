"""reward_model_v1 on tiny GPT-2 sequence classifiers (1 and 2 labels) trained in the session."""
from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

import torch  # noqa: E402  (a dependency of curator: a missing torch fails, never skips)

from curator import models  # noqa: E402
from curator.errors import UsageError  # noqa: E402
from curator.scorers import create  # noqa: E402

from tests.scorers.tiny_models import REWARD_TEXTS  # noqa: E402

PROMPTS = [p for p, _, _ in REWARD_TEXTS]
TEXTS = [t for _, t, _ in REWARD_TEXTS]
LABELS = np.array([y for _, _, y in REWARD_TEXTS])


def batch(texts: list, prompts: list | None = None) -> pa.Table:
    cols = {"sample_id": [str(i) for i in range(len(texts))], "text": pa.array(texts, type=pa.string())}
    cols["prompt"] = pa.array(prompts if prompts is not None else [None] * len(texts), type=pa.string())
    return pa.table(cols)


def run(scorer, texts: list, prompts: list | None = None) -> dict[str, list]:
    b = batch(texts, prompts)
    return scorer.check_output(b, scorer.score(b)).to_pydict()


def direct(path, prompt: str | None, text: str) -> np.ndarray:
    """The classifier's logits for one row, unpadded, through the tokenizer's own (pair) encoding."""
    tok = models.load_tokenizer(path)
    model = models.load_sequence_classifier(path, device="cpu")
    enc = tok(prompt, text, return_tensors="pt") if prompt else tok(text, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits[0].double().numpy()


@pytest.mark.parametrize("labels", [1, 2])
def test_reward_is_the_positive_logit(tiny_reward_models, labels):
    path = tiny_reward_models[labels]
    prompts = PROMPTS[:5] + [None, "", None]
    texts = TEXTS[:5] + [TEXTS[5], TEXTS[6], None]
    got = run(create("reward_model_v1", {"model": str(path), "batch_size": 3}), texts, prompts)
    for prompt, text, reward in zip(prompts, texts, got["reward"]):
        logits = direct(path, prompt, text or "")
        expected = logits[0] if labels == 1 else logits[1] - logits[0]
        assert reward == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_pair_encoding_is_used_when_a_prompt_is_present(tiny_reward_models):
    path = tiny_reward_models[2]
    scorer = create("reward_model_v1", {"model": str(path)})
    with_prompt = run(scorer, TEXTS[:2], PROMPTS[:2])["reward"]
    without = run(scorer, TEXTS[:2])["reward"]
    assert with_prompt != pytest.approx(without)


def test_trained_model_ranks_the_classes(tiny_reward_models):
    for labels, path in tiny_reward_models.items():
        reward = np.array(run(create("reward_model_v1", {"model": str(path)}), TEXTS, PROMPTS)["reward"])
        assert reward[LABELS == 1].min() > reward[LABELS == 0].max(), (labels, reward)


def test_deterministic_and_independent_of_batching(tiny_reward_models):
    path = tiny_reward_models[1]
    a = run(create("reward_model_v1", {"model": str(path), "batch_size": 16}), TEXTS, PROMPTS)["reward"]
    b = run(create("reward_model_v1", {"model": str(path), "batch_size": 16}), TEXTS, PROMPTS)["reward"]
    assert a == b
    one = create("reward_model_v1", {"model": str(path), "batch_size": 1})
    singles = [run(one, [t], [p])["reward"][0] for t, p in zip(TEXTS, PROMPTS)]
    np.testing.assert_allclose(a, singles, rtol=1e-5)
    rev = run(one, TEXTS[::-1], PROMPTS[::-1])["reward"]
    np.testing.assert_allclose(rev[::-1], singles, rtol=1e-5)


def test_threshold_semantics(tiny_reward_models):
    path = tiny_reward_models[2]
    plain = run(create("reward_model_v1", {"model": str(path)}), TEXTS, PROMPTS)
    assert plain["correct"] == [None] * len(TEXTS)
    reward = np.array(plain["reward"])
    cut = float(np.median(reward))
    judged = run(create("reward_model_v1", {"model": str(path), "threshold": str(cut)}), TEXTS, PROMPTS)
    assert judged["reward"] == plain["reward"]
    assert judged["correct"] == [bool(r >= cut) for r in reward]
    assert any(judged["correct"]) and not all(judged["correct"])
    exact = run(create("reward_model_v1", {"model": str(path), "threshold": reward[0]}), TEXTS[:1], PROMPTS[:1])
    assert exact["correct"] == [True]  # reward >= threshold: equality passes


def test_schema_shape_and_contract(tiny_reward_models):
    scorer = create("reward_model_v1", {"model": str(tiny_reward_models[1]), "threshold": "0.5"})
    assert scorer.pass_column == "correct"
    assert scorer.inputs == ("text", "prompt")
    assert scorer.output_schema() == pa.schema([pa.field("reward", pa.float64()), pa.field("correct", pa.bool_())])
    out = scorer.score(batch(TEXTS[:3], PROMPTS[:3]))
    assert out.num_rows == 3 and out.column_names == ["reward", "correct"]
    assert out.schema.field("reward").type == pa.float64() and out.schema.field("correct").type == pa.bool_()
    assert scorer.score(batch([])).num_rows == 0
    no_prompt = pa.table({"sample_id": ["a"], "text": [TEXTS[0]]})  # a batch without a prompt column
    assert scorer.score(no_prompt).column("reward")[0].as_py() == pytest.approx(run(scorer, TEXTS[:1])["reward"][0])
    shipped = pickle.loads(pickle.dumps(scorer))
    assert shipped._rt is None and shipped.config == scorer.config


def test_errors(tmp_path):
    with pytest.raises(UsageError, match="reward_model_v1 needs a model"):
        create("reward_model_v1")
    with pytest.raises(UsageError, match="no model at .*missing: expected a transformers checkpoint"):
        create("reward_model_v1", {"model": str(tmp_path / "missing")})
    with pytest.raises(UsageError, match="option threshold='high'"):
        create("reward_model_v1", {"model": str(tmp_path), "threshold": "high"})
    from tests.scorers import tiny_models

    three = tiny_models.make_tiny_classifier(tmp_path / "three", num_labels=3, steps=0)
    with pytest.raises(UsageError, match="has 3 labels; expected 1 .* or 2"):
        create("reward_model_v1", {"model": str(three)}).setup()
