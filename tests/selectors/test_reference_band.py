"""reference_band_v1: thresholds are the human rows' quantiles, whatever the batch being filtered looks like."""
from __future__ import annotations

import numpy as np
import pytest

from curator.errors import UsageError
from curator.ingest.pipeline import ingest
from curator.scorers import create as scorer
from curator.scoring import score
from curator.selectors import create
from curator.selectors.pipeline import select
from curator.store import Store
from tests.conftest import write_jsonl


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("band")
    rng = np.random.default_rng(0)
    human = [{"text": " ".join(["word"] * int(n))} for n in rng.integers(10, 60, 200)]
    # the synthetic generation drifted: most documents are far shorter than any human one
    synth = [{"text": " ".join(["token"] * int(n))} for n in np.r_[rng.integers(1, 8, 150), rng.integers(20, 40, 50)]]
    write_jsonl(root / "h.jsonl", human)
    write_jsonl(root / "s.jsonl", synth)
    st = Store(root / "st", create=True)
    ingest(st, [root / "h.jsonl"], generation=0, origin="human")
    ingest(st, [root / "s.jsonl"], generation=1, origin="synthetic")
    score(st, [scorer("text_stats_v1")], generations=[0, 1])
    return st


def _words(store, generation):
    from curator.store.query import connect, run_sql

    return run_sql(connect(store), "SELECT s.sample_id, t.words FROM samples s JOIN scores_text_stats_v1 t USING (sample_id) "
                                   f"WHERE s.generation = {generation}").to_pydict()


def test_band_is_the_reference_quantiles(store):
    human = np.array(_words(store, 0)["words"], dtype=float)
    lo, hi = np.quantile(human, 0.1), np.quantile(human, 0.9)
    synth = _words(store, 1)
    expected = {sid for sid, w in zip(synth["sample_id"], synth["words"]) if lo <= w <= hi}
    res = select(store, generation=1, name="band", steps=[
        create("reference_band_v1", {"column": "text_stats_v1.words", "lower": 0.1, "upper": 0.9})])
    from curator.store.query import connect, run_sql

    kept = set(run_sql(connect(store), "SELECT sample_id FROM selections WHERE selection = 'band'").column(0).to_pylist())
    assert kept == expected and 0 < res.rows < 200 - 150 + 1  # the drifted short documents all go
    one_sided = select(store, generation=1, name="band2", steps=[
        create("reference_band_v1", {"column": "text_stats_v1.words", "lower": 0.1, "upper": None})])
    assert one_sided.rows == sum(w >= lo for w in synth["words"])


def test_band_config_errors(store):
    with pytest.raises(UsageError, match="lower=1.5"):
        create("reference_band_v1", {"column": "text_stats_v1.words", "lower": 1.5})
    with pytest.raises(UsageError, match="lower, upper or both"):
        create("reference_band_v1", {"column": "text_stats_v1.words", "lower": None, "upper": None})
    with pytest.raises(UsageError, match="no text_stats_v1.words scores for generation 7"):
        select(store, generation=1, name="band3", steps=[
            create("reference_band_v1", {"column": "text_stats_v1.words", "reference_generation": 7})])
