"""The ToEdit token editor on a tiny GPT-2 trained in the test, against direct torch computations."""
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

from curator import models  # noqa: E402
from curator.errors import UsageError  # noqa: E402
from curator.ingest.ids import IdHasher  # noqa: E402
from curator.ingest.pipeline import ingest  # noqa: E402
from curator.ingest.readers import FieldMap  # noqa: E402
from curator.store import Store  # noqa: E402
from curator.transforms import edit  # noqa: E402
from curator.transforms.token_edit import doc_keys, gumbel_noise  # noqa: E402
from tests.conftest import write_jsonl  # noqa: E402
from tests.scorers.tiny_models import TRAIN_TEXT, make_tiny_gpt2, one_thread  # noqa: E402

LINES = [line for line in TRAIN_TEXT.splitlines() if line.strip()]
LONG = " ".join(LINES)  # ~300 tokens: past the tiny model's 128-position context


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> Path:
    return make_tiny_gpt2(tmp_path_factory.mktemp("prior") / "gpt2", TRAIN_TEXT, steps=60, seed=0)


@pytest.fixture(scope="module")
def lm(prior):
    return models.load_causal_lm(prior, device="cpu"), models.load_tokenizer(prior)


def _rows() -> list[dict]:
    rows = [{"text": line, "id": f"r{i}"} for i, line in enumerate(LINES)]
    rows[0].update(prompt="what does the river do?", reference="it runs past the mill")
    rows[1].update(prompt="what does the miller do?")
    rows.append({"text": LONG, "id": "long"})
    return rows


def _human_store(root: Path) -> Store:
    st = Store(root / "store", create=True)
    path = write_jsonl(root / "human.jsonl", _rows())
    ingest(st, [path], generation=0, origin="human",
           fields=FieldMap(text="text", prompt="prompt", id="id", reference="reference"))
    return st


@pytest.fixture
def store(tmp_path) -> Store:
    return _human_store(tmp_path)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> Store:
    """For tests that write nothing (errors)."""
    return _human_store(tmp_path_factory.mktemp("shared"))


def _gen(st: Store, g: int) -> list[dict]:
    return st.read("samples", filter=f"generation = {g}").to_pylist()


def _by_parent(st: Store, g: int) -> dict[str, dict]:
    return {r["parent_id"]: r for r in _gen(st, g)}


def _edits(st: Store, run_id: str) -> list[dict]:
    return st.read("edits", filter=f"run_id = '{run_id}'").to_pylist()


def _edit_samples(st: Store, run_id: str) -> dict[str, dict]:
    return {r["parent_id"]: r for r in st.read("edit_samples", filter=f"run_id = '{run_id}'").to_pylist()}


def direct_probs(model, ids: list[int]) -> np.ndarray:
    """P(ids[t] | ids[:t]) for t = 1..n-1: one unpadded forward pass over the whole document."""
    x = torch.tensor([ids])
    with torch.no_grad():
        p = torch.softmax(model(x).logits[0].float(), dim=-1)
    return p[:-1].gather(1, x[0, 1:, None]).squeeze(1).numpy()


# ---- what is written ---------------------------------------------------------------------------


def test_threshold_above_one_changes_nothing(store, prior):
    """p = 1.01: nothing eligible. Unchanged documents are still written (the edited generation is the whole
    source corpus), with the parent's text verbatim and ids computed as ingest computes them for `into`."""
    r = edit(store, into=3, model=prior, threshold=1.01)
    parents = {p["sample_id"]: p for p in _gen(store, 0)}
    edited = _gen(store, 3)
    assert (r.documents, r.rows_added, r.eligible, r.changed, r.deleted) == (len(parents), len(parents), 0, 0, 0)
    assert r.tokens > 0
    assert _edits(store, r.run_id) == []
    for e in edited:
        p = parents[e["parent_id"]]
        assert e["text"] == p["text"] and e["text_hash"] == p["text_hash"]
        assert e["sample_id"] != p["sample_id"]
    counts = _edit_samples(store, r.run_id)
    assert all(c["eligible"] == c["changed"] == c["deleted"] == 0 for c in counts.values())
    # The content address of an edited sample is exactly ingest's, in generation `into`.
    import pyarrow as pa

    table = pa.Table.from_pylist(edited).select(["external_id", "prompt", "text"])
    ids = IdHasher().ids(table, 3)
    assert ids["sample_id"].to_pylist() == [e["sample_id"] for e in edited]
    assert ids["prompt_id"].to_pylist() == [e["prompt_id"] for e in edited]


