"""perplexity_v1: a reference causal LM's perplexity of each document, and (optionally) its token probabilities.

This is the statistic behind "coverage narrowing" (ToEdit: synthetic data sits in a narrow low-perplexity
band of a reference model) and behind Shumailov et al.'s collapse curve (perplexity of each generation's
model on human text). The token probabilities feed the ToEdit 10-bin histogram.

Columns (the same for every config):

- `n_tokens` (int64): how many tokens were scored, i.e. given a probability from their prefix.
- `mean_logprob` (float64): the mean natural-log probability of the scored tokens.
- `perplexity` (float64): `exp(-mean_logprob)`.
- `token_probs` (list<float32>): the probability of each scored token given everything before it (within
  the window, see below), in text order; null unless `keep_token_probs=true`.

What is scored. The text is tokenized without the tokenizer's special tokens, then `add_bos` decides what goes
in front of it:

- `add_bos` unset (the default, "auto"): whatever the tokenizer itself puts in front of a text (Llama's
  `<s>`; GPT-2 tokenizers put nothing). A model is then scored the way it was trained.
- `add_bos=true`: that prefix, or if the tokenizer adds none, its bos token (eos when it has no bos, as GPT-2
  uses `<|endoftext|>` for both), so that the first text token is scored too.
- `add_bos=false`: nothing.

The first position has no prefix, so it is never scored, and prefix tokens themselves are never scored: with
no prefix a text of n tokens gives `n_tokens = n - 1` and `token_probs` holds tokens 2..n; with a prefix, all
n text tokens are scored. Empty (or null) text, or a single token without a prefix, scores nothing:
`n_tokens = 0`, `perplexity` and `mean_logprob` null, `token_probs` an empty list when kept.

Long documents (the standard Hugging Face "perplexity of fixed-length models" sliding window). A document
(prefix included) of at most `max_length` tokens (default: the model's context from its config) is one
window. A longer one is cut into windows of `max_length` tokens starting every `stride` tokens (default
`max_length // 2`; `1 <= stride < max_length`); each window scores only the tokens the previous window did not,
so every token is scored exactly once, and every token after the first window sees at least
`max_length - stride` tokens of left context. A smaller stride gives more context and costs more compute.

Batching. All windows of an Arrow batch are sorted by length (longest first) and run `batch_size` at a time,
right-padded with an attention mask, so padding is small and scores do not depend on the batch composition.
A forward pass is also limited to about 2^28 logits (1 GiB in float32) whatever `batch_size` says, so a
large vocabulary times long windows cannot run the machine out of memory. Log-probabilities are computed in
float32 from the model's logits (bfloat16 on a GPU by default; see `curator.models` for device, dtype and
threads).

Backends. `torch` (transformers, CPU or GPU); `vllm` (GPU only: the windows go to vLLM as token ids with
`SamplingParams(max_tokens=1, prompt_logprobs=0)`, which returns each prompt token's log-probability; vLLM
refuses prompts as long as its context, so windows there are at most context - 1 tokens); `auto` (the default)
picks vLLM on a CUDA device when it is installed, torch otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import models
from .. import teacher_forcing as tf
from ..errors import UsageError
from .base import Scorer
from .registry import register

BACKENDS = ("auto", "torch", "vllm")
# The windows, batching and logits budget live in `curator.teacher_forcing` (shared with the token editor);
# `plan_windows` stays importable from here.
plan_windows = tf.plan_windows


@dataclass(frozen=True)
class PerplexityConfig:
    model: str | None = None          # a local causal-LM checkpoint (required)
    batch_size: int = 16              # windows per forward pass
    max_length: int | None = None     # window length; default: the model's context
    stride: int | None = None         # sliding-window step for long documents; default: max_length // 2
    add_bos: bool | None = None       # None: the tokenizer's own prefix; see the module docstring
    keep_token_probs: bool = False
    backend: str = "auto"             # auto | torch | vllm
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    dtype: str = "auto"               # auto (float32 on CPU, bfloat16 on GPU) | float32 | bfloat16 | float16
    threads: int | None = None        # torch CPU threads; default: CURATOR_TORCH_THREADS or torch's default

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"perplexity_v1: batch_size={self.batch_size}: expected a positive integer")
        if self.max_length is not None and self.max_length < 2:
            raise UsageError(f"perplexity_v1: max_length={self.max_length}: expected at least 2")
        if self.stride is not None and self.stride < 1:
            raise UsageError(f"perplexity_v1: stride={self.stride}: expected a positive integer")
        if self.stride is not None and self.max_length is not None and self.stride >= self.max_length:
            raise UsageError(f"perplexity_v1: stride={self.stride} must be less than max_length={self.max_length} "
                             f"(each window needs at least one token of context)")
        if self.backend not in BACKENDS:
            raise UsageError(f"perplexity_v1: unknown backend '{self.backend}'; valid choices: {', '.join(BACKENDS)}")
        models.check_dtype(self.dtype)


@dataclass
class _Runtime:
    """What `setup()` loads; never pickled."""

    backend: str
    device: str
    tokenizer: Any
    model: Any              # a transformers model, or a vllm.LLM
    prefix: list[int]       # token ids put in front of every text
    max_length: int
    stride: int
    pad_id: int
    vocab: int


@register
class Perplexity(Scorer):
    name = "perplexity_v1"
    description = ("perplexity, mean log-probability and (optionally) token probabilities of each text under a "
                   "local causal LM (sliding window for long texts; torch or vLLM)")
    inputs = ("text",)
    columns = (
        pa.field("perplexity", pa.float64()),
        pa.field("mean_logprob", pa.float64()),
        pa.field("n_tokens", pa.int64()),
        pa.field("token_probs", pa.list_(pa.float32())),
    )
    Config = PerplexityConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        if not self.config.model:
            raise UsageError("perplexity_v1 needs a model: give the path of a local causal-LM checkpoint "
                             "(-o model=PATH, or --model PATH)")
        models.check_model_dir(self.config.model)  # fail on the driver, before any data is read
        self._rt: _Runtime | None = None

    # Executors pickle scorers to ship them to workers: the loaded model stays behind.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_rt"] = None
        return state

    # ---- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        if self._rt is not None:
            return
        cfg = self.config
        device = models.resolve_device(cfg.device)
        backend = cfg.backend
        if backend == "auto":
            backend = "vllm" if device.startswith("cuda") and models.vllm_available() else "torch"
        if backend == "vllm" and not device.startswith("cuda"):
            raise UsageError(f"perplexity_v1: backend=vllm needs a CUDA device, got device '{device}' "
                             f"(use backend=torch or backend=auto)")
        models.set_threads(cfg.threads, device)
        tokenizer = models.load_tokenizer(cfg.model)
        prefix = self._prefix(tokenizer)
        # vLLM rejects a prompt as long as its max_model_len: its windows stay below the context.
        max_length, stride, context = tf.window_sizes(
            cfg.model, tokenizer, cfg.max_length, cfg.stride, prefix=len(prefix), first=max(1, len(prefix)),
            below_context=backend == "vllm", label="perplexity_v1: ")
        if backend == "vllm":
            dtype = str(models.resolve_dtype(cfg.dtype, device)).removeprefix("torch.")
            model = models.load_vllm(cfg.model, dtype=dtype, max_model_len=context)
            vocab = 0
        else:
            model = models.load_causal_lm(cfg.model, device=device, dtype=cfg.dtype)
            vocab = int(getattr(model.config, "vocab_size", 0) or len(tokenizer))
        self._rt = _Runtime(backend, device, tokenizer, model, prefix, max_length, stride,
                            tf.pad_token_id(tokenizer), vocab)

    def _prefix(self, tokenizer: Any) -> list[int]:
        """The token ids to put in front of every text (see `add_bos` in the module docstring)."""
        if self.config.add_bos is False:
            return []
        own = tf.own_prefix(tokenizer)
        if own or self.config.add_bos is None:
            return own
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise UsageError(f"perplexity_v1: add_bos=true but the tokenizer of {self.config.model} has no bos "
                             f"or eos token")
        return [int(bos)]

    # ---- scoring ---------------------------------------------------------------------------------
    def score(self, batch: pa.Table) -> pa.Table:
        self.setup()
        rt = self._rt
        assert rt is not None
        texts = pc.fill_null(batch.column("text"), "").to_pylist()
        n = len(texts)
        packed = tf.pack(rt.tokenizer, texts, rt.prefix)
        wins = tf.windows(packed, max(1, len(rt.prefix)), rt.max_length, rt.stride)
        n_tokens = np.bincount(wins.doc, weights=wins.scored, minlength=n).astype(np.int64)
        # Log-probs land at their token's flat index; the windows own every position from `first` on exactly
        # once and nothing before it, so the owned positions in flat order are the scored tokens in document
        # (and text) order.
        flat_logprobs = np.empty(len(packed.flat), dtype=np.float64)
        if len(wins.lens):
            if rt.backend == "vllm":
                self._score_vllm(packed.flat, wins, flat_logprobs)
            else:
                self._score_torch(packed.flat, wins, flat_logprobs)
        logprobs = flat_logprobs[wins.owned()]
        return self._table(n, n_tokens, logprobs)

    def _score_torch(self, flat: np.ndarray, wins: tf.Windows, out: np.ndarray) -> None:
        """Run the windows through the model and write each owned token's log-prob to `out` (flat index)."""
        import torch

        rt = self._rt
        with torch.inference_mode():
            for block in tf.forward(rt.model, flat, wins, batch_size=self.config.batch_size, vocab=rt.vocab,
                                    pad_id=rt.pad_id, device=rt.device):
                out[block.dest] = tf.token_logprobs(block).cpu().numpy()

    def _score_vllm(self, flat: np.ndarray, wins: tf.Windows, out: np.ndarray) -> None:
        """The same windows through vLLM: `prompt_logprobs=0` returns, for every prompt position but the first,
        a dict holding the actual token's Logprob (and no alternatives). vLLM schedules and batches the
        requests itself, so `batch_size` does not apply."""
        from vllm import SamplingParams

        rt = self._rt
        try:  # no text to decode: only the log-probs are read (`detokenize` may leave SamplingParams one day)
            params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        except TypeError:
            params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        windows = [flat[s:s + n] for s, n in zip(wins.starts.tolist(), wins.lens.tolist())]
        prompts = [{"prompt_token_ids": w.tolist()} for w in windows]
        results = rt.model.generate(prompts, params, use_tqdm=False)  # in the order of `prompts`
        for w, k, start, result in zip(windows, wins.scored.tolist(), wins.starts.tolist(), results):
            entries = result.prompt_logprobs
            m = len(w)
            # vLLM's output is Python objects per position: this loop is over tokens of the windows, the
            # form the results come in (no tensor to slice).
            out[start + m - k:start + m] = [entries[t][int(w[t])].logprob for t in range(m - k, m)]

    def _table(self, n: int, n_tokens: np.ndarray, logprobs: np.ndarray) -> pa.Table:
        empty = n_tokens == 0
        sums = np.bincount(np.repeat(np.arange(n), n_tokens), weights=logprobs, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / n_tokens
        mean[empty] = 0.0
        perplexity = np.exp(-mean)
        if self.config.keep_token_probs:
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(n_tokens, out=offsets[1:])
            values = pa.array(np.exp(logprobs).astype(np.float32), type=pa.float32())
            token_probs = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32), type=pa.int32()), values)
        else:
            token_probs = pa.nulls(n, type=pa.list_(pa.float32()))
        return pa.table({
            "perplexity": pa.array(perplexity, type=pa.float64(), mask=empty),
            "mean_logprob": pa.array(mean, type=pa.float64(), mask=empty),
            "n_tokens": pa.array(n_tokens, type=pa.int64()),
            "token_probs": token_probs,
        })
