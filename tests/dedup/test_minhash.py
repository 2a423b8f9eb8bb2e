"""MinHash LSH: signatures against a plain-Python reference of the documented definition, Jaccard
estimates, planted near-duplicates in real documents (recall and precision), duplicate_of semantics."""
from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from curator.dedup import MinHashConfig, band_keys, duplicate_of, jaccard, signatures
from curator.dedup import minhash as mh
from curator.errors import UsageError
from curator.stats.tokenize import get_tokenizer
from tests.conftest import shared_file

# -- the reference: the module docstring's definitions with Python ints -------------------------

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
WORD_SEED = 0x243F6A8885A308D3


def ref_mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def ref_word_hash(word: str) -> int:
    b = word.encode("utf-8")
    s = (WORD_SEED + len(b) * GOLDEN) & MASK
    for k in range(0, len(b), 8):
        s = ref_mix64(s ^ int.from_bytes(b[k : k + 8], "little"))
    return s


def ref_words(text: str | None, tokenizer: str) -> list[str]:
    if tokenizer == "whitespace":
        return (text or "").split()
    return get_tokenizer("word_v1").tokens(text or "")


def ref_shingles(words: list[str], n: int) -> list[tuple[str, ...]]:
    if len(words) >= n:
        return [tuple(words[j : j + n]) for j in range(len(words) - n + 1)]
    return [tuple(words)] if words else []


def ref_signature(text: str | None, cfg: MinHashConfig) -> list[int]:
    t = {w: ref_word_hash(w) for w in ref_words(text, cfg.tokenizer)}
    weights = [ref_mix64((mh.SHINGLE_SEED + (k + 1) * GOLDEN) & MASK) | 1 for k in range(cfg.ngram)]
    xs = {ref_mix64((len(s) * GOLDEN + sum(t[w] * c for w, c in zip(s, weights))) & MASK)
          for s in ref_shingles(ref_words(text, cfg.tokenizer), cfg.ngram)}
    s0 = mh.PERM_SEED ^ cfg.seed
    r = [ref_mix64((s0 + (k + 1) * GOLDEN) & MASK) for k in range(2 * cfg.num_perm)]
    perms = [(r[2 * i] | 1, r[2 * i + 1]) for i in range(cfg.num_perm)]
    return [min((a * x + b) & MASK for x in xs) if xs else MASK for a, b in perms]


def ref_band_keys(sig: list[int], cfg: MinHashConfig) -> list[int]:
    keys = []
    for q in range(cfg.bands):
        s = (mh.BAND_SEED + (q + 1) * GOLDEN) & MASK
        for v in sig[q * cfg.rows : (q + 1) * cfg.rows]:
            s = ref_mix64(s ^ v)
        keys.append(s)
    return keys


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(ref_shingles(a.split(), n)), set(ref_shingles(b.split(), n))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


TEXTS = [
    "",
    None,
    "   \n\t ",
    "one",
    "two words",
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog!",
    "Don't stop: 3.5 café! ÇA VA très bien, merci beaucoup — naïve résumé.",
    "averyveryverylongwordthatexceedseightbytes and x superlongtokenwithmorethan16bytes ok fine then go",
    "a a a a a a a a a a a a",  # one distinct shingle, repeated
    # Many words of 9..70 bytes: vectorised 8-byte rounds, then the Python-int finish.
    " ".join("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ=+/-_#@!"[:k] for k in
             (9, 16, 17, 24, 33, 70, 8, 40, 41, 65)),
    "Ünïcödé\u00a0words\u2003split by\u3000unicode spaces too and more words here",
]


@pytest.mark.parametrize("tokenizer", mh.TOKENIZERS)
@pytest.mark.parametrize("ngram", [1, 3, 5])
def test_signatures_equal_plain_python(tokenizer: str, ngram: int) -> None:
    cfg = MinHashConfig(ngram=ngram, num_perm=12, bands=3, rows=4, seed=7, tokenizer=tokenizer)
    got = signatures(pa.array(TEXTS), cfg)
    assert got.dtype == np.uint64 and got.shape == (len(TEXTS), 12)
    assert got.tolist() == [ref_signature(t, cfg) for t in TEXTS]
    assert band_keys(got, cfg).tolist() == [ref_band_keys(s, cfg) for s in got.tolist()]


