"""Tokenizers: word_v1 against a plain-Python reference (re + the documented hash), hf:PATH offline."""
from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curator.errors import InputError, UsageError
from curator.stats import tokenize as tk
from curator.stats.tokenize import HFTokenizer, get_tokenizer, word_char_ranges

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# -- the reference: the module docstring's definitions, written with re and Python ints ---------

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
WORD_SEED = 0x243F6A8885A308D3
HF_SEED = 0x13198A2E03707344


def ref_mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def ref_word_hash(token: str) -> int:
    b = token.encode("utf-8")
    s = (WORD_SEED + len(b) * GOLDEN) & MASK
    for k in range(0, len(b), 8):
        s = ref_mix64(s ^ int.from_bytes(b[k : k + 8], "little"))
    return s


def ref_hf_hash(token_id: int) -> int:
    return ref_mix64(token_id ^ HF_SEED)


WORD_RE = re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in word_char_ranges()) + "]+")


def ref_tokens(text: str | None) -> list[str]:
    return WORD_RE.findall((text or "").lower())


def shared_text(name: str) -> str:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data folder beside the repository)")
    return path.read_text(encoding="utf-8")


def real_docs(limit: int = 400) -> list[str]:
    """Shakespeare speeches (blank-line separated) and WikiText-2 lines (with non-ASCII text)."""
    speeches = [p for p in re.split(r"\n\s*\n", shared_text("tinyshakespeare.txt")) if p.strip()]
    wiki = [line for line in shared_text("wikitext2_valid.txt").split("\n") if line.strip()]
    non_ascii = [line for line in wiki if not line.isascii()]
    return speeches[:limit] + wiki[:limit] + non_ascii[:limit]


TRICKY = [
    "Don't stop: 3.5 café!",
    "cafe\u0301 au lait",  # combining acute (Mn) stays inside the token
    "ΣΑΣ ΟΔΟΣ σας",  # final sigma
    "İstanbul ISTANBUL",
    "Straße STRASSE ß",
    "日本語テキスト、中文。",
    "٣٤٥ ١٢ ۷",  # Arabic-Indic digits (Nd)
    "x² H₂O ½",  # No
    "snake_case kebab-case dot.case",
    "emoji 😀 here 🇺🇸 flags",
    "tab\tnew\nline\r\nend",
    "\x00null\x00byte\x7f",
    "hello\u00a0world\u2003em",
    "Ⅳ ⅻ",  # Nl, lowercased
    "𝐀𝐁𝐂 𝒶𝒷",  # 4-byte letters
    "ABC123def 123abc",
    "a" * 100,
    "ÄÖÜ" * 20,
    "ünïcödé" * 3 + "x" * 9,
    "",
    "   ...   ",
    "end-of-doc-with-letters",
    "start",
]


def encode(texts, tokenizer=None):
    return (tokenizer or get_tokenizer()).encode(pa.array(texts, pa.large_string()))


def per_doc(batch) -> list[list[int]]:
    off = batch.doc_offsets
    return [batch.hashes[off[i] : off[i + 1]].tolist() for i in range(len(off) - 1)]


def assert_matches_reference(texts: list[str | None], tokenizer=None) -> None:
    batch = encode(texts, tokenizer)
    assert batch.hashes.dtype == np.uint64
    assert batch.doc_offsets.dtype == np.int64
    assert len(batch.doc_offsets) == len(texts) + 1
    expected = [ref_tokens(t) for t in texts]
    assert per_doc(batch) == [[ref_word_hash(w) for w in doc] for doc in expected]
    assert batch.strings(np.arange(len(batch.hashes))) == [w for doc in expected for w in doc]


# -- word_v1 --------------------------------------------------------------------------------------


def test_brief_example():
    assert get_tokenizer("word_v1").tokens("Don't stop: 3.5 café!") == ["don", "t", "stop", "3", "5", "café"]


def test_tricky_strings_match_reference():
    assert_matches_reference(TRICKY)


def test_each_tricky_string_alone_and_none():
    for text in TRICKY + [None]:
        assert_matches_reference([text])


def test_tokens_never_cross_documents():
    batch = encode(["abc", "def", "", "gh", "ij."])
    assert batch.doc_offsets.tolist() == [0, 1, 2, 2, 3, 4]
    assert batch.strings(np.arange(4)) == ["abc", "def", "gh", "ij"]


@pytest.mark.parametrize("chunk", [None, 3])
def test_many_one_letter_documents(monkeypatch, chunk):
    # Every byte its own token: more tokens than half the bytes.
    if chunk:
        monkeypatch.setattr(tk, "_BYTE_CHUNK", chunk)
    assert_matches_reference(["a"] * 50 + ["ab", "c", "", "d", "é", "f"])


def test_golden_hashes_never_change():
    # Stored statistics depend on these exact values: a change needs a new tokenizer version.
    batch = encode(["the café abcdefgh abcdefghijklmnopq"])
    assert batch.hashes.tolist() == [719510186499648756, 17454955971044698457, 10612728572551219786,
                                     13481076708656746837]


def test_reference_hash_matches_golden():
    assert ref_word_hash("the") == 719510186499648756
    assert ref_hf_hash(42) == 15083536770613595617


def test_real_text_matches_reference():
    assert_matches_reference(real_docs())


