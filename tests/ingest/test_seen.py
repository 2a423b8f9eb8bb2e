"""The ingest's set of seen sample ids, against a plain Python set."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import pyarrow as pa
import pytest

from curator.ingest.ids import id_numbers
from curator.ingest.seen import SeenIds, filter_mask


def _md5(i: int) -> str:
    return hashlib.md5(str(i).encode()).hexdigest()


def _reference(batches: list[list[str]], existing: list[str]) -> list[list[bool]]:
    seen, out = set(existing), []
    for batch in batches:
        mask = []
        for x in batch:
            mask.append(x not in seen)
            seen.add(x)
        out.append(mask)
    return out


def _masks(batches: list[list[str]], existing: list[str]) -> list[list[bool]]:
    ids = SeenIds(pa.array(existing, pa.string()))
    out = []
    for batch in batches:
        mask = ids.fresh(pa.array(batch, pa.string()))
        out.append([True] * len(batch) if mask is None else mask.tolist())
    return out


def test_id_numbers_are_the_md5_digest():
    ids = [_md5(i) for i in range(5)] + ["0123456789abcdef0123456789abcdef"]
    hi, lo = id_numbers(pa.array(ids))
    for s, h, low in zip(ids, hi.tolist(), lo.tolist()):
        assert (h << 64) | low == int(s, 16)
    # A slice of a larger array (non-zero offset) and large_string read the same numbers.
    arr = pa.array(["x" * 32] + ids)
    h2, l2 = id_numbers(arr.slice(1))
    assert h2.tolist() == hi.tolist() and l2.tolist() == lo.tolist()
    h3, l3 = id_numbers(pa.chunked_array([pa.array(ids[:2], pa.large_string()), pa.array(ids[2:], pa.large_string())]))
    assert h3.tolist() == hi.tolist() and l3.tolist() == lo.tolist()


def test_matches_a_python_set_over_many_batches():
    rng = random.Random(7)
    universe = [_md5(i) for i in range(3000)]
    existing = rng.sample(universe, 400)
    batches = [[rng.choice(universe) for _ in range(rng.randint(0, 300))] for _ in range(40)]
    assert _masks(batches, existing) == _reference(batches, existing)


def test_duplicates_inside_a_batch_keep_the_first_and_all_new_is_none():
    a, b, c = _md5(1), _md5(2), _md5(3)
    ids = SeenIds()
    assert ids.fresh(pa.array([a, b, c])) is None  # nothing dropped: the caller need not filter
    assert ids.fresh(pa.array([c, a, _md5(4), _md5(4), b, _md5(5)])).tolist() == [False, False, True, False, False, True]
    assert len(ids) == 5


def test_ids_sharing_their_top_64_bits_stay_distinct():
    top = "f" * 16
    ids = [top + f"{i:016x}" for i in (5, 1, 9, 3)]
    seen = SeenIds(pa.array(ids[:2]))
    mask = seen.fresh(pa.array(ids + [top + f"{7:016x}"]))
    assert mask.tolist() == [False, False, True, True, True]
    assert seen.fresh(pa.array([top + f"{9:016x}", top + f"{8:016x}"])).tolist() == [False, True]


def test_ids_that_are_not_md5_hex_are_numbered_by_their_md5():
    odd = ["sample-1", "sample-2", "Ünïcode", "sample-1", ""]
    seen = SeenIds(pa.array(["sample-2"]))
    assert seen.fresh(pa.array(odd)).tolist() == [True, False, True, False, True]
    assert seen.fresh(pa.array(["sample-1", "sample-3"])).tolist() == [False, True]
    # Uppercase hex is another id than its lowercase form; 32 characters that are not hex too.
    low = _md5(9)
    assert seen.fresh(pa.array([low.upper(), low, "g" * 32, low.upper()])).tolist() == [True, True, True, False]
    h, lo = id_numbers(pa.array([md := hashlib.md5(b"sample-1").hexdigest(), "sample-1", None, ""]))
    assert h[0] == h[1] and lo[0] == lo[1] and int(md, 16) == (int(h[0]) << 64) | int(lo[0])
    assert h[2] == h[3] and lo[2] == lo[3]  # a null is numbered as the empty string


def test_a_batch_mixing_md5_and_other_ids_numbers_each_as_alone():
    # The same md5 id must get the same number whether or not its batch holds other kinds of ids.
    ids = [_md5(i) for i in range(4)]
    seen = SeenIds(pa.array(ids[:2]))
    assert seen.fresh(pa.array([ids[0], "custom-id", ids[2], ids[1], "x"])).tolist() == [False, True, True, False, True]
    alone_h, alone_l = id_numbers(pa.array(ids))
    mixed_h, mixed_l = id_numbers(pa.array(["custom", *ids]))
    assert mixed_h[1:].tolist() == alone_h.tolist() and mixed_l[1:].tolist() == alone_l.tolist()


def test_filter_mask_copies_only_when_rows_drop():
    table = pa.table({"x": [1, 2, 3]})
    assert filter_mask(table, None) is table
    assert filter_mask(table, np.array([True, False, True]))["x"].to_pylist() == [1, 3]


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single(n):
    seen = SeenIds(pa.array([], pa.string()))
    assert len(seen) == 0
    mask = seen.fresh(pa.array([_md5(0)] * n, pa.string()))
    assert mask is None
    assert len(seen) == n


def test_repeated_ids_sharing_top_bits_within_a_batch_keep_their_first():
    # Equal top halves put these in one run of the hi sort; the repeats are not neighbours there.
    top = "a" * 16
    ids = [top + f"{i:016x}" for i in (5, 1, 5, 3, 1, 5)]
    assert SeenIds().fresh(pa.array(ids)).tolist() == [True, True, False, True, False, False]
