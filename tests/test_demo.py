"""`curator demo` runs end to end and shows what it claims: diversity falls generation after generation."""
from __future__ import annotations

import json
from pathlib import Path

from curator.demo import BigramModel
from tests.conftest import run_cli

import numpy as np
from collections import Counter


def test_demo_shows_collapse(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", str(out))
    assert "generation 3" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [r["generation"] for r in summary] == [0, 1, 2, 3]
    d2 = [r["distinct_2"] for r in summary]
    mass = [r["top_bucket_mass_2"] for r in summary]
    assert d2[1] > d2[2] > d2[3] and d2[3] < d2[0]
    assert mass[1] < mass[2] < mass[3] and mass[3] > mass[0]
    assert summary[0]["alarms"] == 0 and summary[3]["alarms"] > summary[1]["alarms"]
    assert (out / "store" / "runs.lance").exists()
    log = run_cli("--store", str(out / "store"), "log")
    assert log.stdout.count("ingest") == 4


def test_bigram_sampler_follows_its_counts() -> None:
    docs = ["a b", "a c", "a b", "a b"] * 50
    model = BigramModel(docs)
    samples = model.sample(4000, temperature=1.0, max_words=2, rng=np.random.default_rng(0))
    seconds = Counter(s.split()[1] for s in samples if len(s.split()) == 2)
    share_b = seconds["b"] / (seconds["b"] + seconds["c"])
    assert abs(share_b - 0.75) < 0.03
    cold = model.sample(4000, temperature=0.3, max_words=2, rng=np.random.default_rng(0))
    cold_b = sum(s.split()[1] == "b" for s in cold if len(s.split()) == 2) / len(cold)
    assert cold_b > 0.95  # low temperature concentrates on the mode: the collapse mechanism