def test_small_chunks_match_reference(monkeypatch):
    # Chunk edges inside tokens, documents and multi-byte characters.
    monkeypatch.setattr(tk, "_BYTE_CHUNK", 7)
    monkeypatch.setattr(tk, "_TOKEN_CHUNK", 3)
    assert_matches_reference(TRICKY + ["word " * 50, "ÿ" * 33])


def test_small_chunks_real_text(monkeypatch):
    monkeypatch.setattr(tk, "_BYTE_CHUNK", 1000)
    monkeypatch.setattr(tk, "_TOKEN_CHUNK", 97)
    assert_matches_reference(real_docs(100))


def test_input_types_and_slices():
    texts = ["Alpha beta", None, "GAMMA δέλτα"]
    expected = per_doc(encode(texts))
    tok = get_tokenizer()
    assert per_doc(tok.encode(pa.array(texts, pa.string()))) == expected
    assert per_doc(tok.encode(pa.array(texts, pa.string_view()))) == expected
    assert per_doc(tok.encode(pa.chunked_array([pa.array(texts[:1]), pa.array(texts[1:])]))) == expected
    sliced = pa.array(["zzz"] + texts + ["yyy"]).slice(1, 3)
    assert per_doc(tok.encode(sliced)) == expected
    assert per_doc(tok.encode(pa.chunked_array([], pa.string()))) == []


def test_non_string_input_is_rejected():
    with pytest.raises(InputError, match="must be strings"):
        get_tokenizer().encode(pa.array([1, 2]))
    with pytest.raises(UsageError, match="pyarrow"):
        get_tokenizer().encode(["a list"])


def test_frozen_unicode_table():
    table = np.zeros(0x110000, bool)
    for a, b in word_char_ranges():
        table[a : b + 1] = True
    assert table[ord("a")] and table[ord("Z")] and table[ord("7")] and table[0x301] and table[0x4E2D]
    assert not table[ord("_")] and not table[ord("'")] and not table[0x1F600] and not table[0xA0]
    if unicodedata.unidata_version == "14.0.0":
        current = np.array([unicodedata.category(chr(c))[0] in "LMN" for c in range(0x110000)])
        assert np.array_equal(table, current)


# -- get_tokenizer ------------------------------------------------------------------------------


def test_unknown_spec_lists_choices():
    with pytest.raises(UsageError, match=r"unknown tokenizer 'word_v9'.*word_v1.*hf:PATH"):
        get_tokenizer("word_v9")


def test_hf_missing_file(tmp_path):
    with pytest.raises(UsageError, match="no tokenizer.json"):
        get_tokenizer(f"hf:{tmp_path / 'nothing'}")


def test_hf_invalid_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(UsageError, match="cannot load"):
        get_tokenizer(f"hf:{tmp_path}")


# -- hf:PATH, with a tokenizer trained here (nothing is downloaded) ------------------------------

TRAIN_LINES = [
    "the quick brown fox jumps over the lazy dog",
    "a synthetic corpus narrows the distribution of n-grams",
    "model collapse happens when models train on their own outputs",
    "human data keeps the tails of the distribution alive",
    "token level editing keeps most of the human text",
    "the verifier keeps correct answers and prunes wrong ones",
] * 40


def train_hf_tokenizer(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"]
    tok.train_from_iterator(TRAIN_LINES, trainers.BpeTrainer(vocab_size=200, special_tokens=specials))
    # Like many shipped tokenizer.json files: truncation, padding and special tokens switched on.
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tok.enable_truncation(max_length=6)
    tok.enable_padding(length=12, pad_id=3, pad_token="[PAD]")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.json"
    tok.save(str(path))
    return path


def test_hf_tokenizer_offline(tmp_path):
    path = train_hf_tokenizer(tmp_path / "tiny-bpe")
    tok = get_tokenizer(f"hf:{path.parent}")
    assert isinstance(tok, HFTokenizer)
    assert tok.name == f"hf:tiny-bpe@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    assert get_tokenizer(f"hf:{path}").name == tok.name

    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(path))
    raw.no_truncation()
    raw.no_padding()
    texts = [" ".join(TRAIN_LINES[:5]), "", None, "the lazy dog", "zzz qqq"]
    batch = tok.encode(pa.array(texts))
    ids = [raw.encode(t or "", add_special_tokens=False).ids for t in texts]
    assert len(ids[0]) > 12  # truncation (6) and padding (12) are off
    assert per_doc(batch) == [[ref_hf_hash(i) for i in doc] for doc in ids]
    assert batch.strings(np.arange(len(batch.hashes))) == [raw.id_to_token(i) for doc in ids for i in doc]


def test_very_long_tokens_hash_as_the_vectorised_rounds_do(monkeypatch):
    """A few huge tokens finish their hash chain in Python ints (a 1 MB token took 9 s in numpy rounds of
    8 bytes): the hashes are the same as the numpy rounds give."""
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", np.uint8)
    blob = bytes(letters[rng.integers(0, len(letters), 20_003)]).decode()
    texts = pa.array([f"short words {blob} and {blob[:5000]}É more", "plain text", blob[:3001]])
    fast = tk.get_tokenizer("word_v1").encode(texts).hashes.copy()
    monkeypatch.setattr(tk, "_FEW_TOKENS", 0)  # force the numpy rounds all the way
    slow = tk.get_tokenizer("word_v1").encode(texts).hashes
    assert np.array_equal(fast, slow)
