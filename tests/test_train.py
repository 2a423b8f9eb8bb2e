"""Training on an export and evaluating the checkpoint: loss, determinism, checkpoints, runs, perplexity, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curator.errors import UsageError
from curator.export import export
from curator.ingest.pipeline import ingest
from curator.store import Store
from tests.scorers.tiny_models import TRAIN_TEXT, make_tiny_gpt2

import torch  # noqa: E402  (a dependency of curator: a missing torch fails, never skips)
pytestmark = pytest.mark.filterwarnings("ignore:lance is not fork-safe")

# Held-out text from the training text's distribution (the mill and the village), never trained on.
HELDOUT = """\
The miller opens the doors of the mill and the children watch the wheel turn.
In the winter the river is cold and the baker buys flour from the miller.
The farmers bring their wheat to the mill, and the miller counts the sacks.
"""
# Small and quick on one thread; lr high enough that a random model learns the text in a few dozen steps.
OPTS = dict(batch_size=4, block_size=32, lr=3e-3, warmup=2, weight_decay=0.0, threads=1, device="cpu")


def _select(store: Store, name: str) -> None:
    ids = pa.array(sorted(store.read("samples", columns=["sample_id"]).column("sample_id").to_pylist()))
    n = len(ids)
    with store.transaction("select", {"name": name}) as tx:
        tx.append("selections", pa.table({
            "selection": [name] * n, "sample_id": ids, "generation": pa.array([0] * n, pa.int32()),
            "origin": ["human"] * n, "weight": pa.array([1.0] * n, pa.float64()), "reason": ["test"] * n,
            "config_hash": ["0" * 16] * n, "run_id": [tx.run_id] * n}))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    src = root / "train.jsonl"
    src.write_text("".join(json.dumps({"text": line}) + "\n" for line in TRAIN_TEXT.splitlines() if line.strip()))
    store = Store(root / "store", create=True)
    ingest(store, [src], generation=0, origin="human", stats=False)
    _select(store, "all")
    # A random initialisation (steps=0) with a tokenizer trained on the text: the loss has far to fall.
    base = make_tiny_gpt2(root / "base", TRAIN_TEXT, steps=0, seed=0, n_positions=64)
    parquet = export(store, "all", fmt="parquet", shards=2, seed=3, out=root / "shards-pq")
    tokens = export(store, "all", fmt="tokens", shards=2, seed=3, out=root / "shards-tok", tokenizer=base)
    heldout = root / "heldout.txt"
    heldout.write_text(HELDOUT)
    return {"root": root, "store": store, "base": base, "parquet": parquet, "tokens": tokens, "heldout": heldout}


@pytest.fixture(scope="module")
def trained(env):
    from curator.train import train

    return train(env["store"], export=env["parquet"].out, base=env["base"], out=env["root"] / "gen1", steps=30,
                 seed=0, **OPTS)


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_falls_and_checkpoint_loads(env, trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert trained.steps == 30 and len(trained.losses) == 30
    assert sum(trained.losses[-5:]) / 5 < trained.first_loss - 1.5  # ln(512) = 6.2 at the random start
    model = AutoModelForCausalLM.from_pretrained(trained.out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(trained.out, local_files_only=True)
    assert model.config.vocab_size == len(tok)
    log = [json.loads(line) for line in (trained.out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 31)) and log[-1]["loss"] == trained.last_loss
    assert not list(trained.out.parent.glob(".gen1.partial-*"))


def test_run_records_export_base_and_out(env, trained):
    runs = env["store"].runs()
    row = runs.filter(pc.equal(runs["run_id"], trained.run_id)).to_pylist()[0]
    assert row["command"] == "train"
    assert row["parents"] == [env["parquet"].export_id]
    assert row["checkpoints"] == [str(Path(env["base"]).absolute()), str(trained.out)]
    assert row["generations"] == [0]
    args, summary = json.loads(row["args"]), json.loads(row["summary"])
    assert args["export_id"] == env["parquet"].export_id and args["selection"] == "all"
    assert summary["first_loss"] == trained.first_loss and summary["last_loss"] == trained.last_loss
    assert summary["mean_loss"] == pytest.approx(sum(trained.losses) / 30)
    assert summary["export_id"] == env["parquet"].export_id and summary["steps"] == 30


def test_same_seed_same_weights_and_tokens_format_matches(env, trained):
    from curator.train import train

    again = train(None, export=env["parquet"].out, base=env["base"], out=env["root"] / "again", steps=30, seed=0,
                  **OPTS)
    assert again.run_id is None and again.losses == trained.losses
    assert _same(_weights(again.out), _weights(trained.out))
    # The tokens export holds the same stream (same selection, seed and shards; same tokenizer, eos appended),
    # so training on it is the same computation.
    tok = train(None, export=env["tokens"].out, base=env["base"], out=env["root"] / "tok", steps=30, seed=0, **OPTS)
    assert tok.tokens == trained.tokens and tok.losses == trained.losses
    assert _same(_weights(tok.out), _weights(trained.out))
    other = train(None, export=env["parquet"].out, base=env["base"], out=env["root"] / "seed1", steps=30, seed=1,
                  **OPTS)
    assert not _same(_weights(other.out), _weights(trained.out))


def _direct_perplexity(model_dir: Path, lines: list[str]) -> float:
    """Reference: each line through the model alone, every token but the first scored, pooled over tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    total, count = 0.0, 0
    with torch.no_grad():
        for line in lines:
            ids = torch.tensor([tok(line, add_special_tokens=False)["input_ids"]])
            logp = torch.log_softmax(model(ids).logits.double(), dim=-1)[0, :-1]
            total += logp.gather(1, ids[0, 1:, None]).sum().item()
            count += ids.shape[1] - 1
    return float(torch.exp(torch.tensor(-total / count)))