def test_lineage_runs_stats_and_idempotence(store, prior):
    r = edit(store, into=4, model=prior, threshold=0.5, seed=3)
    parents = {p["sample_id"]: p for p in _gen(store, 0)}
    edited = _gen(store, 4)
    assert len(edited) == len(parents) == r.rows_added
    for e in edited:
        p = parents[e["parent_id"]]
        assert e["origin"] == "edited" and e["generation"] == 4
        for col in ("prompt", "reference", "external_id", "metadata", "source_file", "source_row"):
            assert e[col] == p[col], col
        assert e["model"] == str(Path(prior).resolve())
        assert e["ingest_run"] == r.run_id
        dec = json.loads(e["decoding"])
        assert dec["threshold"] == 0.5 and dec["top_k"] == 8 and dec["temperature"] == 1.5 and dec["seed"] == 3
        assert dec["delete_below"] is None and dec["max_length"] == 128 and dec["stride"] == 64
    assert r.changed > 0 and r.eligible >= r.changed
    run = store.runs().to_pylist()[-1]
    assert run["command"] == "edit" and run["run_id"] == r.run_id
    assert run["generations"] == [0, 4]
    assert run["checkpoints"] == [str(Path(prior).resolve())]
    summary = json.loads(run["summary"])
    assert (summary["eligible"], summary["changed"], summary["tokens"]) == (r.eligible, r.changed, r.tokens)
    assert "gen-4" in store.tags()
    totals = store.read("ngram_totals", filter="generation = 4")
    assert set(totals["origin"].to_pylist()) == {"edited", "*"}
    # Re-running the same edit adds nothing and does not run the model on the done parents.
    again = edit(store, into=4, model=prior, threshold=0.5, seed=3)
    assert (again.rows_added, again.documents, again.skipped) == (0, 0, len(parents))
    assert len(_gen(store, 4)) == len(edited)
    assert store.read("edit_samples").num_rows == len(parents)


# ---- the decisions -----------------------------------------------------------------------------


def test_counts_agree_with_edits_and_direct_probabilities(store, prior, lm):
    model, tok = lm
    r = edit(store, into=1, model=prior, threshold=0.5, seed=0)
    rows = _edits(store, r.run_id)
    counts = _edit_samples(store, r.run_id)
    parents = {p["sample_id"]: p for p in _gen(store, 0)}
    assert sum(c["eligible"] for c in counts.values()) == r.eligible == len(rows)
    assert sum(c["changed"] for c in counts.values()) == r.changed == sum(e["new_token"] != e["old_token"] for e in rows)
    assert 0 < r.changed < r.eligible  # some draws return the original token
    by_parent: dict[str, list[dict]] = {}
    for e in rows:
        by_parent.setdefault(e["parent_id"], []).append(e)
    for pid, c in counts.items():
        mine = by_parent.get(pid, [])
        assert c["eligible"] == len(mine) and c["changed"] == sum(e["new_token"] != e["old_token"] for e in mine)
        assert all(e["action"] == "replace" for e in mine)
    checked = 0
    for pid, parent in parents.items():
        ids = tok(parent["text"], add_special_tokens=False)["input_ids"]
        if len(ids) > 128:
            continue  # windows: see test_long_documents_are_windowed
        p = direct_probs(model, ids)
        expected = {t + 1 for t in np.flatnonzero(p >= 0.5)}
        mine = by_parent.get(pid, [])
        assert {e["position"] for e in mine} == expected
        assert counts[pid]["tokens"] == len(ids)
        for e in mine:
            assert e["old_token"] == ids[e["position"]]
            assert e["prior_prob"] == pytest.approx(p[e["position"] - 1], abs=1e-5)
        checked += 1
    assert checked >= 10
    # The edited text is the decoded edited token sequence.
    edited = _by_parent(store, 1)
    for pid, mine in by_parent.items():
        ids = tok(parents[pid]["text"], add_special_tokens=False)["input_ids"]
        for e in mine:
            ids[e["position"]] = e["new_token"]
        assert edited[pid]["text"] == tok.decode(ids, clean_up_tokenization_spaces=False)


