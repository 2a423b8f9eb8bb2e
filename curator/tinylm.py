"""Tiny models built on the fly, for the demo, the loop, tests and benchmarks (nothing is downloaded).

Everything here is deterministic for a given seed: training runs on one torch thread with seeded
generators, dropout is off, and the BPE trainer is fed the texts in a fixed order. A build takes a few
seconds on one core (the tokenizer: milliseconds; 60 training steps of the tiny GPT-2: about 2-3 s). The
builders save with `save_pretrained`, so the folders load with the ordinary `AutoTokenizer` /
`AutoModelForCausalLM` / `AutoModelForSequenceClassification` / `SentenceTransformer` calls (what curator's
scorers, token editor and trainer do with a user's checkpoint).

    tok = train_tokenizer(texts, vocab_size=512)
    path = make_tiny_gpt2(tmp / "gpt2", TRAIN_TEXT, steps=60)        # model + tokenizer in one folder
    path = make_tiny_classifier(tmp / "rm", texts, labels)            # GPT-2 sequence classifier
    path = make_tiny_sentence_transformer(tmp / "st")                  # BERT + mean pooling (+ Dense)

Special tokens of the tokenizer: `<|endoftext|>` (id 0: bos, eos and unk, as in GPT-2) and `<|pad|>` (id 1),
kept apart from eos so that a padded position can never be taken for a real end of text.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

EOS = "<|endoftext|>"
PAD = "<|pad|>"

# A few paragraphs of plain English to train on when a test does not bring its own text (written for these
# tests; the shared data folder may be absent, and tests must not depend on it).
TRAIN_TEXT = """\
The quiet river runs past the old mill, where the miller keeps his grain in wooden boxes.
Every morning the miller opens the doors, sweeps the floor and counts the sacks of flour.
The children of the village come to watch the great wheel turn in the cold water.
In the spring the river rises and the wheel turns faster, and the mill is loud all day.
In the summer the river is low and slow, and the miller mends the nets by the door.
The baker buys the flour from the miller and bakes bread for the whole village.
The bread is warm in the morning, and the children carry it home in baskets.
When the autumn comes the farmers bring their wheat to the mill on heavy carts.
The miller weighs the wheat, writes the numbers in his book and pays the farmers in silver.
In the winter the snow covers the roofs, the river freezes at the edges and the wheel stands still.
Then the miller sits by the fire, reads his book of numbers and waits for the spring.
A student adds three apples to five apples and counts eight apples on the table.
A teacher writes the numbers on the board, and the class reads them aloud one by one.
If a train leaves the station at noon and travels for three hours, it arrives at three o'clock.
The shop sells pencils for two coins each, so four pencils cost eight coins in all.
"""

# Texts a tiny reward model learns to tell apart: label 1 = the statement is about the mill, 0 = arithmetic.
REWARD_TEXTS = [
    ("what happens at the mill?", "The miller opens the doors and counts the sacks of flour.", 1),
    ("what happens at the mill?", "The great wheel turns in the cold water.", 1),
    ("what happens at the mill?", "The baker buys the flour from the miller.", 1),
    ("what happens at the mill?", "The children watch the wheel turn.", 1),
    ("how much is it?", "Four pencils cost eight coins in all.", 0),
    ("how much is it?", "Three apples and five apples are eight apples.", 0),
    ("how much is it?", "The train arrives at three o'clock.", 0),
    ("how much is it?", "Two coins each, so four cost eight.", 0),
]


@contextlib.contextmanager
def one_thread(seed: int | None = None) -> Iterator[None]:
    """One torch thread (and seeded generators) for the duration of a build: deterministic and quick on a
    shared 2-core machine, where a second busy thread makes small matmuls several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if seed is not None:
            random.seed(seed)
            torch.manual_seed(seed)
        yield
    finally:
        torch.set_num_threads(before)


def _lines(texts: str | Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        return [line for line in texts.splitlines() if line.strip()]
    return [t for t in texts if t]


def train_tokenizer(texts: str | Iterable[str], vocab_size: int = 512, *, min_frequency: int = 1) -> Any:
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer.

    Byte-level: every string encodes (no unknown tokens), as with GPT-2. No post-processor: encoding adds no
    special tokens, so a causal LM sees exactly the text's tokens (GPT-2's behaviour too).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_lines(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                   pad_token=PAD, model_max_length=1 << 20)


def gpt2_config(tokenizer: Any, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 128,
                **extra: Any) -> Any:
    """A GPT-2 config sized for tests (defaults: 2 layers, width 64, 128 positions), dropout off."""
    from transformers import GPT2Config

    params: dict[str, Any] = dict(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd,
                                  n_layer=n_layer, n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)
    params.update(extra)  # e.g. vocab_size=50257 for GPT-2-small's compute with a smaller tokenizer
    return GPT2Config(**params)


