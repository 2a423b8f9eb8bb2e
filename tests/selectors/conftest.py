"""A store of GSM8K prompts with synthetic "model answers" over three generations, built once per test session.

Generation 0: P human answers (prompt = question, reference = answer). Generations 1..3: K samples per
prompt, "Attempt g.j: <human answer>", with the final number (#### N) corrupted when (i + j + g) % 3 == 0,
so which samples are right is known exactly. Generation 1 marks a known set for the noisy verifier
(`flip`); generation 2 repeats five generation-1 texts exactly (for dedup against earlier generations).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curator.scorers.base import Scorer
from curator.scorers.verifiers import Gsm8kAnswer
from tests.conftest import shared_file, write_jsonl

P, K, GENS = 30, 4, 3
FLIP_PROMPTS = 15  # generation 1: sample j = 1 of prompts i < 15 gets a flipped verdict from the noisy verifier
COPIES = 5  # generation 2: sample j = 0 of prompts i < 5 repeats generation 1's text


def corrupted(i: int, j: int, g: int) -> bool:
    return (i + j + g) % 3 == 0


def flipped(i: int, j: int, g: int) -> bool:
    return g == 1 and i < FLIP_PROMPTS and j == 1


class NoisyVerifier(Scorer):
    """The GSM8K verifier with the verdict flipped on the samples whose metadata says flip: a known noise."""

    name = "noisy_verifier_v1"
    inputs = ("text", "reference", "metadata")
    columns = (pa.field("correct", pa.bool_()),)
    pass_column = "correct"

    def score(self, batch: pa.Table) -> pa.Table:
        right = Gsm8kAnswer().score(batch).column("correct")
        flip = pc.fill_null(pc.match_substring_regex(batch.column("metadata"), r'"flip":\s*true'), False)
        return pa.table({"correct": pc.xor(right, flip)})


class ToyEmbedding(Scorer):
    """A 2-d embedding from the text length, so diversity runs without a model."""

    name = "toy_embedding_v1"
    inputs = ("text",)
    columns = (pa.field("embedding", pa.list_(pa.float32(), 2)),)

    def score(self, batch: pa.Table) -> pa.Table:
        import numpy as np

        n = pc.utf8_length(batch.column("text")).to_numpy(zero_copy_only=False).astype(np.float32)
        x = np.stack([np.cos(n / 7.0), np.sin(n / 7.0)], axis=1).astype(np.float32)
        return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)})


@dataclass
class World:
    store: object
    root: str
    ids: dict  # (g, i, j) -> sample_id
    human_ids: list
    oracle_config: str
    verifier_config: str


def _bump(answer: str, by: int) -> str:
    return re.sub(r"####\s*(-?[\d,]+)", lambda m: f"#### {int(m.group(1).replace(',', '')) + by}", answer)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    from curator.ingest.pipeline import ingest
    from curator.ingest.readers import FieldMap
    from curator.scoring import score
    from curator.store import Store
    from curator.store.query import connect

    rows = [json.loads(line) for line in shared_file("gsm8k_test.jsonl").read_text().splitlines()[:P]]
    tmp = tmp_path_factory.mktemp("sel")
    store = Store(tmp / "st", create=True)
    human = write_jsonl(tmp / "human.jsonl", rows)
    ingest(store, [human], generation=0, origin="human",
           fields=FieldMap(text="answer", prompt="question", reference="answer"), stats=False)
    texts = {}
    for g in range(1, GENS + 1):
        out = []
        for i, r in enumerate(rows):
            for j in range(K):
                text = f"Attempt {g}.{j}: " + (_bump(r["answer"], 1 + j) if corrupted(i, j, g) else r["answer"])
                if g == 2 and j == 0 and i < COPIES:
                    text = texts[(1, i, 0)]
                texts[(g, i, j)] = text
                row = {"question": r["question"], "text": text, "gold": r["answer"]}
                if flipped(i, j, g):
                    row["flip"] = True
                out.append(row)
        path = write_jsonl(tmp / f"gen{g}.jsonl", out)
        ingest(store, [path], generation=g, origin="synthetic", fields=FieldMap(prompt="question", reference="gold"),
               model="test-generator", stats=False)
    verifier, oracle = Gsm8kAnswer(), Gsm8kAnswer(fallback="none")
    score(store, [verifier, NoisyVerifier(), ToyEmbedding()])
    score(store, [oracle], generations=[1, 2, 3])
    con = connect(store)
    table = con.sql("SELECT sample_id, generation, text, origin FROM samples").to_arrow_table().to_pylist()
    by_text = {(r["generation"], r["text"]): r["sample_id"] for r in table}
    ids = {key: by_text[(key[0], t)] for key, t in texts.items()}
    human_ids = sorted(r["sample_id"] for r in table if r["origin"] == "human")
    return World(store, str(tmp / "st"), ids, human_ids, oracle.config_hash, verifier.config_hash)