def test_long_documents_are_windowed(store, prior, lm):
    """Windows of 16 tokens every 5: each position >= 1 decided exactly once, with its window's context."""
    model, tok = lm
    r = edit(store, into=2, model=prior, threshold=1e-30, max_length=16, stride=5)  # every position eligible
    counts = _edit_samples(store, r.run_id)
    assert all(c["eligible"] == c["tokens"] - 1 for c in counts.values())
    long_parent = next(p for p in _gen(store, 0) if p["external_id"] == "long")
    rows = sorted((e for e in _edits(store, r.run_id) if e["parent_id"] == long_parent["sample_id"]),
                  key=lambda e: e["position"])
    ids = tok(LONG, add_special_tokens=False)["input_ids"]
    assert [e["position"] for e in rows] == list(range(1, len(ids)))
    # Reference: position t is decided by the first window (starts 0, 5, 10, ...) that reaches past it.
    for e in rows[::7]:
        t = e["position"]
        j = max(0, -(-(t - 16 + 1) // 5))
        p = direct_probs(model, ids[j * 5:t + 1])[-1]
        assert e["prior_prob"] == pytest.approx(p, abs=1e-5), t


def test_same_seed_same_output_whatever_the_batch_size(store, prior):
    a = edit(store, into=5, model=prior, threshold=0.3, seed=7, batch_size=1)
    b = edit(store, into=6, model=prior, threshold=0.3, seed=7, batch_size=16, max_length=128)
    c = edit(store, into=7, model=prior, threshold=0.3, seed=8)
    ta, tb, tc = (_by_parent(store, g) for g in (5, 6, 7))
    assert {k: v["text"] for k, v in ta.items()} == {k: v["text"] for k, v in tb.items()}
    assert (a.eligible, a.changed) == (b.eligible, b.changed)
    key = lambda e: (e["parent_id"], e["position"], e["new_token"])  # noqa: E731
    assert sorted(map(key, _edits(store, a.run_id))) == sorted(map(key, _edits(store, b.run_id)))
    # Another seed: the same positions are eligible, other tokens are drawn.
    assert c.eligible == a.eligible
    assert sum(ta[k]["text"] != tc[k]["text"] for k in ta) >= 3


def test_deletion_deletes_exactly_the_unlikely_tokens(store, prior, lm):
    model, tok = lm
    r = edit(store, into=8, model=prior, threshold=1.01, delete_below=0.01)
    rows = _edits(store, r.run_id)
    counts = _edit_samples(store, r.run_id)
    assert r.deleted == len(rows) > 0 and r.eligible == r.changed == 0
    assert all(e["action"] == "delete" and e["new_token"] is None and e["new_text"] is None for e in rows)
    edited = _by_parent(store, 8)
    for parent in _gen(store, 0):
        ids = tok(parent["text"], add_special_tokens=False)["input_ids"]
        if len(ids) > 128:
            continue
        p = direct_probs(model, ids)
        gone = {t + 1 for t in np.flatnonzero(p < 0.01)}
        mine = [e for e in rows if e["parent_id"] == parent["sample_id"]]
        assert {e["position"] for e in mine} == gone
        assert counts[parent["sample_id"]]["deleted"] == len(gone)
        kept = [t for i, t in enumerate(ids) if i not in gone]
        expected = tok.decode(kept, clean_up_tokenization_spaces=False) if gone else parent["text"]
        assert edited[parent["sample_id"]]["text"] == expected
    # Replacement and deletion together: disjoint positions.
    both = edit(store, into=9, model=prior, threshold=0.5, delete_below=0.01)
    assert both.deleted == r.deleted and both.eligible > 0
    positions = [(e["parent_id"], e["position"]) for e in _edits(store, both.run_id)]
    assert len(positions) == len(set(positions)) == both.eligible + both.deleted


# ---- errors, noise, CLI ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"into": 0}, "into=0"),
    ({"into": 2, "generation": 2}, "into=2 equals the source generation 2"),
    ({"into": 1, "threshold": 0.0}, "threshold must be a probability in (0, 1]"),
    ({"into": 1, "threshold": -0.5}, "got -0.5"),
    ({"into": 1, "threshold": 99}, "got 99"),
    ({"into": 1, "top_k": 0}, "top_k must be an integer >= 1, got 0"),
    ({"into": 1, "temperature": 0}, "temperature must be a number > 0, got 0"),
    ({"into": 1, "delete_below": 0.995}, "delete_below=0.995 must be below threshold=0.99"),
    ({"into": 1, "generation": 6}, "generation 6 has no samples of origin human"),
    ({"into": 1, "origins": ("robot",)}, "unknown origin"),
])
def test_errors(shared_store, prior, kwargs, message):
    with pytest.raises(UsageError) as info:
        edit(shared_store, model=prior, **kwargs)
    assert message in str(info.value)
    assert str(info.value)[0].islower()