def test_eval_perplexity_is_direct_and_falls_after_training(env, trained):
    from curator.evaluate import evaluate

    lines = [line for line in HELDOUT.splitlines() if line.strip()]
    before = evaluate(None, model=env["base"], heldout=env["heldout"], device="cpu", threads=1)
    after = evaluate(env["store"], model=trained.out, heldout=env["heldout"], device="cpu", threads=1)
    assert before.heldout_documents == 3 and before.heldout_tokens == after.heldout_tokens > 20
    assert before.perplexity == pytest.approx(_direct_perplexity(env["base"], lines), rel=1e-5)
    assert after.perplexity == pytest.approx(_direct_perplexity(trained.out, lines), rel=1e-5)
    assert after.perplexity < 0.5 * before.perplexity
    runs = env["store"].runs()
    row = runs.filter(pc.equal(runs["run_id"], after.run_id)).to_pylist()[0]
    assert row["command"] == "eval" and row["parents"] == [trained.run_id]
    assert json.loads(row["summary"])["perplexity"] == after.perplexity


def test_eval_accuracy_through_a_verifier(env, trained, tmp_path):
    from curator.evaluate import evaluate, generate_answers

    prompts = ["The miller opens", "In the winter the river", "The baker buys"]
    batched = generate_answers(trained.out, prompts, max_new_tokens=8, batch_size=3, device="cpu")
    alone = [generate_answers(trained.out, [p], max_new_tokens=8, device="cpu")[0] for p in prompts]
    assert batched == alone  # left padding does not change a greedy answer
    rows = [{"prompt": prompts[0], "reference": batched[0]}, {"prompt": prompts[1], "reference": batched[1]},
            {"prompt": prompts[2], "reference": "certainly not this"}]
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate(None, model=trained.out, verifier="exact_match_v1", eval_set=eval_set, max_new_tokens=8,
                      device="cpu", threads=1)
    assert (result.correct, result.judged, result.eval_rows) == (2, 3, 3)
    assert result.accuracy == pytest.approx(2 / 3) and result.perplexity is None


def test_cli_train_and_eval(env, tmp_path):
    from click.testing import CliRunner

    from curator.cli import cli
    from curator.cli_train import register

    register(cli)
    register(cli)  # idempotent
    runner = CliRunner()
    store = str(env["store"].root)
    out = tmp_path / "cli-ckpt"
    res = runner.invoke(cli, ["--store", store, "-q", "train", "--export", str(env["tokens"].out), "--base",
                              str(env["base"]), "--out", str(out), "--steps", "3", "--batch-size", "2",
                              "--block-size", "16", "--threads", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "trained 3 step(s)" in res.output and (out / "config.json").is_file()
    res = runner.invoke(cli, ["--store", store, "-q", "eval", "--model", str(out), "--heldout",
                              str(env["heldout"]), "--threads", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "held-out perplexity" in res.output
    res = runner.invoke(cli, ["--store", store, "train", "--export", str(env["tokens"].out), "--base",
                              str(env["base"]), "--out", str(out), "--steps", "1"])
    assert res.exit_code == 2 and "not empty" in res.output


def test_usage_errors(env, tmp_path):
    from curator.train import train

    with pytest.raises(UsageError, match="steps or epochs"):
        train(None, export=env["parquet"].out, base=env["base"], out=tmp_path / "x", steps=2, epochs=1)
    with pytest.raises(UsageError, match="float16"):
        train(None, export=env["parquet"].out, base=env["base"], out=tmp_path / "x", steps=2, dtype="fp16")
    with pytest.raises(UsageError, match="exactly one of base"):
        train(None, export=env["parquet"].out, out=tmp_path / "x", steps=2)
    other = Store(tmp_path / "other", create=True)
    with pytest.raises(UsageError, match="was not made in store"):
        train(other, export=env["parquet"].out, base=env["base"], out=tmp_path / "x", steps=2)
    assert not (tmp_path / "x").exists()


def test_from_scratch_config(env, tmp_path):
    from transformers import AutoModelForCausalLM

    from curator.train import train

    cfg = {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 32}
    a = train(None, export=env["parquet"].out, init_config=cfg, tokenizer=env["base"], out=tmp_path / "a",
              steps=3, seed=5, **OPTS)
    b = train(None, export=env["parquet"].out, init_config=cfg, tokenizer=env["base"], out=tmp_path / "b",
              steps=3, seed=5, **OPTS)
    assert _same(_weights(a.out), _weights(b.out))
    model = AutoModelForCausalLM.from_pretrained(a.out, local_files_only=True)
    assert model.config.n_layer == 1 and a.block_size == 32
