"""Content ids: the text hashes from OpenSSL's MD5() equal hashlib's, and both id paths give the same ids."""
from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from curator.ingest import ids
from curator.stats import kernels

TEXTS = ["", "a", "héllo wörld ✓", "x" * 100_000, "line\nbreaks\tand\x00nul", "日本語のテキスト"]


def _hexes(texts):
    return [hashlib.md5(t.encode("utf-8")).hexdigest() for t in texts]


@pytest.fixture
def openssl():
    if ids.openssl_md5() is None:
        pytest.skip(f"no OpenSSL MD5() to call here (kernels: {kernels.status()})")


@pytest.mark.parametrize("kind", ["string", "large_string", "sliced", "chunked"])
def test_md5_hexes_are_hashlib_md5(openssl, kind):
    if kind == "string":
        arr, texts = pa.array(TEXTS, pa.string()), TEXTS
    elif kind == "large_string":
        arr, texts = pa.array(TEXTS, pa.large_string()), TEXTS
    elif kind == "sliced":  # an array with an offset into its buffers
        arr, texts = pa.array(TEXTS, pa.string()).slice(2, 3), TEXTS[2:5]
    else:
        arr, texts = pa.chunked_array([pa.array(TEXTS[:3]), pa.array(TEXTS[3:])]), TEXTS
    got = ids.md5_hexes(arr)
    assert got.type == pa.string() and got.to_pylist() == _hexes(texts)


def test_md5_hexes_keep_nulls_and_decline_non_strings(openssl):
    got = ids.md5_hexes(pa.array(["a", None, "b"]))
    assert got.to_pylist() == [_hexes(["a"])[0], None, _hexes(["b"])[0]]
    assert ids.md5_hexes(pa.array([b"a"], pa.binary())) is None  # not a string: the DuckDB way
    assert ids.md5_hexes(pa.array([], pa.string())).to_pylist() == []


def test_both_id_paths_give_the_same_ids(openssl, monkeypatch):
    batch = pa.table({"external_id": pa.array([None, "ext-1", None, "ext-2", None], pa.string()),
                      "prompt": pa.array(["q1", None, "q1", "q2", None], pa.string()),
                      "text": pa.array(["answer", "answer", "", "ünïcode ✓", "answer"], pa.string())})
    fast = ids.IdHasher().ids(batch, 3)
    monkeypatch.setattr(ids, "_ids_openssl", lambda batch, generation: None)
    slow = ids.IdHasher().ids(batch, 3)
    assert fast.equals(slow)
    assert fast.column("text_hash").to_pylist() == _hexes(batch.column("text").to_pylist())
    # Same text, different prompt or external id: different samples.
    assert fast.column("prompt_id").to_pylist()[1] is None
    assert len(set(fast.column("sample_id").to_pylist())) == 5
    # A batch without any prompt (the usual synthetic file) takes a shortcut for prompt_id.
    bare = batch.set_column(1, "prompt", pa.nulls(5, pa.string()))
    monkeypatch.undo()
    fast = ids.IdHasher().ids(bare, 0)
    monkeypatch.setattr(ids, "_ids_openssl", lambda batch, generation: None)
    assert fast.equals(ids.IdHasher().ids(bare, 0)) and fast.column("prompt_id").null_count == 5
    # Large strings (long documents) give the same ids as strings.
    wide = pa.table({name: col.cast(pa.large_string()) for name, col in zip(batch.column_names, batch.columns)})
    monkeypatch.undo()
    assert ids.IdHasher().ids(wide, 3).equals(ids.IdHasher().ids(batch, 3))


def test_without_kernels_there_is_no_openssl_path(monkeypatch):
    monkeypatch.setattr(kernels, "LIB", None)
    ids.openssl_md5.cache_clear()
    try:
        assert ids.openssl_md5() is None and ids.md5_hexes(pa.array(["a"])) is None and ids._ids_openssl(pa.table({"text": ["a"]}), 0) is None
    finally:
        ids.openssl_md5.cache_clear()
