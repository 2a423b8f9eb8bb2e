"""Generation: sample k completions per prompt from a local causal LM and write them as `samples` rows.

Two backends behind one function, `generate(store, ...)`:

- `hf`: Hugging Face transformers `generate` (CPU or GPU; the CPU fallback the tests use). Left-padded
  batches, KV cache on, every prompt's `samples_per_prompt` rows expanded in the same batch (what
  `num_return_sequences` does; see "Determinism" for why the expansion is done here).
- `vllm`: `vllm.LLM(...).generate(prompts, [SamplingParams(n=k, seed=..., ...)])` (the production path on a
  GPU); `tensor_parallel_size` / `data_parallel_size` and any other engine option are passed through.
  `backend="auto"` is vLLM when a CUDA GPU is visible and vLLM is installed, else `hf`.

**Prompts** come from a store generation (`prompts_from`) or from a file (`prompts_file`):

- from the store: each distinct `prompt` of that generation is one prompt, its parent the sample with the
  smallest `sample_id` among those carrying it (its `reference` is carried to the rows); each sample
  *without* a prompt gives a **prefix prompt**: its first `prefix_tokens` tokens (model tokenizer; the
  prefix is cut from the original text at the token's character offset, so it is verbatim). A
  prefix-prompted row is a whole document: its `text` is prefix + continuation (what a language model
  trains on), its `prompt` the prefix, its `parent_id` the sample the prefix came from.
- from a file: JSONL (one object per line with a `prompt` field, or the field `prompt_field`, and an
  optional `reference`), else plain text (one prompt per non-blank line); duplicates are generated once;
  `parent_id` is null (there is no source sample); `source_file`/`source_row` are the file and the
  prompt's first line.

Rows generated from prompted input have `text` = the completion only. Prompts longer than the model's
context minus `max_new_tokens` keep their last tokens (the model sees the end of the prompt).

**What is written** (one transaction, command `generate`, the model in the run's `checkpoints`, tag
`gen-<generation>`, n-gram statistics of the generation recomputed): `samples` rows of origin `synthetic`,
`model` = the checkpoint's resolved path, `decoding` = JSON of every sampling parameter, the seed, the
backend and the row's `sample_index` within its prompt. Ids are computed exactly as ingest computes them
(`IdHasher`, generation `generation`), with `external_id` = `<parent or prompt id>/<seed>/<sample_index>`: two
identical completions of one prompt are two draws and stay two rows (a collapsing model repeating itself must
show in the statistics), while a re-run with the same seed gives the same texts, hence the same ids, and adds
nothing. Empty completions (the model stopped at once) are not written; they are counted.

**Determinism (hf backend).** The sampler is Gumbel-max with counter-based noise, not torch's global RNG: at
decoding step t the next token is argmax over the allowed tokens of `logits / temperature + g`, where g is
Gumbel(0, 1) noise that is a pure function of (seed, prompt key, sample index, t, token id) (splitmix64, as
`curator.transforms.token_edit`). That *is* a draw from softmax(logits / temperature) restricted by top-k and
top-p, and it makes a row's text independent of the batch size, of which prompts share a batch, of their
order and of any other RNG use in the process. Guaranteed: the same (model files, prompts, parameters, seed)
on the same device type and library versions give the same texts. Not guaranteed: across devices (a GPU's
bf16 logits differ from CPU float32) or where padding changes a logit by float rounding (~1e-7 on CPU) that
flips a near-tie between two candidates, which is rare but possible. `temperature=0` is greedy decoding.

**Determinism (vllm backend).** Each prompt gets its own `SamplingParams.seed` derived from (seed, prompt
key), so its k samples do not depend on the other requests of the batch; vLLM documents per-request seeds as
reproducible on the same hardware and engine configuration, not across versions or parallel layouts.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import models
from .errors import UsageError
from .progress import NullReporter, Reporter
from .store import Store

BACKENDS = ("auto", "hf", "vllm")
SAMPLER = "gumbel_max_v1"
_GOLDEN = 0x9E3779B97F4A7C15
_GOLDEN2 = 0xC2B2AE3D27D4EB4F
_M64 = (1 << 64) - 1


@dataclass
class GenerateResult:
    run_id: str
    store_version: int
    generation: int
    model: str
    backend: str
    prompts: int = 0            # distinct prompts generated from
    generated: int = 0          # completions produced (prompts x samples_per_prompt)
    rows_added: int = 0         # new `samples` rows
    duplicates: int = 0         # completions whose id already existed (a re-run): not written again
    empty: int = 0              # empty completions: not written
    new_tokens: int = 0         # tokens generated (up to and without eos)
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplingConfig:
    """Every knob that shapes a completion; all of it goes into `samples.decoding`."""

    samples_per_prompt: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0              # 0: no top-k cut
    max_new_tokens: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def integer(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not integer(self.samples_per_prompt) or self.samples_per_prompt < 1:
            raise UsageError(f"samples_per_prompt must be an integer >= 1, got {self.samples_per_prompt!r}")
        if not number(self.temperature) or self.temperature < 0:
            raise UsageError(f"temperature must be a number >= 0 (0: greedy), got {self.temperature!r}")
        if not number(self.top_p) or not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not integer(self.top_k) or self.top_k < 0:
            raise UsageError(f"top_k must be an integer >= 0 (0: no top-k cut), got {self.top_k!r}")
        if not integer(self.max_new_tokens) or self.max_new_tokens < 1:
            raise UsageError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        if not integer(self.seed) or not 0 <= self.seed <= _M64:
            raise UsageError(f"seed must be an integer in [0, 2**64), got {self.seed!r}")

    def decoding(self, backend: str, prefix_tokens: int | None) -> dict[str, Any]:
        d: dict[str, Any] = {"backend": backend, "temperature": self.temperature, "top_p": self.top_p,
                             "top_k": self.top_k, "max_new_tokens": self.max_new_tokens, "seed": self.seed,
                             "samples_per_prompt": self.samples_per_prompt}
        if backend == "hf":
            d["sampler"] = SAMPLER
        if prefix_tokens is not None:
            d["prefix_tokens"] = prefix_tokens
        return d


# --------------------------------------------------------------------------- prompts


@dataclass
class Prompts:
    """The prompts of a run, one row each (deterministic order)."""

    prompt: list[str]              # what the model is given
    parent_id: list[str | None]    # source sample (store prompts), None for a file
    prefix: list[bool]             # a prefix prompt: the row's text is prompt + completion
    source_file: list[str]
    source_row: list[int]
    reference: list[str | None]    # gold answer carried to the rows (a verifier checks generated answers)

    def __len__(self) -> int:
        return len(self.prompt)

    def keys(self) -> list[str]:
        """What identifies a prompt for the noise and `external_id`: its parent sample, else the prompt's md5."""
        return [p if p is not None else hashlib.md5(t.encode("utf-8", "surrogatepass")).hexdigest()
                for p, t in zip(self.parent_id, self.prompt)]


