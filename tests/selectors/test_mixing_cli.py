"""Mixing policies give the exact counts they promise over three generations; the CLI commands."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from curator.errors import UsageError
from curator.selectors import create
from curator.selectors.mixing import MixConfig
from curator.selectors.pipeline import select
from tests.selectors.conftest import COPIES, K, P, corrupted

H = P  # human rows (generation 0)


def kept(g: int) -> int:
    """Correct samples of generation g (generation 2's copies carry generation 1's corruption)."""
    copied = lambda i, j: g == 2 and j == 0 and i < COPIES  # noqa: E731
    return sum(not corrupted(i, j, 1 if copied(i, j) else g) for i in range(P) for j in range(K))


def _run(world, g, name, **mix):
    steps = [create("verifier_v1", {"verifier": "gsm8k_answer_v1", "config_hash": world.verifier_config})]
    res = select(world.store, generation=g, name=name, steps=steps, mix_config=MixConfig(**mix), seed=7)
    return {(c["origin"], c["generation"]): c["rows"] for c in res.counts}, res.rows


def test_replace_and_accumulate_over_three_generations(world):
    assert _run(world, 3, "rep", policy="replace") == ({("synthetic", 3): kept(3)}, kept(3))
    counts, total = _run(world, 3, "acc-all", policy="accumulate")
    assert counts == {("human", 0): H, ("synthetic", 1): P * K, ("synthetic", 2): P * K, ("synthetic", 3): kept(3)}
    _run(world, 1, "r1", policy="replace")
    assert _run(world, 2, "r2", policy="accumulate", previous="r1")[0] == {
        ("human", 0): H, ("synthetic", 1): kept(1), ("synthetic", 2): kept(2)}
    counts, total = _run(world, 3, "r3", policy="accumulate", previous="r2")
    assert counts == {("human", 0): H, ("synthetic", 1): kept(1), ("synthetic", 2): kept(2), ("synthetic", 3): kept(3)}
    assert total == H + kept(1) + kept(2) + kept(3)
    with pytest.raises(UsageError, match="previous selection 'nope' not found; selections: "):
        _run(world, 3, "x", policy="accumulate", previous="nope")


def test_subsample_and_human_shares_are_exact(world):
    counts, total = _run(world, 3, "sub", policy="accumulate-subsample", size=100)
    assert total == 100 and sum(counts.values()) == 100
    assert _run(world, 3, "sub", policy="accumulate-subsample", size=100)[0] == counts  # seeded
    assert _run(world, 3, "hf", policy="human-fraction", human_fraction=0.2, size=50)[0] == {
        ("human", 0): 10, ("synthetic", 3): 40}
    # without a size: the largest mix with round(0.2 * total) humans that both pools can fill
    s = kept(3)
    counts, total = _run(world, 3, "hf2", policy="human-fraction", human_fraction=0.2)
    assert counts[("human", 0)] == int(0.2 * total + 0.5) and counts[("human", 0)] <= H and counts[("synthetic", 3)] <= s
    assert counts[("synthetic", 3)] == s or counts[("human", 0)] == H
    assert _run(world, 3, "kh", policy="keep-human", human_fraction=0.5)[0] == {("human", 0): 15, ("synthetic", 3): s}
    # accumulate with a human fraction: every kept synthetic row so far, with exactly round(alpha * total) humans
    counts, total = _run(world, 2, "acc-hf", policy="accumulate", human_fraction=0.1)
    synthetic = counts.get(("synthetic", 1), 0) + counts.get(("synthetic", 2), 0)
    assert counts[("human", 0)] == int(0.1 * total + 0.5) and total == counts[("human", 0)] + synthetic
    assert synthetic == P * K + kept(2) or counts[("human", 0)] == H  # the pool that runs out is used whole
    with pytest.raises(UsageError, match="does not apply to mix replace"):
        MixConfig(policy="replace", human_fraction=0.2)
    with pytest.raises(UsageError, match="needs 100 rows but only 30 are available"):
        _run(world, 3, "x", policy="human-fraction", human_fraction=0.5, size=200)
    with pytest.raises(UsageError, match="unknown mixing policy 'blend'; policies: replace, accumulate"):
        MixConfig(policy="blend")


def test_cli_select_audit_and_label_queue(world, tmp_path):
    from curator.cli import cli
    from curator.cli_select import register

    register(cli)
    register(cli)  # idempotent
    runner = CliRunner()
    config = tmp_path / "select.toml"
    config.write_text(f'''seed = 3
[[select]]
selector = "verifier_v1"
verifier = "gsm8k_answer_v1"
config_hash = "{world.verifier_config}"
[[select]]
selector = "exact_dedup_v1"
[mix]
policy = "keep-human"
human_fraction = 0.2
''')
    res = runner.invoke(cli, ["--store", world.root, "select", "-g", "1", "--config", str(config), "--name", "cli1"])
    assert res.exit_code == 0, res.output
    assert "selection cli1:" in res.output and "verifier_v1" in res.output and str(kept(1)) in res.output
    res = runner.invoke(cli, ["--store", world.root, "audit", "--selection", "cli1", "--oracle", "gsm8k_answer_v1",
                              "--oracle-config", world.oracle_config, "--format", "json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)[0]
    assert row["precision"] == 1.0 and row["keep_rate_correct"] == 1.0 and row["audit_samples"] == P * K
    res = runner.invoke(cli, ["--store", world.root, "audit", "--verifier", "noisy_verifier_v1", "--threshold", "0.5",
                              "--threshold", "1.5", "--oracle", "gsm8k_answer_v1", "--oracle-config",
                              world.oracle_config, "-g", "1", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert [r["kept"] for r in json.loads(res.output)][1] == 0
    out = tmp_path / "q.jsonl"
    res = runner.invoke(cli, ["--store", world.root, "label-queue", "-g", "1", "--budget", "4", "--verifier",
                              "gsm8k_answer_v1", "--verifier-config", world.verifier_config, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 4
    res = runner.invoke(cli, ["--store", world.root, "select", "-g", "1", "--name", "bad", "--step", "nope_v1"])
    assert res.exit_code == 2 and "unknown selector 'nope_v1'; available:" in res.output
    for command in ("select", "audit", "label-queue"):
        assert runner.invoke(cli, [command, "--help"]).exit_code == 0
