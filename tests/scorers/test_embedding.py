"""embedding_v1 with the real bundled all-MiniLM-L6-v2 (offline), and a tiny sentence-transformers folder."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest


from curator import models  # noqa: E402
from curator.errors import UsageError  # noqa: E402
from curator.scorers import create  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def embed(scorer, texts: list) -> np.ndarray:
    b = pa.table({"sample_id": [str(i) for i in range(len(texts))], "text": pa.array(texts, type=pa.string())})
    out = scorer.check_output(b, scorer.score(b))
    col = out.column("embedding").combine_chunks()
    return col.values.to_numpy(zero_copy_only=False).reshape(len(texts), col.type.list_size)


@pytest.fixture(scope="module")
def minilm():
    return create("embedding_v1", {"batch_size": 8})


def test_schema_is_fixed_size_384(minilm):
    assert minilm.output_schema() == pa.schema([pa.field("embedding", pa.list_(pa.float32(), 384))])
    b = pa.table({"sample_id": ["a"], "text": ["hello"]})
    out = minilm.score(b)
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    assert out.column_names == ["embedding"] and out.num_rows == 1


def test_identical_texts_identical_vectors(minilm):
    texts = ["The cat sat on the mat.", "A completely different sentence about taxes.", "The cat sat on the mat."]
    e = embed(minilm, texts)
    np.testing.assert_array_equal(e[0], e[2])
    np.testing.assert_allclose(embed(minilm, texts[:1])[0], e[0], atol=1e-6)  # batch of one: same vector
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_paraphrases_closer_than_unrelated(minilm):
    pairs = [
        ("How do I bake a loaf of bread?", "What is the recipe for making bread at home?"),
        ("The stock market fell sharply today.", "Share prices dropped a lot on the exchange today."),
        ("My dog loves to play fetch in the park.", "The puppy enjoys chasing balls at the park."),
        ("Tom has 3 apples and buys 5 more.", "Tom had three apples and then bought five more apples."),
    ]
    e = embed(minilm, [t for pair in pairs for t in pair])
    sim = e @ e.T  # unit vectors: cosine similarity
    for i in range(len(pairs)):
        a, b = 2 * i, 2 * i + 1
        others = [sim[a, 2 * j + 1] for j in range(len(pairs)) if j != i]
        assert sim[a, b] > max(others) + 0.2, (pairs[i], sim[a, b], others)


def test_long_texts_truncate_at_max_seq_length_not_at_128(minilm):
    """The bundled tokenizer.json truncates and pads at 128; sentence-transformers must override both."""
    words = [f"w{i % 50} river" for i in range(600)]  # plenty of word pieces
    tok = models.load_sentence_transformer(device="cpu").tokenizer

    def n_pieces(k: int) -> int:
        return len(tok(" ".join(words[:k]), add_special_tokens=False, truncation=False)["input_ids"])

    k150 = next(k for k in range(1, 600) if n_pieces(k) > 150)   # between 128 and 254 word pieces
    k300 = next(k for k in range(1, 600) if n_pieces(k) > 300)   # past 254 (MiniLM: 256 with [CLS], [SEP])
    e = embed(minilm, [" ".join(words[:k150]), " ".join(words[:k150 - 5]), " ".join(words[:k300]),
                       " ".join(words)])
    assert not np.allclose(e[0], e[1], atol=1e-4)   # words after piece 128 still count
    np.testing.assert_allclose(e[2], e[3], atol=1e-6)  # what lies past max_seq_length does not
    short = create("embedding_v1", {"max_seq_length": 64})
    f = embed(short, [" ".join(words[:k150]), " ".join(words)])
    np.testing.assert_allclose(f[0], f[1], atol=1e-6)


def test_null_and_empty_texts(minilm):
    e = embed(minilm, [None, "", "something"])
    np.testing.assert_array_equal(e[0], e[1])
    assert embed(minilm, []).shape == (0, 384)


def test_schema_needs_no_torch():
    """output_schema reads the dimension from config files: planning a run imports no torch."""
    code = ("import sys; from curator.scorers import create; s = create('embedding_v1'); "
            "print(s.output_schema().field('embedding').type.list_size, 'torch' in sys.modules, "
            "'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["384", "False", "False"]


def test_local_sentence_transformer_folder(tiny_sentence_transformer):
    assert models.sentence_embedding_dim(tiny_sentence_transformer) == 24  # Dense(32 -> 24)
    scorer = create("embedding_v1", {"model": str(tiny_sentence_transformer), "normalize": "false"})
    assert scorer.output_schema().field("embedding").type == pa.list_(pa.float32(), 24)
    e = embed(scorer, ["the mill", "the river", "the mill"])
    assert e.shape == (3, 24)
    np.testing.assert_array_equal(e[0], e[2])
    assert not np.allclose(np.linalg.norm(e, axis=1), 1.0)  # no normalisation asked, none in the module stack
    unit = embed(create("embedding_v1", {"model": str(tiny_sentence_transformer)}), ["the mill"])
    np.testing.assert_allclose(unit[0], e[0] / np.linalg.norm(e[0]), rtol=1e-5)


def test_dimension_from_minilm_files():
    assert models.sentence_embedding_dim(models.bundled_minilm()) == 384


def test_picklable_and_errors(tmp_path, minilm):
    minilm.setup()
    clone = pickle.loads(pickle.dumps(minilm))
    assert clone._model is None and clone.config == minilm.config
    with pytest.raises(UsageError, match="no model at .*nowhere: expected a sentence-transformers model"):
        create("embedding_v1", {"model": str(tmp_path / "nowhere")})
    with pytest.raises(UsageError, match="batch_size=0"):
        create("embedding_v1", {"batch_size": 0})