def prompts_from_store(store: Store, generation: int, tokenizer: Any, prefix_tokens: int) -> Prompts:
    """Distinct prompts of `generation`, and prefix prompts of its prompt-less samples (module docstring)."""
    import polars as pl

    cols = ["sample_id", "text", "prompt", "reference", "source_file", "source_row"]
    rows = pl.from_arrow(store.read("samples", columns=cols, filter=f"generation = {generation}"))
    if rows.height == 0:
        raise UsageError(f"generation {generation} has no samples: no prompts to generate from")
    # The parent of a prompt is its smallest sample id: stable whatever order Lance returns the rows in.
    prompted = (rows.filter(pl.col("prompt").is_not_null() & (pl.col("prompt").str.len_chars() > 0))
                .sort("sample_id").unique("prompt", keep="first", maintain_order=True))
    bare = rows.filter(pl.col("prompt").is_null() & (pl.col("text").str.len_chars() > 0)).sort("sample_id")
    prefixes = _prefixes(tokenizer, bare["text"].to_list(), prefix_tokens)
    return Prompts(
        prompt=prompted["prompt"].to_list() + prefixes,
        parent_id=prompted["sample_id"].to_list() + bare["sample_id"].to_list(),
        prefix=[False] * prompted.height + [True] * bare.height,
        source_file=prompted["source_file"].to_list() + bare["source_file"].to_list(),
        source_row=prompted["source_row"].to_list() + bare["source_row"].to_list(),
        reference=prompted["reference"].to_list() + [None] * bare.height,
    )


