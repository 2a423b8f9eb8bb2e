"""Teacher-forced passes of a causal LM over tokenised documents: sliding windows, length-sorted padded
batches, and the log-probability (or the logits) of every position a window owns.

Shared by `perplexity_v1` (`curator.scorers.perplexity`) and the ToEdit token editor
(`curator.transforms.token_edit`), which must see documents through exactly the same windows: an edit decided
at a position is then made with the same context as the perplexity reported for it. The batching helpers
(`length_batches`, `padded`) also serve the reward model.

The pipeline, in the order a caller uses it:

1. `own_prefix` / `pad_token_id` / `window_sizes` (at setup): what goes in front of a text, what pads a row,
   and the window length and stride for a model.
2. `pack` (per chunk of texts): tokenise without special tokens and lay out all documents, prefix included,
   in one flat int64 array.
3. `windows` (on `plan_windows`): the sliding windows of the packed documents that score something.
4. `forward`: the windows through the model, longest first, `batch_size` at a time (fewer when the logits
   budget says so), right-padded with an attention mask; yields, block by block, the float32 logits that
   predict each owned position and the token actually there. `token_logprobs` turns a block into
   log-probabilities; the editor also takes a top-k from it.

Windows (the Hugging Face "perplexity of fixed-length models" sliding window): a document of at most
`max_length` tokens is one window; a longer one is cut into windows of `max_length` tokens starting every
`stride` tokens, and window j > 0 owns the positions after the end of window j - 1, so every position from
`first` on is owned by exactly one window, with at least `max_length - stride` tokens of left context after
the first window. Sorting by length keeps padding small, and a right-padded row under an attention mask gives
the same logits as the row alone, so results do not depend on how documents are grouped.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from . import models
from .errors import UsageError

# Logits (rows x positions x vocabulary) one forward pass may produce: 2^28 float32 = 1 GiB. GPT-2's 50k
# vocabulary at 1024 positions is 200 MB a row, so a batch of 16 full windows would need 3.3 GB.
LOGITS_BUDGET = 1 << 28
# Selected logits turned into float32 (and log-probabilities) at a time: bounds the temporaries of logsumexp.
LSE_BUDGET = 1 << 24


# --------------------------------------------------------------------------- setup: prefix, padding, windows


def own_prefix(tokenizer: Any) -> list[int]:
    """The token ids a tokenizer puts in front of a text by itself (Llama's `<s>`; nothing for GPT-2).

    A probe is encoded with and without special tokens and what comes before the plain encoding is kept
    (trailing specials, such as an eos, are not wanted)."""
    probe = "Hello"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    return list(next((full[:k] for k in range(len(full) - len(plain) + 1) if full[k:k + len(plain)] == plain), []))


def pad_token_id(tokenizer: Any) -> int:
    """The id right-padding uses: the pad token, else eos, else 0. Under the attention mask and a causal model
    its value never reaches a real position, so any id does."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    return int(pad)


def window_sizes(path: str | Path, tokenizer: Any, max_length: int | None, stride: int | None, *, prefix: int,
                 first: int, below_context: bool = False, label: str = "") -> tuple[int, int, int | None]:
    """`(max_length, stride, context)` for a model: the configured values checked against its context, or
    the defaults (the context; `max_length // 2`).

    `prefix` is the number of tokens put in front of every text and `first` the first position scored; a
    window must be longer than `first`. `below_context` keeps windows shorter than the context (vLLM refuses
    a prompt as long as its `max_model_len`). `label` prefixes the error messages (a scorer's name)."""
    context = models.context_length(path, tokenizer)
    if context is None and max_length is None:
        raise UsageError(f"{label}the config of {path} gives no context length; set max_length")
    if max_length is not None and context is not None and max_length > context:
        raise UsageError(f"{label}max_length={max_length} exceeds the context of {path} ({context} tokens)")
    size = max_length or context
    if below_context and context is not None and size >= context:
        size = context - 1
    step = stride if stride is not None else max(1, size // 2)
    if step >= size:
        raise UsageError(f"{label}stride={step} must be less than max_length={size}")
    if first >= size:
        raise UsageError(f"{label}max_length={size} leaves no room after the {prefix} prefix token(s)")
    return int(size), int(step), context


# --------------------------------------------------------------------------- documents and windows


def ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of the given lengths: each element's row and its index within the row (flattened)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)


@dataclass
class Packed:
    """Documents laid out in one flat array, each as prefix + text tokens."""

    flat: np.ndarray        # [N] int64 token ids of all documents, prefix included
    lengths: np.ndarray     # [n] tokens per document, prefix included
    text_lens: np.ndarray   # [n] text tokens per document
    doc_start: np.ndarray   # [n] offset of each document in `flat`
    text_at: np.ndarray     # [T] flat index of each text token, in document (and text) order


def pack(tokenizer: Any, texts: list[str], prefix: list[int]) -> Packed:
    """Tokenise `texts` without special tokens (`prefix` stands for them) and pack them with `prefix`."""
    n = len(texts)
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                        verbose=False)["input_ids"] if n else []
    text_lens = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    p = len(prefix)
    lengths = text_lens + p
    doc_start = np.cumsum(lengths) - lengths
    flat = np.empty(int(lengths.sum()), dtype=np.int64)
    rows, within = ragged(text_lens)
    text_at = doc_start[rows] + p + within
    # The tokenizer returns Python lists: one pass over their concatenation, no per-document copy.
    flat[text_at] = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(text_lens.sum()))
    for k, token in enumerate(prefix):
        flat[doc_start + k] = token
    return Packed(flat, lengths, text_lens, doc_start, text_at)


