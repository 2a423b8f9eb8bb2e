"""`curator demo --quick` end to end: the claims it makes hold in the numbers it writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from curator.demo import corpus_documents, demo_config, stdlib_corpus
from curator.errors import UsageError
from tests.conftest import run_cli

ARMS = ("replace", "accumulate", "curated")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = run_cli("demo", "--quick", "--out", str(out))
    return out, proc.stdout


def _series(rows: list[dict], arm: str, metric: str) -> list[float]:
    return [r[metric] for r in sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["generation"])]


def test_summary_has_every_arm_generation_and_metric(demo):
    out, stdout = demo
    rows = json.loads((out / "summary.json").read_text())
    rounds = json.loads((out / "demo_config.json").read_text())["loop"]["rounds"]
    assert sorted({r["arm"] for r in rows}) == sorted(ARMS)
    for arm in ARMS:
        assert sorted(r["generation"] for r in rows if r["arm"] == arm) == list(range(rounds + 1))
    for r in rows:
        for key in ("heldout_ppl", "distinct_2", "distinct_3", "js_divergence_2"):
            assert isinstance(r[key], float), (r["arm"], r["generation"], key)
    assert "curation (score, shift, select, export" in stdout and "heldout_ppl" in stdout


def test_collapse_in_replace_and_not_in_the_curated_arms(demo):
    rows = json.loads((demo[0] / "summary.json").read_text())
    ppl = {arm: _series(rows, arm, "heldout_ppl") for arm in ARMS}
    d2 = {arm: _series(rows, arm, "distinct_2") for arm in ARMS}
    js = {arm: _series(rows, arm, "js_divergence_2") for arm in ARMS}
    # replace: held-out perplexity rises every round; generated diversity falls after round 1; drift grows
    assert all(b > a for a, b in zip(ppl["replace"], ppl["replace"][1:])), ppl["replace"]
    assert all(b < a for a, b in zip(d2["replace"][1:], d2["replace"][2:])), d2["replace"]
    assert all(b > a for a, b in zip(js["replace"][1:], js["replace"][2:])), js["replace"]
    # accumulate and curated stay bounded: never above the base model's perplexity, and far below replace
    for arm in ("accumulate", "curated"):
        assert max(ppl[arm]) <= ppl[arm][0] * 1.05, (arm, ppl[arm])
        assert ppl[arm][-1] < ppl["replace"][-1] * 0.75
        assert d2[arm][-1] > d2["replace"][-1] and js[arm][-1] < js["replace"][-1]


def test_outputs_and_store(demo):
    out, _ = demo
    page = (out / "report.html").read_text()
    assert "<svg" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert (out / "main_plot.svg").read_text().startswith("<svg")
    tables = run_cli("--store", str(out / "store"), "tables").stdout
    for table in ("samples", "scores_perplexity_v1", "scores_repetition_v1", "selections", "exports", "minhash"):
        assert table in tables
    lineage = run_cli("--store", str(out / "store"), "log", "--lineage").stdout
    assert "curated" in lineage and "generation 0" in lineage


def test_corpus_option_and_errors(tmp_path):
    docs = stdlib_corpus()
    assert len(docs) > 1000 and all(len(d.split()) >= 8 for d in docs[:50])
    small = tmp_path / "small.txt"
    small.write_text("\n\n".join(f"paragraph {i} has a few words" for i in range(10)))
    with pytest.raises(UsageError, match="10 document"):
        corpus_documents(small)
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"paragraph {i} has a few more words in it" for i in range(80)))
    got, source = corpus_documents(big)
    assert len(got) == 80 and source == str(big)
    cfg = demo_config(tmp_path / "o", big, quick=True, seed=3)
    assert cfg["loop"]["seed"] == 3 and [a["name"] for a in cfg["arm"]] == list(ARMS)
    proc = run_cli("demo", "--corpus", str(tmp_path / "missing.txt"), check=False)
    assert proc.returncode != 0 and "missing.txt" in proc.stderr