def test_blocks_and_slices_cut_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny blocks and slices: documents are split across MinHash blocks, empty ones sit between.
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.choice([0, 0, 1, 3, 7, 40, 200])))
             for _ in range(60)]
    cfg = MinHashConfig(num_perm=16, bands=4, rows=4)
    whole = signatures(pa.array(texts), cfg)
    assert whole.tolist() == [ref_signature(t, cfg) for t in texts]
    monkeypatch.setattr(mh, "_BLOCK_SHINGLES", 16)
    monkeypatch.setattr(mh, "_BLOCK_PERMS", 3)
    monkeypatch.setattr(mh, "_SLICE_BYTES", 300)
    assert np.array_equal(signatures(pa.chunked_array([texts[:25], texts[25:]]), cfg), whole)


def test_identical_texts_identical_signatures_and_empty_all_max() -> None:
    doc = "It was the best of times, it was the worst of times, it was the age of wisdom"
    sig = signatures(pa.array([doc, "other text entirely, nothing shared at all here", doc, "", None]))
    assert np.array_equal(sig[0], sig[2])
    assert not np.array_equal(sig[0], sig[1])
    assert (sig[3] == mh.EMPTY).all() and (sig[4] == mh.EMPTY).all()
    # A document's signature does not depend on the batch around it.
    assert np.array_equal(signatures(pa.array([doc]))[0], sig[0])
    assert signatures(pa.array([], pa.string())).shape == (0, 112)
    # Empty documents duplicate each other only.
    dup = duplicate_of(band_keys(sig))
    assert dup.tolist() == [-1, -1, 0, -1, 3]


def test_jaccard_estimates_track_exact_jaccard() -> None:
    rng = random.Random(11)
    vocab = [f"t{i}" for i in range(5000)]
    base = [rng.choice(vocab) for _ in range(400)]
    pairs = []
    for keep in np.linspace(0.2, 1.0, 40):
        other = [w if rng.random() < keep else rng.choice(vocab) for w in base]
        pairs.append((" ".join(base), " ".join(other)))
    cfg = MinHashConfig(num_perm=256, bands=32, rows=8)
    sig = signatures(pa.array([t for p in pairs for t in p]), cfg)
    est = jaccard(sig[0::2], sig[1::2])
    exact = np.array([exact_jaccard(a, b) for a, b in pairs])
    err = est - exact
    # The estimate is a mean of 256 indicators: standard deviation sqrt(J(1-J)/256) <= 0.031.
    assert np.abs(err).max() < 0.12
    assert abs(err.mean()) < 0.02
    assert np.sqrt((err ** 2).mean()) < 0.045
    assert jaccard(sig[0], sig[0]) == 1.0