def test_missing_model(shared_store, tmp_path):
    with pytest.raises(UsageError, match="no model at .*nowhere"):
        edit(shared_store, into=1, model=tmp_path / "nowhere")


def test_noise_is_a_function_of_seed_parent_position_token():
    ids = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"]
    k0, k1 = doc_keys(ids, 0), doc_keys(ids, 1)
    assert k0.dtype == np.uint64 and len(set(k0.tolist()) | set(k1.tolist())) == 4
    assert np.array_equal(doc_keys(ids[::-1], 0), k0[::-1])            # per id, not per batch position
    assert len(doc_keys(["not-hex", "x"], 0)) == 2                     # any id works
    assert doc_keys(["0" * 32], 0)[0] != 0                             # no fixed point at zero
    tokens = np.arange(8)[None, :].repeat(2, 0)
    g = gumbel_noise(k0, np.array([3, 3]), tokens)
    assert np.array_equal(g, gumbel_noise(k0, np.array([3, 3]), tokens))
    assert np.array_equal(g[:, ::-1], gumbel_noise(k0, np.array([3, 3]), tokens[:, ::-1]))
    big = gumbel_noise(np.repeat(k0[:1], 20000), np.arange(20000), np.zeros((20000, 1), dtype=np.int64))
    assert abs(big.mean() - 0.5772) < 0.03 and abs(big.std() - 1.2825) < 0.03  # Gumbel(0, 1)


def test_cli(store, prior):
    from curator.cli import cli
    from curator.cli_edit import register

    register(cli)
    register(cli)  # idempotent
    runner = CliRunner()
    base = ["--store", str(store.root), "-q", "edit", "--model", str(prior)]
    res = runner.invoke(cli, [*base, "--generation", "0", "--threshold", "0.9", "--top-k", "4", "--temperature",
                              "1.5", "--delete-below", "0.001", "--seed", "0", "--into", "4"], obj={})
    assert res.exit_code == 0, res.output
    assert "edited 16 samples of generation 0 into generation 4" in res.output
    assert len(_gen(store, 4)) == 16
    bad = runner.invoke(cli, [*base, "--into", "0"], obj={})
    assert bad.exit_code == 2 and "into=0" in bad.output
    res = runner.invoke(cli, ["edit", "--help"], obj={})
    assert res.exit_code == 0 and "--delete-below" in res.output