def _token_stream(tokenizer: Any, texts: str | Iterable[str]) -> Any:
    """All documents' tokens in one 1-D tensor, each document followed by eos (how GPT-2 was trained)."""
    import torch

    ids: list[int] = []
    for enc in tokenizer(_lines(texts), add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def train_causal_lm(model: Any, tokenizer: Any, texts: str | Iterable[str], *, steps: int = 60,
                    batch_size: int = 8, block_size: int = 64, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train `model` in place for `steps` AdamW steps on random blocks of the texts; returns the losses."""
    import torch

    stream = _token_stream(tokenizer, texts)
    block = min(block_size, model.config.n_positions, len(stream) - 1)
    with one_thread(seed):
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        model.train()
        losses = []
        for _ in range(steps):
            starts = torch.randint(0, len(stream) - block, (batch_size,), generator=gen)
            x = torch.stack([stream[s:s + block] for s in starts.tolist()])
            loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
    return losses


def make_tiny_gpt2(path: str | Path, texts: str | Iterable[str] = TRAIN_TEXT, *, vocab_size: int = 512,
                   steps: int = 60, seed: int = 0, tokenizer: Any = None, **config: Any) -> Path:
    """Train a tokenizer (unless given) and a tiny GPT-2 on `texts`; save both to `path` and return it.

    `config` overrides `gpt2_config` (n_layer, n_embd, n_head, n_positions, ...). `steps=0` saves the
    random initialisation (seeded).
    """
    import torch
    from transformers import GPT2LMHeadModel

    path = Path(path)
    tokenizer = tokenizer if tokenizer is not None else train_tokenizer(texts, vocab_size)
    with one_thread(seed):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(gpt2_config(tokenizer, **config))
    if steps:
        train_causal_lm(model, tokenizer, texts, steps=steps, seed=seed)
    model.eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def classifier_tokenizer(tokenizer: Any) -> Any:
    """A copy of `tokenizer` that ends a text with eos and joins a pair as `A <eos> B <eos>` (token type 1 for
    B): the last token is then always eos, the position a GPT-2 classifier reads its logits from."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    eos_id = tokenizer.eos_token_id
    raw.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B:1 {EOS}:1",
                                                       special_tokens=[(EOS, eos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=PAD,
                                   model_max_length=1 << 20)


def make_tiny_classifier(path: str | Path, texts: Sequence[str] = (), labels: Sequence[int] = (), *,
                         prompts: Sequence[str] | None = None, num_labels: int = 1, vocab_size: int = 512,
                         steps: int = 60, seed: int = 0, **config: Any) -> Path:
    """A tiny GPT-2 sequence classifier (`GPT2ForSequenceClassification`), trained for a few steps when texts
    and labels are given, saved with its tokenizer to `path`.

    `num_labels=1`: a regression head trained with MSE towards the labels (0/1), like a scalar reward model;
    `num_labels=2`: a two-class head trained with cross-entropy. With prompts, each example is the pair
    (prompt, text).
    """
    import torch
    from transformers import GPT2ForSequenceClassification

    path = Path(path)
    corpus = list(texts) + list(prompts or []) or _lines(TRAIN_TEXT)
    tokenizer = classifier_tokenizer(train_tokenizer(corpus, vocab_size))
    with one_thread(seed):
        torch.manual_seed(seed)
        model = GPT2ForSequenceClassification(gpt2_config(tokenizer, num_labels=num_labels, **config))
        if steps and texts:
            enc = (tokenizer(list(prompts), list(texts), padding=True, return_tensors="pt") if prompts
                   else tokenizer(list(texts), padding=True, return_tensors="pt"))
            y = torch.tensor(list(labels), dtype=torch.float32 if num_labels == 1 else torch.long)
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
            model.train()
            for _ in range(steps):
                loss = model(**enc, labels=y).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_sentence_transformer(path: str | Path, texts: str | Iterable[str] = TRAIN_TEXT, *,
                                   hidden_size: int = 32, out_features: int | None = 24, vocab_size: int = 512,
                                   max_seq_length: int = 64, seed: int = 0) -> Path:
    """A random-init tiny BERT + mean pooling (+ a Dense projection to `out_features` when given), saved as a
    sentence-transformers folder (modules.json, 1_Pooling/config.json, ...). Its embeddings mean nothing;
    it exercises loading, the dimension read from the config files and the output type."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    path = Path(path)
    tmp = path.parent / f".{path.name}-bert"
    tokenizer = train_tokenizer(texts, vocab_size)
    with one_thread(seed):
        torch.manual_seed(seed)
        bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=2 * hidden_size,
                                    max_position_embeddings=max_seq_length, pad_token_id=tokenizer.pad_token_id,
                                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                         add_pooling_layer=False)
        tmp.mkdir(parents=True, exist_ok=True)
        bert.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        modules: list[Any] = [models.Transformer(str(tmp), max_seq_length=max_seq_length)]
        modules.append(models.Pooling(hidden_size, "mean"))
        if out_features:
            modules.append(models.Dense(hidden_size, out_features, activation_function=torch.nn.Tanh()))
        st = SentenceTransformer(modules=modules, device="cpu")
        st.save(str(path))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return path


def shuffled_words(text: str, seed: int = 0) -> str:
    """The same words in a seeded random order, line by line (same tokens, broken word order)."""
    rng = random.Random(seed)
    out = []
    for line in text.splitlines():
        words = line.split()
        rng.shuffle(words)
        out.append(" ".join(words))
    return "\n".join(out)