def plan_windows(lengths: np.ndarray, first: int, max_length: int, stride: int) -> dict[str, np.ndarray]:
    """The sliding windows of documents of `lengths` tokens (prefix included), in document order.

    Returns `doc`, `begin`, `end` (token positions within the document) and `scored` (how many of the window's
    last tokens are scored) per window. `first` is the first position that may be scored (1, or the prefix
    length). Windows start every `stride` tokens until one reaches the document's end; window j > 0 scores
    the tokens after the end of window j - 1, so each position >= first is scored exactly once.
    """
    L = np.asarray(lengths, dtype=np.int64)
    count = np.where(L <= max_length, 1, 1 + -(-(L - max_length) // stride))
    doc, j = ragged(count)
    Ld = L[doc]
    begin = j * stride
    end = np.minimum(begin + max_length, Ld)
    prev_end = np.where(j == 0, first, np.minimum((j - 1) * stride + max_length, Ld))
    scored = np.maximum(end - prev_end, 0)
    return {"doc": doc, "begin": begin, "end": end, "scored": scored}


@dataclass
class Windows:
    """The windows that score at least one position, in document order, located in a `Packed.flat`."""

    doc: np.ndarray         # document of each window
    starts: np.ndarray      # flat index of the window's first token
    lens: np.ndarray        # tokens in the window
    scored: np.ndarray      # how many of its last tokens it owns (> 0)

    def owned(self) -> np.ndarray:
        """The flat index of every owned position, window by window (so in document order)."""
        _, k = ragged(self.scored)
        return np.repeat(self.starts + self.lens - self.scored, self.scored) + k


def windows(packed: Packed, first: int, max_length: int, stride: int) -> Windows:
    """The windows of `packed` (see `plan_windows`) that own a position; empty documents have none."""
    win = plan_windows(packed.lengths, first, max_length, stride)
    live = np.flatnonzero(win["scored"] > 0)
    doc = win["doc"][live]
    return Windows(doc, packed.doc_start[doc] + win["begin"][live], win["end"][live] - win["begin"][live],
                   win["scored"][live])


# --------------------------------------------------------------------------- batches and the forward pass


def length_batches(lens: np.ndarray, batch_size: int, per_token: int = 0) -> Iterator[np.ndarray]:
    """Indices into `lens`, longest first, `batch_size` at a time.

    Longest first: the first batch shows the peak memory, and similar lengths share a batch (little padding).
    With `per_token` (a vocabulary size) a batch also stays within `LOGITS_BUDGET` logits, one row at least."""
    order = np.argsort(-np.asarray(lens), kind="stable")
    i = 0
    while i < len(order):
        rows = batch_size
        if per_token:
            rows = max(1, min(batch_size, LOGITS_BUDGET // max(1, int(lens[order[i]]) * per_token)))
        yield order[i:i + rows]
        i += rows


def padded(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows `flat[starts[i]:starts[i] + lens[i]]` right-padded with `pad` to the longest, and their attention
    mask (1 on real tokens), both int64 [rows, longest]."""
    r, c = ragged(lens)
    width = int(lens.max()) if len(lens) else 0
    ids = np.full((len(lens), width), pad, dtype=np.int64)
    ids[r, c] = flat[np.repeat(starts, lens) + c]
    mask = np.zeros((len(lens), width), dtype=np.int64)
    mask[r, c] = 1
    return ids, mask


@dataclass
class Block:
    """Owned positions of some windows, and what the model said about them."""

    dest: np.ndarray        # [m] flat index (in `Packed.flat`) of each position
    logits: Any             # [m, vocab] float32 tensor: the logits that predict the token at each position
    targets: Any            # [m] int64 tensor: the token at each position


def forward(model: Any, flat: np.ndarray, wins: Windows, *, batch_size: int, vocab: int, pad_id: int,
            device: str) -> Iterator[Block]:
    """Run `wins` through a causal LM (longest first, see `length_batches`) and yield their owned positions in
    blocks of at most `LSE_BUDGET` logits, so float32 copies stay small whatever the model's dtype.

    Blocks come in no useful order (longest windows first): write results by `Block.dest`. The blocks'
    tensors are on `device`. The pass runs under `torch.inference_mode()`, which stays on while the caller
    holds a block; callers loop inside `torch.inference_mode()` too, so that their own work on the blocks does
    not depend on how far the generator has run."""
    import torch

    with torch.inference_mode():
        for pick in length_batches(wins.lens, batch_size, vocab):
            b_lens, b_scored = wins.lens[pick], wins.scored[pick]
            ids, mask = padded(flat, wins.starts[pick], b_lens, pad_id)
            ids_t = torch.from_numpy(ids).to(device)
            logits = model(input_ids=ids_t, attention_mask=torch.from_numpy(mask).to(device), use_cache=False).logits
            # The owned tokens are the last `scored` of each window; token t is predicted at t - 1.
            sr, sk = ragged(b_scored)
            tcol = np.repeat(b_lens - b_scored, b_scored) + sk
            dest = np.repeat(wins.starts[pick], b_scored) + tcol
            sr_t = torch.from_numpy(sr).to(device)
            tcol_t = torch.from_numpy(tcol).to(device)
            targets = ids_t[sr_t, tcol_t]
            step = max(1, LSE_BUDGET // logits.shape[-1])
            for s in range(0, len(sr), step):
                x = logits[sr_t[s:s + step], tcol_t[s:s + step] - 1].float()
                yield Block(dest[s:s + step], x, targets[s:s + step])


def token_logprobs(block: Block) -> Any:
    """The natural-log probability of each target token of `block` (a float32 tensor on its device)."""
    import torch

    x = block.logits
    return x.gather(1, block.targets[:, None]).squeeze(1) - torch.logsumexp(x, dim=1)
