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
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import models
from ..errors import UsageError
from .base import Scorer
from .registry import register

BACKENDS = ("auto", "torch", "vllm")
# Logits (rows x positions x vocabulary) one forward pass may produce: 2^28 float32 = 1 GiB. GPT-2's
# 50k vocabulary at 1024 positions is 200 MB a row, so a batch of 16 full windows would need 3.3 GB.
_LOGITS_BUDGET = 1 << 28
# Selected logits turned into log-probabilities at a time: bounds the float32 temporaries of logsumexp.
_LSE_BUDGET = 1 << 24


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


def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of the given lengths: each element's row and its index within the row (flattened)."""
    total = int(lengths.sum())
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def plan_windows(lengths: np.ndarray, first: int, max_length: int, stride: int) -> dict[str, np.ndarray]:
    """The sliding windows of documents of `lengths` tokens (prefix included), in document order.

    Returns `doc`, `begin`, `end` (token positions within the document) and `scored` (how many of the window's
    last tokens are scored) per window. `first` is the first position that may be scored (1, or the prefix
    length). Windows start every `stride` tokens until one reaches the document's end; window j > 0 scores
    the tokens after the end of window j - 1, so each position >= first is scored exactly once.
    """
    L = np.asarray(lengths, dtype=np.int64)
    count = np.where(L <= max_length, 1, 1 + -(-(L - max_length) // stride))
    doc, j = _ragged(count)
    Ld = L[doc]
    begin = j * stride
    end = np.minimum(begin + max_length, Ld)
    prev_end = np.where(j == 0, first, np.minimum((j - 1) * stride + max_length, Ld))
    scored = np.maximum(end - prev_end, 0)
    return {"doc": doc, "begin": begin, "end": end, "scored": scored}


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
        context = models.context_length(cfg.model)
        if context is None:
            limit = getattr(tokenizer, "model_max_length", None)
            context = limit if isinstance(limit, int) and limit < 10_000_000 else None
        if context is None and cfg.max_length is None:
            raise UsageError(f"perplexity_v1: the config of {cfg.model} gives no context length; set max_length")
        if cfg.max_length is not None and context is not None and cfg.max_length > context:
            raise UsageError(f"perplexity_v1: max_length={cfg.max_length} exceeds the context of {cfg.model} "
                             f"({context} tokens)")
        max_length = cfg.max_length or context
        if backend == "vllm" and context is not None and max_length >= context:
            max_length = context - 1  # vLLM rejects a prompt as long as its max_model_len
        stride = cfg.stride if cfg.stride is not None else max(1, max_length // 2)
        if stride >= max_length:
            raise UsageError(f"perplexity_v1: stride={stride} must be less than max_length={max_length}")
        prefix = self._prefix(tokenizer)
        if len(prefix) >= max_length:
            raise UsageError(f"perplexity_v1: max_length={max_length} leaves no room after the {len(prefix)} "
                             f"prefix token(s)")
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        if backend == "vllm":
            dtype = str(models.resolve_dtype(cfg.dtype, device)).removeprefix("torch.")
            model = models.load_vllm(cfg.model, dtype=dtype, max_model_len=context)
            vocab = 0
        else:
            model = models.load_causal_lm(cfg.model, device=device, dtype=cfg.dtype)
            vocab = int(getattr(model.config, "vocab_size", 0) or len(tokenizer))
        self._rt = _Runtime(backend, device, tokenizer, model, prefix, max_length, stride, int(pad_id), vocab)

    def _prefix(self, tokenizer: Any) -> list[int]:
        """The token ids to put in front of every text (see `add_bos` in the module docstring)."""
        if self.config.add_bos is False:
            return []
        # What the tokenizer itself puts in front of a text: encode a probe with and without special tokens
        # and keep what comes before the plain encoding (trailing specials, such as an eos, are not wanted).
        probe = "Hello"
        plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
        full = tokenizer(probe, add_special_tokens=True)["input_ids"]
        own = next((full[:k] for k in range(len(full) - len(plain) + 1) if full[k:k + len(plain)] == plain), [])
        if own or self.config.add_bos is None:
            return list(own)
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
        encoded = rt.tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                               verbose=False)["input_ids"] if n else []
        text_lens = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
        p = len(rt.prefix)
        lengths = text_lens + p
        # All documents' tokens (prefix included) in one flat array; doc_start[i] is document i's offset.
        doc_start = np.cumsum(lengths) - lengths
        flat = np.empty(int(lengths.sum()), dtype=np.int64)
        rows, within = _ragged(text_lens)
        flat[doc_start[rows] + p + within] = np.fromiter(chain.from_iterable(encoded), dtype=np.int64,
                                                         count=int(text_lens.sum()))
        for k, token in enumerate(rt.prefix):
            flat[doc_start + k] = token

        win = plan_windows(lengths, max(1, p), rt.max_length, rt.stride)
        scored = win["scored"]
        n_tokens = np.bincount(win["doc"], weights=scored, minlength=n).astype(np.int64)
        # Windows are in document order, so exclusive sums of `scored` place each window's log-probs in one
        # flat array that is also in document (and text) order.
        out_offset = np.cumsum(scored) - scored
        logprobs = np.empty(int(scored.sum()), dtype=np.float64)
        live = np.flatnonzero(scored > 0)
        if len(live):
            starts = doc_start[win["doc"][live]] + win["begin"][live]
            lens = win["end"][live] - win["begin"][live]
            if rt.backend == "vllm":
                self._score_vllm(flat, starts, lens, scored[live], out_offset[live], logprobs)
            else:
                self._score_torch(flat, starts, lens, scored[live], out_offset[live], logprobs)
        return self._table(n, n_tokens, logprobs)

    def _score_torch(self, flat: np.ndarray, starts: np.ndarray, lens: np.ndarray, scored: np.ndarray,
                     out_offset: np.ndarray, out: np.ndarray) -> None:
        """Run the windows through the model, longest first, and write each scored token's log-prob to `out`."""
        import torch

        rt = self._rt
        order = np.argsort(-lens, kind="stable")
        i = 0
        with torch.inference_mode():
            while i < len(order):
                longest = int(lens[order[i]])
                rows = max(1, min(self.config.batch_size, _LOGITS_BUDGET // max(1, longest * rt.vocab)))
                pick = order[i:i + rows]
                i += rows
                b_lens, b_scored = lens[pick], scored[pick]
                r, c = _ragged(b_lens)
                ids = np.full((len(pick), longest), rt.pad_id, dtype=np.int64)
                ids[r, c] = flat[np.repeat(starts[pick], b_lens) + c]
                mask = np.zeros((len(pick), longest), dtype=np.int64)
                mask[r, c] = 1
                ids_t = torch.from_numpy(ids).to(rt.device)
                logits = rt.model(input_ids=ids_t, attention_mask=torch.from_numpy(mask).to(rt.device),
                                  use_cache=False).logits
                # The scored tokens are the last `scored` of each window; token t is predicted at t - 1.
                sr, sk = _ragged(b_scored)
                tcol = np.repeat(b_lens - b_scored, b_scored) + sk
                sr_t = torch.from_numpy(sr).to(rt.device)
                tcol_t = torch.from_numpy(tcol).to(rt.device)
                targets = ids_t[sr_t, tcol_t]
                values = torch.empty(len(sr), dtype=torch.float32, device=rt.device)
                step = max(1, _LSE_BUDGET // logits.shape[-1])
                for s in range(0, len(sr), step):
                    x = logits[sr_t[s:s + step], tcol_t[s:s + step] - 1].float()
                    values[s:s + step] = (x.gather(1, targets[s:s + step, None]).squeeze(1)
                                          - torch.logsumexp(x, dim=1))
                dest = np.repeat(out_offset[pick], b_scored) + sk
                out[dest] = values.cpu().numpy()

    def _score_vllm(self, flat: np.ndarray, starts: np.ndarray, lens: np.ndarray, scored: np.ndarray,
                    out_offset: np.ndarray, out: np.ndarray) -> None:
        """The same windows through vLLM: `prompt_logprobs=0` returns, for every prompt position but the first,
        a dict holding the actual token's Logprob (and no alternatives). vLLM schedules and batches the
        requests itself, so `batch_size` does not apply."""
        from vllm import SamplingParams

        rt = self._rt
        try:  # no text to decode: only the log-probs are read (`detokenize` may leave SamplingParams one day)
            params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        except TypeError:
            params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        windows = [flat[s:s + n] for s, n in zip(starts.tolist(), lens.tolist())]
        prompts = [{"prompt_token_ids": w.tolist()} for w in windows]
        results = rt.model.generate(prompts, params, use_tqdm=False)  # in the order of `prompts`
        for w, k, offset, result in zip(windows, scored.tolist(), out_offset.tolist(), results):
            entries = result.prompt_logprobs
            m = len(w)
            # vLLM's output is Python objects per position: this loop is over tokens of the windows, the
            # form the results come in (no tensor to slice).
            out[offset:offset + k] = [entries[t][int(w[t])].logprob for t in range(m - k, m)]

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