def _prefixes(tokenizer: Any, texts: list[str], n: int) -> list[str]:
    """The first `n` tokens of each text, cut from the text itself (verbatim, no decode round trip)."""
    if not texts:
        return []
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for text, offsets in zip(texts, enc["offset_mapping"]):
            ends = [e for _, e in offsets[:n]]
            out.append(text[:max(ends)] if ends else text)
        return out
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return tokenizer.batch_decode([i[:n] for i in ids], skip_special_tokens=True, clean_up_tokenization_spaces=False)


def prompts_from_file(path: str | Path, prompt_field: str = "prompt") -> Prompts:
    """Prompts of a JSONL file (field `prompt_field`) or of a text file (one per non-blank line)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no prompts file at {path}")
    lines = p.read_text(encoding="utf-8").splitlines()
    first = next((line for line in lines if line.strip()), None)
    jsonl = p.suffix.lower() in (".jsonl", ".json", ".ndjson") or (first is not None and first.lstrip().startswith("{"))
    seen: dict[str, int] = {}
    references: dict[str, str | None] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if jsonl:
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"{p}:{number}: not a JSON object ({exc})") from None
            value = obj.get(prompt_field) if isinstance(obj, dict) else None
            if not isinstance(value, str):
                raise UsageError(f"{p}:{number}: expected a string field '{prompt_field}', got {value!r}")
            ref = obj.get("reference")
        else:
            value, ref = line, None
        if value.strip() and value not in seen:
            seen[value] = number
            references[value] = ref if isinstance(ref, str) else None
    return Prompts(prompt=list(seen), parent_id=[None] * len(seen), prefix=[False] * len(seen),
                   source_file=[str(p)] * len(seen), source_row=list(seen.values()),
                   reference=list(references.values()))


# --------------------------------------------------------------------------- counter-based noise


def _mix64_t(x: Any) -> Any:
    """splitmix64's finaliser on an int64 tensor holding uint64 bits (torch has no uint64 arithmetic).

    int64 multiplication wraps like uint64's; right shifts are arithmetic, so the sign-extended high bits are
    masked off to get the logical shift."""
    def lsr(v: Any, s: int) -> Any:
        return (v >> s) & ((1 << (64 - s)) - 1)

    x = x ^ lsr(x, 30)
    x = x * _signed(0xBF58476D1CE4E5B9)
    x = x ^ lsr(x, 27)
    x = x * _signed(0x94D049BB133111EB)
    return x ^ lsr(x, 31)


def _signed(u: int) -> int:
    u &= _M64
    return u - (1 << 64) if u >= 1 << 63 else u


def row_keys(prompt_keys: Sequence[str], seed: int, samples_per_prompt: int) -> np.ndarray:
    """uint64 noise key per (prompt, sample index), prompt-major: the token editor's document key of the
    prompt key (md5 hex), mixed with the sample index."""
    from .stats.tokenize import mix64
    from .transforms.token_edit import doc_keys

    doc = doc_keys(pa.array(list(prompt_keys), type=pa.string()), seed)  # any key: non-md5 ones by their md5
    idx = np.arange(samples_per_prompt, dtype=np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        keys = doc[:, None] ^ (idx[None, :] * np.uint64(_GOLDEN))
    return mix64(keys.reshape(-1).copy())


class GumbelSampler:
    """A logits processor that adds Gumbel noise keyed by (row key, step, token id); greedy decoding on the
    result is then sampling (Gumbel-max), reproducible whatever the batch layout."""

    def __init__(self, keys: Any, prompt_len: int, vocab: int, device: Any) -> None:
        import torch

        self.keys = keys                                  # int64 [B]
        self.prompt_len = prompt_len                      # padded prompt length: step = length - this
        tok = torch.arange(vocab, dtype=torch.int64, device=device)
        self.tok_term = tok * _signed(_GOLDEN2)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        step = input_ids.shape[1] - self.prompt_len
        a = _mix64_t(self.keys ^ _signed(step * _GOLDEN))
        tokens = torch.arange(scores.shape[1], device=scores.device)[None, :]
        return (scores.to(torch.float64) + self._gumbel(a[:, None], tokens)).to(scores.dtype)

    def _gumbel(self, a: Any, token_ids: Any) -> Any:
        """Gumbel(0, 1) noise of (row key `a`, token id) for every token id given (float64)."""
        import torch

        h = _mix64_t(a ^ self.tok_term[token_ids])
        # 53 random bits -> u in (0, 1), then Gumbel(0, 1); float64 so that -log(-log u) keeps its tails.
        u = (((h >> 11) & ((1 << 53) - 1)).to(torch.float64) + 0.5) * (1.0 / (1 << 53))
        return -torch.log(-torch.log(u))


class TruncatedGumbelSampler(GumbelSampler):
    """Temperature, top-k and top-p, then Gumbel-max, in one processor, without sorting the vocabulary.

    Draws what `TemperatureLogitsWarper` + `TopKLogitsWarper` + `TopPLogitsWarper` + `GumbelSampler` draw (a
    token's noise depends only on its id), at a fraction of the cost: transformers' top-p sorts the whole
    vocabulary at every step, which cost more than the tiny models' forward pass. Gumbel-max over a set is the
    argmax of the perturbed logits over that set, so the draw is found by rejection instead: take the argmax
    c over every (top-k) token; c is in the nucleus when the probability mass of the tokens strictly more
    likely than c is below `top_p` (transformers' rule; the most likely token always is); if not, neither is
    any token at most as likely as c, so those are dropped and the argmax taken again. A row needs 1 / top_p
    rounds on average, each one O(vocabulary). Top-k keeps every token tied with the k-th logit, as
    transformers does; probabilities are float64, so a token exactly on the nucleus edge may differ from
    transformers' float32 sums. Returns 0 at the drawn token and -inf elsewhere (greedy search takes it).
    """

    def __init__(self, keys: Any, prompt_len: int, vocab: int, device: Any, *, temperature: float, top_k: int,
                 top_p: float) -> None:
        super().__init__(keys, prompt_len, vocab, device)
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.to(torch.float64) / self.temperature
        rows, vocab = logits.shape
        if self.top_k and self.top_k < vocab:
            kth = torch.topk(logits, self.top_k, dim=1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        step = input_ids.shape[1] - self.prompt_len
        a = _mix64_t(self.keys ^ _signed(step * _GOLDEN))
        tokens = torch.arange(vocab, device=logits.device)[None, :]
        perturbed = logits + self._gumbel(a[:, None], tokens)
        choice = perturbed.argmax(1)
        if self.top_p < 1:
            probs = torch.softmax(logits, dim=1)
            todo = torch.arange(rows, device=logits.device)
            while todo.numel():
                p = probs[todo]
                pc = p.gather(1, choice[todo, None])
                outside = (p * (p > pc)).sum(1) >= self.top_p
                todo = todo[outside]
                if not todo.numel():
                    break
                perturbed[todo] = perturbed[todo].masked_fill(probs[todo] <= pc[outside], float("-inf"))
                choice[todo] = perturbed[todo].argmax(1)
        out = torch.full(scores.shape, float("-inf"), dtype=scores.dtype, device=scores.device)
        return out.scatter_(1, choice[:, None], 0.0)


# --------------------------------------------------------------------------- backends


def _context_budget(path: Path, tokenizer: Any, max_new_tokens: int) -> int | None:
    context = models.context_length(path, tokenizer)
    if context is None:
        return None
    if max_new_tokens >= context:
        raise UsageError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context of "
                         f"{context} tokens")
    return context - max_new_tokens


def _encode(tokenizer: Any, prompts: list[str], budget: int | None) -> list[list[int]]:
    ids = tokenizer(prompts, add_special_tokens=True)["input_ids"]
    start = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    out = []
    for i, row in enumerate(ids):
        row = row or start
        if not row:
            raise UsageError(f"prompt {prompts[i]!r} encodes to no token and the tokenizer has no bos token")
        out.append(row[-budget:] if budget else row)  # keep the end of a long prompt: what the model continues
    return out


class _FinishedRowsPadding(logging.Filter):
    """Drops transformers' "passing in an attention_mask" warning. The mask is passed; the warning comes from
    decoding steps after a row has ended, where generate feeds the pad token to a forward pass that no longer
    receives the mask (the row's output is cut at its eos anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "strongly recommend passing in an `attention_mask`" not in record.getMessage()


def _hf_generate(path: Path, tokenizer: Any, ids: list[list[int]], keys: np.ndarray, cfg: SamplingConfig,
                 batch_size: int, device: str, dtype: str, threads: int | None, bar: Any) -> list[list[int]]:
    """Completion token ids per (prompt, sample index), prompt-major, cut at the first eos."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList
    from transformers.generation.logits_process import TemperatureLogitsWarper

    from .teacher_forcing import pad_token_id

    dev = models.resolve_device(device)
    models.set_threads(threads, dev)
    model = models.load_causal_lm(path, device=dev, dtype=dtype)
    padding_log = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _FinishedRowsPadding) for f in padding_log.filters):
        padding_log.addFilter(_FinishedRowsPadding())
    vocab = int(model.get_output_embeddings().weight.shape[0])
    pad = pad_token_id(tokenizer)
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    k = cfg.samples_per_prompt
    # Greedy search over processed scores: the warpers cut the support, GumbelSampler turns argmax into a draw.
    # A fresh GenerationConfig so that a checkpoint's generation_config.json (do_sample, top_k=50, ...) cannot
    # add its own warpers or sampling.
    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=cfg.max_new_tokens, pad_token_id=pad,
                               eos_token_id=eos_ids or None, use_cache=True)
    keys_t = torch.from_numpy(keys.view(np.int64).copy())
    out: list[list[int]] = [[] for _ in range(len(ids) * k)]
    lengths = np.array([len(r) for r in ids])
    # Longest prompts first, batches of whole prompts (their k rows together): little padding per batch.
    order = np.argsort(-lengths, kind="stable")
    per_batch = max(1, batch_size // k)
    with torch.inference_mode():
        for start in range(0, len(order), per_batch):
            chosen = order[start:start + per_batch]
            rows = np.repeat(chosen * k, k) + np.tile(np.arange(k), len(chosen))   # output slots, prompt-major
            seqs = [torch.tensor(ids[p], dtype=torch.long) for p in chosen for _ in range(k)]
            input_ids = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=pad,
                                                        padding_side="left")
            lens = torch.tensor([len(s) for s in seqs])
            width = input_ids.shape[1]
            mask = (torch.arange(width)[None, :] >= (width - lens)[:, None]).long()
            procs = LogitsProcessorList()
            row_keys_t = keys_t[torch.from_numpy(rows)].to(dev)
            if cfg.temperature > 0 and (cfg.top_k or cfg.top_p < 1):
                procs.append(TruncatedGumbelSampler(row_keys_t, width, vocab, dev, temperature=cfg.temperature,
                                                    top_k=cfg.top_k, top_p=cfg.top_p))
            elif cfg.temperature > 0:
                procs.append(TemperatureLogitsWarper(cfg.temperature))
                procs.append(GumbelSampler(row_keys_t, width, vocab, dev))
            gen = model.generate(input_ids=input_ids.to(dev), attention_mask=mask.to(dev),
                                 generation_config=gen_cfg, logits_processor=procs)
            new = gen[:, width:].cpu()
            # Cut each row at its first eos (what follows is padding).
            if eos_ids and new.shape[1]:
                is_eos = torch.isin(new, torch.tensor(eos_ids))
                stop = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.tensor(new.shape[1]))
            else:
                stop = torch.full((new.shape[0],), new.shape[1])
            for slot, row, n in zip(rows.tolist(), new.tolist(), stop.tolist()):
                out[slot] = row[:n]
            bar.advance(len(chosen))
    return out


def vllm_seed(key: int) -> int:
    """A per-request vLLM seed (31 bits: what every vLLM version accepts) from a prompt's uint64 key."""
    return int(key) & 0x7FFFFFFF


def _vllm_generate(path: Path, tokenizer: Any, ids: list[list[int]], prompt_keys: np.ndarray, cfg: SamplingConfig,
                   dtype: str, options: dict[str, Any], bar: Any) -> list[list[int]]:
    """Completion token ids per (prompt, sample index), prompt-major, from vLLM (GPU)."""
    vllm = models.require("vllm", "vllm (pip install 'collapse-curator[gpu]')", "the vllm generation backend")
    llm = models.load_vllm(path, dtype=dtype, seed=cfg.seed, **options)
    # temperature 0 is vLLM's greedy decoding; top_k -1 (older versions) / 0 (newer) both mean "off": -1 is
    # accepted by every version.
    params = [vllm.SamplingParams(n=cfg.samples_per_prompt, temperature=cfg.temperature, top_p=cfg.top_p,
                                  top_k=cfg.top_k if cfg.top_k else -1, max_tokens=cfg.max_new_tokens,
                                  seed=vllm_seed(k), skip_special_tokens=True)
              for k in prompt_keys.tolist()]
    prompts = [{"prompt_token_ids": row} for row in ids]        # the same tokens the hf backend would see
    results = llm.generate(prompts, params, use_tqdm=False)
    k = cfg.samples_per_prompt
    out: list[list[int]] = [[] for _ in range(len(ids) * k)]
    for p, res in enumerate(results):
        for comp in res.outputs:
            tokens = list(comp.token_ids)
            # vLLM keeps the eos it stopped on in token_ids; the hf backend's rows end before it.
            if comp.finish_reason == "stop" and tokens and tokens[-1] == tokenizer.eos_token_id:
                tokens = tokens[:-1]
            out[p * k + comp.index] = tokens
        bar.advance(1)
    return out


def resolve_backend(backend: str, device: str) -> str:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend '{backend}'; valid choices: {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    # vLLM only runs on a GPU: "auto" picks it when one is visible (or asked for) and vLLM is installed.
    if models.vllm_available() and models.resolve_device(device).startswith("cuda"):
        return "vllm"
    return "hf"


# --------------------------------------------------------------------------- the command


def generate(
    store: Store,
    *,
    model: str | Path,
    generation: int,
    prompts_from: int | None = None,
    prompts_file: str | Path | None = None,
    prompt_field: str = "prompt",
    prefix_tokens: int = 16,
    samples_per_prompt: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 64,
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    threads: int | None = None,
    vllm_options: dict[str, Any] | None = None,
    tensor_parallel_size: int | None = None,
    data_parallel_size: int | None = None,
    tokenizer: str = "word_v1",
    stats: bool = True,
    tags: Sequence[str] = (),
    progress: Reporter | None = None,
) -> GenerateResult:
    """Generate `samples_per_prompt` completions per prompt with `model` into generation `generation`.

    See the module docstring for prompts, what is written and the determinism guarantees.
    """
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise UsageError(f"generation must be an integer >= 1 (0 is the human reference), got {generation!r}")
    if (prompts_from is None) == (prompts_file is None):
        raise UsageError("give exactly one of prompts_from (a generation) or prompts_file, got "
                         f"prompts_from={prompts_from!r}, prompts_file={prompts_file!r}")
    if prompts_from is not None:
        if not isinstance(prompts_from, int) or isinstance(prompts_from, bool) or prompts_from < 0:
            raise UsageError(f"prompts_from must be a generation (an integer >= 0), got {prompts_from!r}")
        if prompts_from == generation:
            raise UsageError(f"generation={generation} equals prompts_from: generated samples go into another "
                             f"generation")
    if not isinstance(prefix_tokens, int) or isinstance(prefix_tokens, bool) or prefix_tokens < 1:
        raise UsageError(f"prefix_tokens must be an integer >= 1, got {prefix_tokens!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    cfg = SamplingConfig(samples_per_prompt=samples_per_prompt, temperature=temperature, top_p=top_p, top_k=top_k,
                         max_new_tokens=max_new_tokens, seed=seed)
    for name, value in (("tensor_parallel_size", tensor_parallel_size), ("data_parallel_size", data_parallel_size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    models.check_dtype(dtype)
    path = models.check_model_dir(model)
    chosen = resolve_backend(backend, device)
    progress = progress or NullReporter()
    tok = models.load_tokenizer(path)

    prompts = (prompts_from_store(store, prompts_from, tok, prefix_tokens) if prompts_from is not None
               else prompts_from_file(prompts_file, prompt_field))
    if len(prompts) == 0:
        where = f"generation {prompts_from}" if prompts_from is not None else f"{prompts_file}"
        raise UsageError(f"no prompts in {where}")
    uses_prefix = any(prompts.prefix)
    decoding = cfg.decoding(chosen, prefix_tokens if uses_prefix else None)
    k = cfg.samples_per_prompt
    pkeys = prompts.keys()
    keys = row_keys(pkeys, cfg.seed, k)
    ids = _encode(tok, prompts.prompt, _context_budget(path, tok, cfg.max_new_tokens))

    bar = progress.task(f"generate gen {generation}", total=len(prompts), unit="prompts")
    if chosen == "hf":
        completions = _hf_generate(path, tok, ids, keys, cfg, batch_size, device, dtype, threads, bar)
    else:
        options = dict(vllm_options or {})
        if tensor_parallel_size is not None:
            options["tensor_parallel_size"] = tensor_parallel_size
        if data_parallel_size is not None:
            options["data_parallel_size"] = data_parallel_size
        completions = _vllm_generate(path, tok, ids, keys[::k], cfg, dtype, options, bar)

    # Rows, prompt-major: slot = prompt * k + sample index.
    n = len(prompts) * k
    texts = tok.batch_decode(completions, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    pidx = np.repeat(np.arange(len(prompts)), k)
    sidx = np.tile(np.arange(k), len(prompts))
    prefix = np.array(prompts.prefix)[pidx]
    prompt_arr = np.array(prompts.prompt, dtype=object)[pidx]
    text_arr = np.array(texts, dtype=object)
    nonempty = np.array([len(t) > 0 for t in texts]) if n else np.zeros(0, bool)
    # A prefix prompt's row is a whole document: the verbatim prefix followed by its continuation.
    text_arr[prefix] = prompt_arr[prefix] + text_arr[prefix]
    key_arr = np.array(pkeys, dtype=object)[pidx]
    external = [f"{kk}/{cfg.seed}/{s}" for kk, s in zip(key_arr.tolist(), sidx.tolist())]
    decodings = [json.dumps({**decoding, "sample_index": s}, sort_keys=True) for s in range(k)]
    table = pa.table({
        "external_id": pa.array(external, type=pa.string()),
        "prompt": pa.array(prompt_arr.tolist(), type=pa.string()),
        "text": pa.array(text_arr.tolist(), type=pa.string()),
        "reference": pa.array(np.array(prompts.reference, dtype=object)[pidx].tolist(), type=pa.string()),
        "parent_id": pa.array(np.array(prompts.parent_id, dtype=object)[pidx].tolist(), type=pa.string()),
        "decoding": pa.array([decodings[s] for s in sidx.tolist()], type=pa.string()),
        "source_file": pa.array(np.array(prompts.source_file, dtype=object)[pidx].tolist(), type=pa.string()),
        "source_row": pa.array(np.array(prompts.source_row, dtype=np.int64)[pidx]),
    }).filter(pa.array(nonempty))

    args = {"model": str(path), "generation": generation, "prompts_from": prompts_from,
            "prompts_file": str(prompts_file) if prompts_file is not None else None, "prompt_field": prompt_field,
            "prefix_tokens": prefix_tokens, **decoding, "batch_size": batch_size, "device": device, "dtype": dtype,
            "vllm_options": vllm_options, "tensor_parallel_size": tensor_parallel_size,
            "data_parallel_size": data_parallel_size, "tokenizer": tokenizer, "stats": stats}

    from .ingest.ids import IdHasher
    from .ingest.seen import SeenIds, filter_mask

    with store.transaction("generate", args) as tx:
        result = GenerateResult(tx.run_id, 0, generation, str(path), chosen, prompts=len(prompts), generated=n,
                                empty=int(n - nonempty.sum()), new_tokens=sum(len(c) for c in completions))
        known = tx.dataset("samples").to_table(columns=["sample_id"], filter=f"generation = {generation}")
        ids_t = IdHasher().ids(table, generation)
        rows = table.append_column("sample_id", ids_t["sample_id"]).append_column("text_hash", ids_t["text_hash"]) \
                    .append_column("prompt_id", ids_t["prompt_id"])
        rows = filter_mask(rows, SeenIds(known["sample_id"]).fresh(ids_t["sample_id"]))
        result.duplicates = table.num_rows - rows.num_rows
        m = rows.num_rows
        if m:
            samples = pa.table({
                "sample_id": rows["sample_id"], "text_hash": rows["text_hash"],
                "generation": pa.repeat(pa.scalar(generation, pa.int32()), m),
                "origin": pa.repeat(pa.scalar("synthetic"), m), "text": rows["text"], "prompt": rows["prompt"],
                "prompt_id": rows["prompt_id"], "reference": rows["reference"],
                "parent_id": rows["parent_id"], "external_id": rows["external_id"],
                "model": pa.repeat(pa.scalar(str(path)), m), "decoding": rows["decoding"],
                "metadata": pa.nulls(m, pa.string()), "source_file": rows["source_file"],
                "source_row": rows["source_row"], "ingest_run": pa.repeat(pa.scalar(tx.run_id), m),
            })
            tx.commit_fragments("samples", tx.write_fragments("samples", samples))
        result.rows_added = m
        if stats and m:
            from .stats.corpus import compute_stats

            result.stats = compute_stats(tx, [generation], tokenizer, progress=progress)
        tx.generations.add(generation)
        if prompts_from is not None:
            tx.generations.add(prompts_from)
        tx.checkpoints.append(str(path))
        tx.tag(f"gen-{generation}")
        for tag in tags:
            tx.tag(tag)
        tx.summary.update(backend=chosen, prompts=result.prompts, generated=result.generated,
                          rows_added=result.rows_added, duplicates=result.duplicates, empty=result.empty,
                          new_tokens=result.new_tokens)
    result.store_version = store.version()
    return result
