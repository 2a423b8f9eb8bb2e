"""dsir_v1 against a plain-Python DSIR (word_v1 hashes recomputed from their definition) on small inputs."""
from __future__ import annotations

import math
import pickle
import re
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curator.errors import UsageError
from curator.scorers import create, scorer_class
from curator.scorers.dsir import Dsir

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
WORD_SEED = 0x243F6A8885A308D3
NGRAM_K = 0xD6E8FEB86659FD93


class Context:
    """The ScoreContext protocol over an in-memory samples table."""

    def __init__(self, samples: pa.Table, target_generations: list[int] | None) -> None:
        self._samples = samples
        self._targets = target_generations

    def samples(self, *, generations: list[int] | None = None, origins: list[str] | None = None,
                columns: list[str] | None = None) -> pa.Table:
        t = self._samples
        if generations is not None:
            t = t.filter(pc.is_in(t["generation"], pa.array(generations, pa.int32())))
        if origins is not None:
            t = t.filter(pc.is_in(t["origin"], pa.array(origins, pa.string())))
        return t.select(columns) if columns is not None else t

    @property
    def target_generations(self) -> list[int] | None:
        return self._targets


def mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def token_hash(token: str) -> int:
    b = token.encode("utf-8")
    s = (WORD_SEED + len(b) * GOLDEN) & M64
    for i in range(0, len(b), 8):
        s = mix64(s ^ int.from_bytes(b[i:i + 8].ljust(8, b"\0"), "little"))
    return s


def ngram_bucket(hashes: list[int], buckets: int) -> int:
    s = hashes[0]
    for h in hashes[1:]:
        s = (s * NGRAM_K + h) & M64
    return mix64(s ^ ((len(hashes) * GOLDEN) & M64)) % buckets


def doc_features(text: str | None, buckets: int) -> list[int]:
    hashes = [token_hash(t) for t in re.findall(r"[^\W_]+", (text or "").lower())]
    return ([ngram_bucket([h], buckets) for h in hashes]
            + [ngram_bucket(hashes[i:i + 2], buckets) for i in range(len(hashes) - 1)])


def ref_weights(reference: list[str], pool: list[str], docs: list[str | None], buckets: int) -> list[tuple[float, int]]:
    def log_probs(texts):
        c = Counter(f for t in texts for f in doc_features(t, buckets))
        total = sum(c.values())
        return [math.log((c[b] + 1) / (total + buckets)) for b in range(buckets)]

    lr, lp = log_probs(reference), log_probs(pool)
    out = []
    for d in docs:
        feats = doc_features(d, buckets)
        out.append((sum(lr[f] - lp[f] for f in feats), len(feats)))
    return out


HUMAN = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.",
    "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs.",
    "Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today twice as many.",
    "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write?",
    "Mark has a garden with flowers. He planted plants of three different colors in it. Ten are yellow.",
]
SYNTHETIC = [
    "Let's think step by step. The answer is clear. The answer is 48.",
    "Let's think step by step. Therefore, the final answer is 12. The answer is clear.",
    "The answer is clear. Let's think step by step. The answer is 100.",
    "Therefore, the final answer is 120. Let's think step by step.",
    "Let's think step by step. The answer is 3. Therefore, the final answer is 3.",
]


def samples(extra: list[tuple[int, str, str | None]] = ()) -> pa.Table:
    rows = [(0, "human", t) for t in HUMAN] + [(1, "synthetic", t) for t in SYNTHETIC] + list(extra)
    return pa.table({
        "sample_id": [f"s{i}" for i in range(len(rows))],
        "generation": pa.array([g for g, _, _ in rows], pa.int32()),
        "origin": [o for _, o, _ in rows],
        "text": pa.array([t for _, _, t in rows], pa.string()),
    })


def batch(texts: list[str | None]) -> pa.Table:
    return pa.table({"sample_id": [f"b{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


@pytest.mark.parametrize("buckets", [10_000, 37, 1])
def test_weights_match_plain_python(buckets: int) -> None:
    ctx = Context(samples([(2, "synthetic", "Ünïcode Café: 3.5 cafés!"), (0, "synthetic", "not the reference")]),
                  target_generations=[1, 2])
    scorer = Dsir(buckets=buckets)
    scorer.fit(ctx)
    docs = [*HUMAN[:2], *SYNTHETIC[:2], "", None, "one", "Ünïcode Café: 3.5 cafés!", "words never seen before"]
    out = scorer.check_output(batch(docs), scorer.score(batch(docs)))
    want = ref_weights(HUMAN, [*SYNTHETIC, "Ünïcode Café: 3.5 cafés!"], docs, buckets)
    assert out.column("n_features").to_pylist() == [n for _, n in want]
    for got, (w, _) in zip(out.column("log_weight").to_pylist(), want):
        assert got == pytest.approx(w, rel=1e-9, abs=1e-9)
    assert out.schema.field("log_weight").type == pa.float64() and out.schema.field("n_features").type == pa.int64()
    assert scorer.fit_summary["reference_documents"] == len(HUMAN)
    assert scorer.fit_summary["pool_documents"] == len(SYNTHETIC) + 1


def test_reference_like_documents_weigh_more() -> None:
    scorer = Dsir()
    scorer.fit(Context(samples(), target_generations=[1]))
    human_like = ["Tom sold 20 apples to his friends in June and then he sold half as many in July.",
                  "Anna is reading a 300-page book. She read 30 pages yesterday."]
    pool_like = ["Let's think step by step. The answer is clear. The answer is 7.",
                 "Therefore, the final answer is 9. Let's think step by step."]
    w = scorer.score(batch(human_like + pool_like)).column("log_weight").to_pylist()
    assert min(w[:2]) > 0 > max(w[2:])


def test_pool_is_every_sample_without_target_generations() -> None:
    ctx = Context(samples(), target_generations=None)
    scorer = Dsir(buckets=50)
    scorer.fit(ctx)
    docs = ["the answer is clear", "she sold clips"]
    want = ref_weights(HUMAN, HUMAN + SYNTHETIC, docs, 50)
    got = scorer.score(batch(docs)).column("log_weight").to_pylist()
    assert got == pytest.approx([w for w, _ in want], rel=1e-9)


def test_picklable_after_fit() -> None:
    scorer = create("dsir_v1", {"buckets": "500"})
    assert isinstance(scorer, Dsir) and scorer_class("dsir_v1") is Dsir
    scorer.fit(Context(samples(), target_generations=[1]))
    clone = pickle.loads(pickle.dumps(scorer))
    docs = batch(HUMAN[:3] + SYNTHETIC[:3])
    assert clone.score(docs).equals(scorer.score(docs))
    assert clone.config_hash == scorer.config_hash


def test_errors() -> None:
    with pytest.raises(UsageError, match="not fitted"):
        Dsir().score(batch(["x"]))
    with pytest.raises(UsageError, match="no reference samples in generation 3 with origin 'human'"):
        Dsir(reference_generation=3).fit(Context(samples(), target_generations=[1]))
    with pytest.raises(UsageError, match="bad options"):
        Dsir(buckets=0)
    with pytest.raises(UsageError, match="unknown option"):
        create("dsir_v1", {"bucket": "5"})
