"""Export: deterministic shards, weights, manifest verification, token provenance, the torch reader, the CLI."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator.errors import UsageError
from curator.export import export, read_manifest, verify
from curator.ingest.pipeline import ingest
from curator.ingest.readers import FieldMap
from curator.store import Store

# The readers fork DataLoader workers after the store was opened in this process; the workers never touch Lance.
pytestmark = pytest.mark.filterwarnings("ignore:lance is not fork-safe")

N_SAMPLES = 60
# Weights cycle over these: 0 = dropped, 0.5 / 2.5 = a seeded draw, 1 and 3 = exact repeats.
WEIGHTS = (0.0, 0.5, 1.0, 2.5, 3.0)


def _texts() -> list[str]:
    words = "the quiet river runs past the old mill where the miller keeps his grain in wooden boxes".split()
    return [" ".join(words[(i * 7 + j) % len(words)] for j in range(5 + i % 9)) + f" number {i}. café ünïcode"
            for i in range(N_SAMPLES)]


def _select(store: Store, name: str, weights) -> str:
    ids = store.read("samples", columns=["sample_id"]).column("sample_id")
    ids = pa.array(sorted(ids.to_pylist()))
    n = len(ids)
    with store.transaction("select", {"name": name}) as tx:
        tx.append("selections", pa.table({
            "selection": [name] * n, "sample_id": ids, "generation": pa.array([0] * n, pa.int32()),
            "origin": ["human"] * n, "weight": pa.array([float(w) for w in weights(n)], pa.float64()),
            "reason": ["test"] * n, "config_hash": ["0" * 16] * n, "run_id": [tx.run_id] * n,
        }))
        return tx.run_id


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    src = root / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t, "question": f"question {i}?", "gold": str(i)}) + "\n"
                           for i, t in enumerate(_texts())), encoding="utf-8")
    store = Store(root / "store", create=True)
    ingest(store, [src], generation=0, origin="human", stats=False,
           fields=FieldMap(text="text", prompt="question", reference="gold"))
    select_run = _select(store, "weighted", lambda n: [WEIGHTS[i % len(WEIGHTS)] for i in range(n)])
    _select(store, "ones", lambda n: [1.0] * n)
    _select(store, "zeros", lambda n: [0.0] * n)
    from tests.scorers.tiny_models import TRAIN_TEXT, train_tokenizer

    tok = train_tokenizer(TRAIN_TEXT + "\n".join(_texts()), vocab_size=300)
    tok.save_pretrained(root / "tok")
    return {"root": root, "store": store, "select_run": select_run, "tok": root / "tok", "hf_tok": tok}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "_manifest.json"}


def _weights_by_id(store: Store, name: str) -> dict[str, float]:
    rows = store.read("selections", columns=["sample_id", "weight"], filter=f"selection = '{name}'")
    return dict(zip(rows.column("sample_id").to_pylist(), rows.column("weight").to_pylist()))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "tokens"])
def test_same_seed_gives_identical_bytes(env, tmp_path, fmt):
    tok = env["tok"] if fmt == "tokens" else None
    a = export(env["store"], "weighted", fmt=fmt, shards=3, seed=7, out=tmp_path / "a", tokenizer=tok)
    b = export(env["store"], "weighted", fmt=fmt, shards=3, seed=7, out=tmp_path / "b", tokenizer=tok)
    c = export(env["store"], "weighted", fmt=fmt, shards=3, seed=8, out=tmp_path / "c", tokenizer=tok)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(fa) == (9 if fmt == "tokens" else 3)
    assert fa == fb  # byte for byte, every shard file and sidecar
    assert [s.sha256 for s in a.shards] == [s.sha256 for s in b.shards]
    assert a.export_id != b.export_id
    assert fa != _files(tmp_path / "c")
    sizes = [s.rows for s in c.shards]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == c.documents


def test_weights_repeat_and_drop(env, tmp_path):
    store = env["store"]
    weights = _weights_by_id(store, "weighted")
    totals = []
    for seed in range(4):
        out = tmp_path / f"s{seed}"
        result = export(store, "weighted", shards=2, seed=seed, out=out)
        table = pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("shard-*.parquet")))
        counts = Counter(table.column("sample_id").to_pylist())
        assert sum(counts.values()) == result.documents == table.num_rows
        for sid, w in weights.items():
            got = counts.get(sid, 0)
            assert int(np.floor(w)) <= got <= int(np.ceil(w)), (sid, w, got)
        # each copy of a sample is numbered 0..k-1
        copies = Counter(zip(table.column("sample_id").to_pylist(), table.column("copy").to_pylist()))
        assert all(v == 1 for v in copies.values())
        assert {c for _, c in copies} == set(range(max(counts.values())))
        totals.append(result.documents)
    # exactly the integer parts are fixed; the fractional ones vary with the seed
    assert len(set(totals)) > 1
    expected = sum(weights.values())
    assert abs(np.mean(totals) - expected) < 0.25 * expected


def test_manifest_and_exports_table(env, tmp_path):
    store = env["store"]
    result = export(store, "ones", shards=4, seed=1, out=tmp_path / "o")
    manifest = read_manifest(tmp_path / "o")
    assert manifest["export_id"] == result.export_id and manifest["selection"] == "ones"
    assert manifest["store_version"] == result.store_version and manifest["seed"] == 1
    assert [s["path"] for s in manifest["shards"]] == [f"shard-{k:05d}.parquet" for k in range(4)]
    assert sum(s["rows"] for s in manifest["shards"]) == N_SAMPLES
    rows = store.read("exports", filter=f"export_id = '{result.export_id}'").sort_by("shard").to_pylist()
    assert [r["sha256"] for r in rows] == [s["sha256"] for s in manifest["shards"]]
    assert [r["rows"] for r in rows] == [15] * 4
    assert all(Path(r["path"]).is_file() for r in rows)
    last = store.runs().to_pylist()[-1]
    assert last["command"] == "export" and last["run_id"] == result.export_id
    assert "exports" in last["written"] and last["parents"] and last["seq"] == result.run_version


def test_verify_detects_a_changed_byte(env, tmp_path):
    out = tmp_path / "t"
    export(env["store"], "weighted", fmt="tokens", shards=2, out=out, tokenizer=env["tok"])
    assert verify(out).ok and verify(out).files == 6
    target = out / "shard-00001.bin"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    report = verify(out)
    assert not report.ok
    assert [p for p, _ in report.problems] == ["shard-00001.bin"]
    assert "sha256" in report.problems[0][1]
    (out / "shard-00000.idx").unlink()
    assert {p for p, _ in verify(out).problems} == {"shard-00001.bin", "shard-00000.idx"}


def test_token_sidecar_maps_every_token_to_its_sample(env, tmp_path):
    out = tmp_path / "tok"
    export(env["store"], "weighted", fmt="tokens", shards=3, seed=3, out=out, tokenizer=env["tok"])
    manifest = read_manifest(out)
    tok = env["hf_tok"]
    eos = tok.eos_token_id
    assert manifest["tokenizer"]["eos_id"] == eos and manifest["tokenizer"]["dtype"] == "uint16"
    texts = dict(zip(*(env["store"].read("samples", columns=["sample_id", "text"]).column(c).to_pylist()
                       for c in ("sample_id", "text"))))
    seen = Counter()
    for shard in manifest["shards"]:
        stem = out / Path(shard["path"]).stem
        tokens = np.fromfile(stem.with_suffix(".bin"), dtype="<u2")
        idx = np.fromfile(stem.with_suffix(".idx"), dtype="<i8")
        side = pq.read_table(stem.with_suffix(".sidecar.parquet")).to_pylist()
        assert len(side) == shard["rows"] == len(idx) - 1
        assert idx[0] == 0 and idx[-1] == len(tokens)  # ranges tile the whole file
        for d, row in enumerate(side):
            assert (row["token_start"], row["token_end"]) == (idx[d], idx[d + 1])
            want = tok(texts[row["sample_id"]], add_special_tokens=False)["input_ids"] + [eos]
            assert tokens[row["token_start"]:row["token_end"]].tolist() == want
            assert tok.decode(want[:-1]) == texts[row["sample_id"]]
            seen[row["sample_id"]] += 1
    assert sum(seen.values()) == manifest["documents"]


def _expected(out: Path) -> Counter:
    table = pa.concat_tables(pq.read_table(p, columns=["sample_id", "copy"]) for p in sorted(out.glob("*.parquet")))
    return Counter(zip(table.column("sample_id").to_pylist(), table.column("copy").to_pylist()))


@pytest.mark.parametrize("shards", [1, 3])
def test_reader_yields_each_document_once_per_epoch(env, tmp_path, shards):
    from torch.utils.data import DataLoader

    from curator.export.reader import ShardDataset

    out = tmp_path / "r"
    export(env["store"], "weighted", shards=shards, seed=5, out=out)
    expected = _expected(out)
    ds = ShardDataset(out)
    for workers in (0, 2):
        for _epoch in range(2):
            items = list(DataLoader(ds, batch_size=None, num_workers=workers))
            got = Counter((it["sample_id"], it["copy"]) for it in items)
            assert got == expected, workers
    first = next(iter(ds))
    assert set(first) >= {"sample_id", "text", "prompt", "reference", "weight", "copy"}
    # distributed ranks split it too: the two ranks' items are disjoint and complete
    r0 = [(it["sample_id"], it["copy"]) for it in ShardDataset(out, rank=0, world_size=2)]
    r1 = [(it["sample_id"], it["copy"]) for it in ShardDataset(out, rank=1, world_size=2)]
    assert Counter(r0 + r1) == expected and not set(r0) & set(r1)


def test_reader_jsonl_and_tokens(env, tmp_path):
    from torch.utils.data import DataLoader

    from curator.export.reader import ShardDataset

    export(env["store"], "weighted", shards=2, seed=2, out=tmp_path / "p")
    expected = _expected(tmp_path / "p")
    export(env["store"], "weighted", fmt="jsonl", shards=2, seed=2, out=tmp_path / "j")
    items = list(DataLoader(ShardDataset(tmp_path / "j"), batch_size=None, num_workers=2))
    assert Counter((it["sample_id"], it["copy"]) for it in items) == expected
    export(env["store"], "weighted", fmt="tokens", shards=1, seed=2, out=tmp_path / "t", tokenizer=env["tok"])
    docs = list(DataLoader(ShardDataset(tmp_path / "t"), batch_size=None, num_workers=2))
    assert Counter((d["sample_id"], d["copy"]) for d in docs) == expected
    eos = env["hf_tok"].eos_token_id
    assert all(int(d["input_ids"][-1]) == eos for d in docs)
    total = sum(len(d["input_ids"]) for d in docs)
    blocks = list(DataLoader(ShardDataset(tmp_path / "t", block_size=16), batch_size=None, num_workers=2))
    assert len(blocks) == total // 16 and all(b["input_ids"].shape == (16,) for b in blocks)
    stream = np.fromfile(tmp_path / "t" / "shard-00000.bin", dtype="<u2")
    got = sorted(tuple(b["input_ids"].tolist()) for b in blocks)
    assert got == sorted(tuple(stream[i * 16:(i + 1) * 16].tolist()) for i in range(total // 16))


def test_parquet_readable_by_pyarrow_and_datasets(env, tmp_path):
    out = tmp_path / "p"
    export(env["store"], "ones", shards=2, out=out)
    table = pq.read_table(sorted(str(p) for p in out.glob("*.parquet")))  # the shards as one dataset
    assert table.num_rows == N_SAMPLES
    assert table.schema.field("text").type == pa.string()
    assert set(table.column("text").to_pylist()) == set(_texts())
    assert set(table.column("prompt").to_pylist()) == {f"question {i}?" for i in range(N_SAMPLES)}
    import datasets  # a test dependency: a missing one fails, never skips
    ds = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in out.glob("*.parquet")), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert len(ds) == N_SAMPLES and set(ds["text"]) == set(_texts())


def test_errors(env, tmp_path):
    store = env["store"]
    with pytest.raises(UsageError, match=r"unknown selection 'nope'.*selections: ones, weighted, zeros"):
        export(store, "nope", out=tmp_path / "x")
    with pytest.raises(UsageError, match="selection 'zeros' is empty"):
        export(store, "zeros", out=tmp_path / "x")
    with pytest.raises(UsageError, match="unknown format 'csv'; valid choices: parquet, jsonl, tokens"):
        export(store, "ones", fmt="csv", out=tmp_path / "x")
    with pytest.raises(UsageError, match="needs a tokenizer"):
        export(store, "ones", fmt="tokens", out=tmp_path / "x")
    with pytest.raises(UsageError, match="--shards 100 is more than the 60"):
        export(store, "ones", shards=100, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # failed exports leave no folder
    assert not list(tmp_path.glob(".*partial*"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not empty"):
        export(store, "ones", out=busy)
    with pytest.raises(UsageError, match="holds no _manifest.json"):
        export(store, "ones", out=busy, overwrite=True)
    assert (busy / "notes.txt").read_text() == "mine"
    export(store, "ones", out=tmp_path / "again", seed=1)
    with pytest.raises(UsageError, match="is not empty"):
        export(store, "ones", out=tmp_path / "again")
    result = export(store, "ones", out=tmp_path / "again", seed=2, overwrite=True)
    assert read_manifest(tmp_path / "again")["seed"] == 2 and verify(result.out).ok


def test_cli(env, tmp_path):
    from click.testing import CliRunner

    from curator.cli import cli
    from curator.cli_export import register

    register(cli)  # already wired in by curator.cli: adding it again changes nothing
    assert cli.commands["export"].name == "export"

    runner = CliRunner()
    store = str(env["root"] / "store")
    out = tmp_path / "c"
    res = runner.invoke(cli, ["--store", store, "-q", "export", "--selection", "weighted", "--format", "tokens",
                              "--shards", "2", "--seed", "4", "--out", str(out), "--tokenizer", str(env["tok"])])
    assert res.exit_code == 0, res.output
    assert "exported selection 'weighted'" in res.output
    res = runner.invoke(cli, ["export", "--verify", str(out)])
    assert res.exit_code == 0 and res.output.startswith("ok: 6 file(s)")
    side = out / "shard-00001.sidecar.parquet"
    side.write_bytes(side.read_bytes()[:-1] + bytes([side.read_bytes()[-1] ^ 0xFF]))
    res = runner.invoke(cli, ["export", "--verify", str(out)])
    assert res.exit_code != 0 and "shard-00001.sidecar.parquet" in res.output
    res = runner.invoke(cli, ["--store", store, "export", "--selection", "nope", "--out", str(tmp_path / "n")])
    assert res.exit_code == 2 and "unknown selection 'nope'" in res.output
    res = runner.invoke(cli, ["export", "--help"])
    assert res.exit_code == 0 and "--verify" in res.output