def _documents() -> list[str]:
    docs = []
    with open(shared_file("gsm8k_test.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.append(f"{row['question']}\n{row['answer']}")
    text = shared_file("wikitext2_valid.txt").read_text(encoding="utf-8")
    docs += [p.strip() for p in text.split("\n") if len(p.split()) > 40 and not p.startswith(" =")]
    return docs


def _near_copy(doc: str, rng: random.Random) -> str | None:
    """A copy with a few words changed, deleted or appended, at exact shingle Jaccard 0.8..0.95."""
    words = doc.split()
    for _ in range(20):
        w = list(words)
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(("replace", "delete", "append"))
            i = rng.randrange(len(w))
            if op == "replace":
                w[i] = rng.choice(words) + "s"
            elif op == "delete":
                del w[i]
            else:
                w += rng.choice(words).split()
        copy = " ".join(w)
        if 0.8 <= exact_jaccard(doc, copy) <= 0.95:
            return copy
    return None


def test_planted_near_duplicates_recall_and_precision() -> None:
    rng = random.Random(5)
    docs = _documents()
    originals = [d for d in docs if 60 <= len(d.split()) <= 400]
    rng.shuffle(originals)
    base = originals[:1500]
    planted = {}  # index of the copy -> index of its original
    texts = list(base)
    for i in rng.sample(range(len(base)), 300):
        copy = _near_copy(base[i], rng)
        if copy is not None:
            planted[len(texts)] = i
            texts.append(copy)
    assert len(planted) > 250
    cfg = MinHashConfig()
    dup = duplicate_of(band_keys(signatures(pa.array(texts), cfg), cfg))
    found = sum(dup[c] == o for c, o in planted.items())
    assert found / len(planted) >= 0.93, f"recall {found}/{len(planted)}"
    # Precision: every flagged document is a planted copy of its representative or a real near
    # duplicate (base documents can repeat each other, e.g. GSM8K problems told twice).
    for i in np.flatnonzero(dup >= 0).tolist():
        if planted.get(i) != dup[i]:
            assert exact_jaccard(texts[i], texts[dup[i]]) >= 0.5, (texts[i], texts[dup[i]])


def _keys(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, np.uint64)


def test_duplicate_of_semantics() -> None:
    # Band keys are arbitrary 64-bit values; rows match when a column holds the same value.
    new = _keys([[1, 2], [3, 4], [1, 5], [6, 7], [8, 5], [9, 10], [11, 10], [12, 13]])
    # 0~2 (band 0), 2~4 (band 1): a chain; 5~6; 1, 3 and 7 alone.
    assert duplicate_of(new).tolist() == [-1, -1, 0, -1, 0, -1, 5, -1]
    # Equal values in different bands do not match.
    assert duplicate_of(_keys([[1, 2], [2, 1]])).tolist() == [-1, -1]
    old = _keys([[50, 51], [60, 7], [70, 71], [80, 13]])
    # Old row 1 shares band 1 with new row 3; old row 3 with new row 7: they take old rows,
    # written -(2 + j), even though they are the first new rows of their clusters.
    assert duplicate_of(new, old).tolist() == [-1, -1, 0, -3, 0, -1, 5, -5]
    # A cluster joined through a new row to two old rows takes the smaller old row, and every new row
    # of it (including the one before the link) points at it.
    old2 = _keys([[100, 2], [1, 200]])
    assert duplicate_of(new, old2).tolist() == [-2, -1, -2, -1, -2, -1, 5, -1]
    # No new rows, no old rows.
    assert duplicate_of(np.zeros((0, 2), np.uint64)).tolist() == []
    assert duplicate_of(new, np.zeros((0, 2), np.uint64)).tolist() == duplicate_of(new).tolist()


def test_duplicate_of_long_chain_and_star() -> None:
    # A path 0-1-2-...-n built in shuffled order, plus a star: one component each.
    n = 2000
    rng = np.random.default_rng(0)
    perm = rng.permutation(n)
    keys = np.empty((n, 2), np.uint64)
    # Row perm[k] and perm[k+1] share band (k % 2): column 0 holds k // 2 * 2, column 1 (k + 1) // 2.
    for k in range(n):
        keys[perm[k], 0] = 10_000 + (k // 2)
        keys[perm[k], 1] = 20_000 + ((k + 1) // 2)
    out = duplicate_of(keys)
    root = int(perm.min())  # every row's representative is the smallest row, 0
    assert root == 0 and out[0] == -1 and (out[1:] == 0).all()


def test_band_keys_and_validation() -> None:
    cfg = MinHashConfig(num_perm=8, bands=2, rows=4)
    sig = np.array([[1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3, 4, 9, 9, 9, 9]], np.uint64)
    keys = band_keys(sig, cfg)
    assert keys.shape == (2, 2) and keys.dtype == np.uint64
    assert keys[0, 0] == keys[1, 0] and keys[0, 1] != keys[1, 1]
    assert keys[0, 0] != keys[0, 1]  # same values, different band
    with pytest.raises(UsageError, match="bands \\* rows must equal num_perm"):
        MinHashConfig(num_perm=100)
    with pytest.raises(UsageError, match="valid choices: whitespace, word_v1"):
        MinHashConfig(tokenizer="spacy")
    with pytest.raises(UsageError, match="ngram must be a positive integer"):
        MinHashConfig(ngram=0)
    with pytest.raises(UsageError, match="must have 8 columns"):
        band_keys(sig[:, :6], cfg)
    with pytest.raises(UsageError, match="2-d uint64"):
        duplicate_of(keys.astype(np.int64))
    with pytest.raises(UsageError, match="as many bands"):
        duplicate_of(keys, np.zeros((1, 3), np.uint64))
    assert MinHashConfig().candidate_probability(0.8) == pytest.approx(1 - (1 - 0.8 ** 8) ** 14)
