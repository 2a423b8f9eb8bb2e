"""Session-wide tiny models for the scorer tests (built once per test session, in seconds, offline)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline before anything imports huggingface_hub; one torch thread (the machines are shared 2-core boxes).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.scorers import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 2-layer, width-64, 128-position GPT-2 with a 512-token byte-level BPE, trained on TRAIN_TEXT."""
    return tiny_models.make_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2", tiny_models.TRAIN_TEXT,
                                      steps=60, seed=0)


@pytest.fixture(scope="session")
def tiny_reward_models(tmp_path_factory) -> dict[int, Path]:
    """Tiny GPT-2 sequence classifiers trained on tiny_models.REWARD_TEXTS (prompt, text pairs), by label count."""
    root = tmp_path_factory.mktemp("reward")
    prompts, texts, labels = zip(*tiny_models.REWARD_TEXTS)
    return {k: tiny_models.make_tiny_classifier(root / f"labels{k}", texts, labels, prompts=prompts, num_labels=k,
                                                steps=40, seed=0)
            for k in (1, 2)}


@pytest.fixture(scope="session")
def tiny_sentence_transformer(tmp_path_factory) -> Path:
    """A random tiny BERT + mean pooling + Dense(32 -> 24) sentence-transformers folder."""
    return tiny_models.make_tiny_sentence_transformer(tmp_path_factory.mktemp("st") / "tiny-st", hidden_size=32,
                                                      out_features=24)
