"""A small two-arm store built by hand the way the loop lays one out (for the report's tests).

Generation 0: 300 short human documents. Arm "replace" (generations 101, 102) draws from a vocabulary that
shrinks each round, so its text grows repetitive; arm "curated" (201, 202) stays close to the human text.
Every write is marked with the loop's context, a "loop" start run names the arms, eval runs carry held-out
perplexities, and every generation is scored by a tiny GPT-2 (perplexity_v1) and a regex verifier.
"""
from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import write_jsonl

LOOP = "t"
ARMS = ("replace", "curated")
HELDOUT = {("base", 0): 40.0, ("replace", 1): 55.5, ("replace", 2): 130.25, ("curated", 1): 42.0,
           ("curated", 2): 43.5}
WORDS = ("the river mill miller grain flour bread village children wheel water spring summer winter snow "
         "farmer wheat cart silver book number fire door morning baker basket road hill stone field bird "
         "tree wind rain cloud night star moon boat bridge market coin apple pencil teacher student train").split()


def _docs(rng: random.Random, n: int, vocab: list[str], length: tuple[int, int] = (8, 20)) -> list[str]:
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(*length))).capitalize() + "." for _ in range(n)]


def build_store(root: Path) -> Path:
    """Build the store under `root` (returns the store path); takes a few seconds."""
    from curator.ingest.pipeline import ingest
    from curator.scorers import create
    from curator.scoring import score
    from curator.store import Store
    from curator.tinylm import make_tiny_gpt2

    rng = random.Random(0)
    store_path = root / "st"
    store = Store(store_path, create=True)
    human = _docs(rng, 300, WORDS)
    ingest(store, [write_jsonl(root / "human.jsonl", [{"text": t} for t in human])], generation=0, origin="human")
    with store.annotate(loop=LOOP, step="start"):
        with store.transaction("loop", {"name": LOOP, "rounds": 2, "arms": list(ARMS), "config": {"seed": 0}}):
            pass
    for i, arm in enumerate(ARMS, start=1):
        for r in (1, 2):
            g = 100 * i + r
            vocab = WORDS[: max(4, len(WORDS) // (3 * r))] if arm == "replace" else WORDS
            docs = _docs(rng, 200, vocab)
            if arm == "replace":  # a stock phrase that spreads
                docs = [d + " The mill is good." * r if k % 2 == 0 else d for k, d in enumerate(docs)]
            path = write_jsonl(root / f"g{g}.jsonl", [{"text": t} for t in docs])
            with store.annotate(loop=LOOP, arm=arm, round=r, step="generate", generation=g):
                ingest(store, [path], generation=g, origin="synthetic", model="tiny")
    for (arm, r), ppl in HELDOUT.items():
        g = 0 if arm == "base" else 100 * (ARMS.index(arm) + 1) + r
        with store.annotate(loop=LOOP, arm=arm, round=r, step="eval", generation=g):
            with store.transaction("eval", {"model": f"ckpt/{arm}/r{r}"}) as tx:
                tx.summary = {"perplexity": ppl, "accuracy": None}
    model = make_tiny_gpt2(root / "ref", human[:120], steps=20, seed=0, n_positions=64)
    with store.annotate(loop=LOOP, arm="base", round=0, step="score", generation=0):
        score(store, [create("perplexity_v1", {"model": str(model), "batch_size": 64}),
                      create("regex_v1", {"pattern": "river"})])
    return store_path
