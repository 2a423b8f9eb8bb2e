"""The ToEdit token editor (Zhu et al., "How to Synthesize Text Data without Model Collapse?").

Human documents are edited token by token with a prior model instead of generated from scratch, which keeps
the long tail of the human distribution that a purely synthetic generation loses. For every document of the
source generation (origin `human` by default):

1. **One teacher-forced pass** of the prior (a local causal LM) over the document's tokens gives, at every
   position i that has a prefix (0-based i >= 1, the paper's "i > 1"), P(x_i | x_<i) of the *original* token.
   Decisions never see earlier edits: they all come from this one pass over the parent.
2. If P >= `threshold` (p, default 0.99) the position is **eligible**: x_i is replaced by a draw from
   softmax(logits / `temperature`) restricted to the prior's `top_k` most likely tokens (k = 8, beta = 1.5).
   The draw may return x_i itself: the position is then eligible but not *changed*. Special tokens and ids
   past the tokenizer's vocabulary (a model's padded embedding rows) are never drawn, so an edit always
   decodes to ordinary text; the top-k is taken among the remaining tokens.
3. Else the token is kept, unless `delete_below` is set and P < `delete_below` (the paper's variant, e.g.
   0.001): the token is then **deleted**. Deletions are decided on the same pass and need
   `delete_below < threshold`, so a position is at most one of eligible or deleted. The first token (no
   prefix, no probability) is never edited nor deleted.

`threshold` above 1 makes nothing eligible (a "dry run" that copies the generation unchanged; values from 1
up to 2 are accepted for that, larger ones are refused as a probable percent typo).

What is written (one transaction, command `edit`, generations [source, into], tag `gen-<into>`):

- `samples`: one row per parent, into generation `into`, origin `edited`: the edited text (the decoded edited
  token ids; an **unchanged document keeps its parent's text verbatim**, so a tokenizer that does not
  round-trip exactly cannot alter it), `parent_id` = the parent's `sample_id`; `prompt`, `reference`,
  `external_id`, `metadata`, `source_file`/`source_row` are the parent's (the schema requires a source, and
  the parent's is where the edited text came from); `model` = the prior's resolved path; `decoding` = JSON of
  the editor config (below); `ingest_run` = this run. **Unchanged documents are written too**: the edited
  generation is the whole source corpus with edits applied (what ToEdit trains on), and `edit_samples`
  says which rows changed. `sample_id`/`text_hash`/`prompt_id` are computed exactly as ingest computes them
  (`curator.ingest.ids.IdHasher`, generation `into`): an unchanged document therefore has its parent's
  `text_hash` and a different `sample_id`.
- `edits`: one row per **eligible position** (`action = 'replace'`; `new_token = old_token` when the draw
  kept the token) and one per deleted token (`action = 'delete'`, `new_token` null). So per sample,
  `eligible = count(action = 'replace')` and `changed = count(action = 'replace' AND new_token <> old_token)`.
  `position` is the 0-based index in the parent's tokens (prior tokenizer, no special prefix);
  `old_text`/`new_text` decode one token alone (a byte-level token that holds part of a UTF-8 character shows
  as U+FFFD there; the sample's text is decoded whole and is exact).
- `edit_samples`: per written sample: tokens, eligible, changed, deleted and the editor's config hash.
- `runs`: the summary (documents, tokens, eligible, changed, deleted), and the prior in `checkpoints`.
- n-gram statistics of generation `into` are recomputed (as ingest does when a generation changes).

**Idempotent.** Re-running the same edit adds nothing: parents that already have an edited sample with this
config hash in generation `into` are skipped before the model runs, and content-addressed ids that already
exist in `into` are not written again (if two parents' edits come out identical, the first one read is kept).

**Reproducible.** The draw is Gumbel-max with noise that is a pure function of (seed, parent `sample_id`,
position, candidate token id), so the output does not depend on the batch size, on the order or grouping of
the documents, or on any global RNG (the window length and stride do change the prior's context, so they are
part of the recorded config)::

    doc   = mix64(mix64(w0 XOR mix64(seed + GOLDEN)) XOR w1)   w0, w1: the two 64-bit halves of the parent's md5-hex id
    h     = mix64(mix64(doc XOR (position * GOLDEN)) XOR (token * GOLDEN2))        (all mod 2**64)
    u     = ((h >> 11) + 0.5) / 2**53,   gumbel = -log(-log u)
    draw  = argmax over the top-k candidates of (logit / temperature + gumbel)

(`mix64` is the splitmix64 finaliser of `curator.stats.tokenize`; GOLDEN = 0x9E3779B97F4A7C15, GOLDEN2 =
0xC2B2AE3D27D4EB4F.) Keying the noise by candidate token id, not by rank, makes a draw independent of how
ties in the top-k are ordered. Only floating-point differences between batch shapes or devices (about 1e-7 on
CPU; bf16 on a GPU) could flip a decision sitting exactly on the threshold, or a draw between two candidates
tied to that precision.

**Long documents** are processed like `perplexity_v1` (the Hugging Face sliding window): a document of at most
`max_length` tokens (default: the prior's context) is one window; a longer one is cut into windows of
`max_length` tokens starting every `stride` tokens (default `max_length // 2`), and each window decides only the
positions the previous window did not, so **every position is decided exactly once**, each with at least
`max_length - stride` tokens of left context after the first window.

**Batching.** The windows of a chunk of documents are sorted by length (longest first) and run `batch_size` at
a time, right-padded with an attention mask; a forward pass is capped at about 2^28 logits whatever
`batch_size` says. Only the original token's log-probability (all decided positions) and the top-k (eligible
positions only) leave the device.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import models
from .. import teacher_forcing as tf
from ..errors import UsageError
from ..progress import NullReporter, Reporter
from ..store import Store

EDITOR = "toedit_v1"
ORIGINS = ("human", "synthetic", "edited", "labeled")
# Source documents handled together: windows are length-sorted within a chunk, and its edits are written as
# one set of Lance fragments.
_CHUNK_ROWS = 2048
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M64 = (1 << 64) - 1


@dataclass(frozen=True)
class EditConfig:
    """The editor's knobs; everything that changes the edited text (with the prior) is in `decoding()`."""

    threshold: float = 0.99
    top_k: int = 8
    temperature: float = 1.5
    delete_below: float | None = None
    seed: int = 0
    max_length: int | None = None     # window length; default: the prior's context
    stride: int | None = None         # window step for long documents; default: max_length // 2
    batch_size: int = 16              # windows per forward pass

    def __post_init__(self) -> None:
        p = self.threshold
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not math.isfinite(p) or not 0 < p < 2:
            raise UsageError(f"threshold must be a probability in (0, 1] (values in (1, 2) make nothing eligible), "
                             f"got {p!r}")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 1:
            raise UsageError(f"top_k must be an integer >= 1, got {self.top_k!r}")
        t = self.temperature
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t <= 0:
            raise UsageError(f"temperature must be a number > 0, got {t!r}")
        d = self.delete_below
        if d is not None:
            if not isinstance(d, (int, float)) or isinstance(d, bool) or not math.isfinite(d) or not 0 < d <= 1:
                raise UsageError(f"delete_below must be a probability in (0, 1], got {d!r}")
            if d >= p:
                raise UsageError(f"delete_below={d} must be below threshold={p} (a token cannot be both replaced "
                                 f"and deleted)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise UsageError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.max_length is not None and self.max_length < 2:
            raise UsageError(f"max_length must be at least 2, got {self.max_length}")
        if self.stride is not None and self.stride < 1:
            raise UsageError(f"stride must be an integer >= 1, got {self.stride}")
        if self.stride is not None and self.max_length is not None and self.stride >= self.max_length:
            raise UsageError(f"stride={self.stride} must be less than max_length={self.max_length} (each window "
                             f"needs at least one token of context)")

    def decoding(self, max_length: int, stride: int) -> dict[str, Any]:
        """The `samples.decoding` JSON object: the editor and every knob that shapes its output."""
        return {"editor": EDITOR, "threshold": self.threshold, "top_k": self.top_k, "temperature": self.temperature,
                "delete_below": self.delete_below, "seed": self.seed, "max_length": max_length, "stride": stride}


@dataclass
class EditResult:
    run_id: str
    store_version: int
    generation: int
    into: int
    model: str
    config_hash: str
    documents: int = 0          # parents edited in this run
    skipped: int = 0            # parents already edited with this config into `into`
    rows_added: int = 0         # new `samples` rows
    duplicates: int = 0         # edited samples whose id already existed (not written again)
    tokens: int = 0
    eligible: int = 0
    changed: int = 0
    deleted: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the prior at run time


@dataclass
class _Prior:
    model: Any
    tokenizer: Any
    device: str
    prefix: list[int]       # what the tokenizer itself puts in front of a text (Llama's <s>; nothing for GPT-2)
    max_length: int
    stride: int
    pad_id: int
    vocab: int              # rows of the model's output layer
    banned: Any             # bool tensor [vocab]: ids never drawn (special tokens, ids past the tokenizer)


def _load_prior(path: Path, cfg: EditConfig, device: str, dtype: str, threads: int | None) -> _Prior:
    import torch

    dev = models.resolve_device(device)
    models.set_threads(threads, dev)
    tokenizer = models.load_tokenizer(path)
    # What the tokenizer itself puts in front of a text (perplexity_v1's `add_bos` unset): the prior then sees
    # documents the way it was trained. Text position 0 is never decided, so the first is after the prefix.
    prefix = tf.own_prefix(tokenizer)
    max_length, stride, _ = tf.window_sizes(path, tokenizer, cfg.max_length, cfg.stride, prefix=len(prefix),
                                            first=len(prefix) + 1)
    model = models.load_causal_lm(path, device=dev, dtype=dtype)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    banned = torch.zeros(vocab, dtype=torch.bool)
    banned[min(len(tokenizer), vocab):] = True
    special = [i for i in tokenizer.all_special_ids if 0 <= i < vocab]
    banned[special] = True
    if bool(banned.all()):
        raise UsageError(f"the tokenizer of {path} has no ordinary token to draw")
    return _Prior(model, tokenizer, dev, prefix, max_length, stride, tf.pad_token_id(tokenizer), vocab,
                  banned.to(dev))


# --------------------------------------------------------------------------- vectorised helpers


def _mix64(x: np.ndarray) -> np.ndarray:
    from ..stats.tokenize import mix64

    return mix64(np.array(x, dtype=np.uint64, copy=True))


def doc_keys(parent_ids: pa.Array | Sequence[str], seed: int) -> np.ndarray:
    """The per-document noise key (uint64) of each parent id, for `seed` (see the module docstring).

    curator's sample ids are 32 lowercase hex digits (md5): they are read as their two 64-bit words
    (``ingest.ids.id_numbers``). Any other id is first replaced by the md5 of its UTF-8 bytes.
    """
    from ..ingest.ids import id_numbers

    arr = parent_ids if isinstance(parent_ids, pa.Array) else pa.array(list(parent_ids), type=pa.string())
    hi, lo = id_numbers(arr)
    if not len(hi):
        return np.zeros(0, dtype=np.uint64)
    seed_mix = _mix64(np.array([(seed + int(_GOLDEN)) & _M64], dtype=np.uint64))
    return _mix64(_mix64(hi ^ seed_mix) ^ lo)


def gumbel_noise(keys: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Gumbel(0, 1) noise for candidate `tokens` [n, k] at `positions` [n] of documents with `keys` [n]."""
    pos = np.asarray(positions).astype(np.uint64)
    h = _mix64(np.asarray(keys, dtype=np.uint64) ^ (pos * _GOLDEN))
    h = _mix64(h[:, None] ^ (np.asarray(tokens).astype(np.uint64) * _GOLDEN2))
    u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))
    return -np.log(-np.log(u))


# --------------------------------------------------------------------------- the edit of one chunk


@dataclass
class _ChunkEdits:
    """Per-token decisions of a chunk of documents, flat over the documents' text tokens (no prefix)."""

    text_lens: np.ndarray   # [n] tokens per document
    tokens: np.ndarray      # [T] original token ids
    prob: np.ndarray        # [T] P(token | prefix); NaN where not decided (position 0)
    eligible: np.ndarray    # [T] bool
    new: np.ndarray         # [T] token after the edit (== tokens where not replaced)
    deleted: np.ndarray     # [T] bool


def edit_tokens(prior: _Prior, cfg: EditConfig, texts: list[str], keys: np.ndarray) -> _ChunkEdits:
    """Decide every position of `texts` (one teacher-forced pass) and draw the replacements."""
    import torch

    n = len(texts)
    packed = tf.pack(prior.tokenizer, texts, prior.prefix)
    flat, p = packed.flat, len(prior.prefix)
    prob = np.full(len(flat), np.nan, dtype=np.float32)
    # Eligible positions' top-k candidates (ids and logits / temperature), filled block by block.
    cand_at: list[np.ndarray] = []
    cand_ids: list[np.ndarray] = []
    cand_scores: list[np.ndarray] = []

    # Text position 0 has no text prefix: the first decided position is text position 1 (the paper's i > 1).
    wins = tf.windows(packed, p + 1, prior.max_length, prior.stride)
    k = min(cfg.top_k, int((~prior.banned).sum()))
    with torch.inference_mode():
        for block in tf.forward(prior.model, flat, wins, batch_size=cfg.batch_size, vocab=prior.vocab,
                                pad_id=prior.pad_id, device=prior.device):
            pr = tf.token_logprobs(block).exp()
            prob[block.dest] = pr.cpu().numpy()
            elig = torch.nonzero(pr >= cfg.threshold).squeeze(1)
            if len(elig):
                # Only eligible rows need candidates: the top-k of the drawable tokens.
                xe = block.logits[elig].masked_fill(prior.banned, float("-inf"))
                top = torch.topk(xe, k, dim=1)
                cand_at.append(block.dest[elig.cpu().numpy()])
                cand_ids.append(top.indices.cpu().numpy())
                cand_scores.append((top.values / cfg.temperature).cpu().numpy().astype(np.float64))

    new = flat.copy()
    eligible = np.zeros(len(flat), dtype=bool)
    if cand_at:
        at = np.concatenate(cand_at)
        cids = np.concatenate(cand_ids)
        flat_doc = np.repeat(np.arange(n), packed.lengths)
        position = at - packed.doc_start[flat_doc[at]] - p           # text position, the noise's counter
        noise = gumbel_noise(keys[flat_doc[at]], position, cids)
        choice = np.argmax(np.concatenate(cand_scores) + noise, axis=1)
        new[at] = cids[np.arange(len(at)), choice]
        eligible[at] = True
    deleted = np.zeros(len(flat), dtype=bool)
    if cfg.delete_below is not None:
        with np.errstate(invalid="ignore"):
            deleted = prob < cfg.delete_below                        # NaN (undecided) compares False
    text_at = packed.text_at
    return _ChunkEdits(packed.text_lens, flat[text_at], prob[text_at], eligible[text_at], new[text_at],
                       deleted[text_at])


# --------------------------------------------------------------------------- rows for the store


def _decode_tokens(tokenizer: Any, ids: np.ndarray) -> np.ndarray:
    """Each token id decoded alone (object array), decoding each distinct id once."""
    if len(ids) == 0:
        return np.array([], dtype=object)
    uniq, inverse = np.unique(ids, return_inverse=True)
    texts = tokenizer.batch_decode(uniq[:, None].tolist(), skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    return np.array(texts, dtype=object)[inverse]


def _edited_texts(tokenizer: Any, parents: pa.Array, ce: _ChunkEdits) -> tuple[pa.Array, np.ndarray]:
    """The edited documents' texts, and per document whether it changed at all."""
    n = len(ce.text_lens)
    doc = np.repeat(np.arange(n), ce.text_lens)
    touched = np.bincount(doc, weights=(ce.new != ce.tokens) | ce.deleted, minlength=n) > 0
    texts = np.array(parents.to_pylist(), dtype=object)
    which = np.flatnonzero(touched)
    if len(which):
        keep = ~ce.deleted
        kept_doc = doc[keep]
        out = ce.new[keep]
        bounds = np.cumsum(np.bincount(kept_doc, minlength=n))
        pieces = np.split(out, bounds[:-1])
        # The tokenizer API takes Python lists: one per changed document.
        texts[which] = tokenizer.batch_decode([pieces[j].tolist() for j in which], skip_special_tokens=False,
                                              clean_up_tokenization_spaces=False)
    return pa.array(texts.tolist(), type=pa.string()), touched


def _counts(ce: _ChunkEdits) -> dict[str, np.ndarray]:
    n = len(ce.text_lens)
    doc = np.repeat(np.arange(n), ce.text_lens)
    return {
        "tokens": ce.text_lens,
        "eligible": np.bincount(doc[ce.eligible], minlength=n).astype(np.int64),
        "changed": np.bincount(doc[ce.eligible & (ce.new != ce.tokens)], minlength=n).astype(np.int64),
        "deleted": np.bincount(doc[ce.deleted], minlength=n).astype(np.int64),
    }


def _edit_rows(tokenizer: Any, ce: _ChunkEdits, sample_ids: np.ndarray, parent_ids: np.ndarray, written: np.ndarray,
               run_id: str) -> pa.Table:
    """`edits` rows (eligible positions and deletions) of the documents in `written`."""
    doc, position = tf.ragged(ce.text_lens)
    pick = (ce.eligible | ce.deleted) & written[doc]
    doc, position = doc[pick], position[pick]
    old, new, dele = ce.tokens[pick], ce.new[pick], ce.deleted[pick]
    texts = _decode_tokens(tokenizer, np.concatenate([old, new[~dele]]))
    new_text = np.full(len(old), None, dtype=object)
    new_text[~dele] = texts[len(old):]
    return pa.table({
        "sample_id": pa.array(sample_ids[doc], type=pa.string()),
        "parent_id": pa.array(parent_ids[doc], type=pa.string()),
        "position": pa.array(position.astype(np.int32)),
        "action": pa.array(np.where(dele, "delete", "replace"), type=pa.string()),
        "old_token": pa.array(old.astype(np.int32)),
        "new_token": pa.array(new.astype(np.int32), mask=dele),
        "old_text": pa.array(texts[:len(old)].tolist(), type=pa.string()),
        "new_text": pa.array(new_text.tolist(), type=pa.string()),
        "prior_prob": pa.array(ce.prob[pick].astype(np.float32)),
        "run_id": pa.repeat(pa.scalar(run_id), len(old)),
    })


# --------------------------------------------------------------------------- the command


def _check_generations(generation: int, into: int) -> None:
    for name, value in (("generation", generation), ("into", into)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UsageError(f"{name} must be an integer >= 0, got {value!r}")
    if into == 0:
        raise UsageError("into=0 is the human reference generation: write edited samples into a new generation "
                         "(>= 1)")
    if into == generation:
        raise UsageError(f"into={into} equals the source generation {generation}: edited samples go into another "
                         f"generation")


def _quote(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def edit(
    store: Store,
    *,
    generation: int = 0,
    into: int,
    model: str | Path,
    threshold: float = 0.99,
    top_k: int = 8,
    temperature: float = 1.5,
    delete_below: float | None = None,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    dtype: str = "auto",
    threads: int | None = None,
    max_length: int | None = None,
    stride: int | None = None,
    origins: Sequence[str] = ("human",),
    tokenizer: str = "word_v1",
    stats: bool = True,
    tags: Sequence[str] = (),
    progress: Reporter | None = None,
) -> EditResult:
    """Edit the documents of `generation` (of `origins`) with the prior `model` into generation `into`.

    See the module docstring for the method, what is written, and the reproducibility guarantees.
    """
    _check_generations(generation, into)
    cfg = EditConfig(threshold=threshold, top_k=top_k, temperature=temperature, delete_below=delete_below,
                     seed=seed, max_length=max_length, stride=stride, batch_size=batch_size)
    origins = tuple(origins)
    bad = [o for o in origins if o not in ORIGINS]
    if not origins or bad:
        raise UsageError(f"unknown origin(s) {bad or list(origins)}; expected some of {', '.join(ORIGINS)}")
    models.check_dtype(dtype)
    path = models.check_model_dir(model)
    progress = progress or NullReporter()
    where = f"generation = {generation} AND origin IN ({_quote(origins)})"
    total = store.read("samples", columns=["sample_id"], filter=where).num_rows
    if total == 0:
        raise UsageError(f"generation {generation} has no samples of origin {', '.join(origins)}: nothing to edit")

    prior = _load_prior(path, cfg, device, dtype, threads)
    decoding = cfg.decoding(prior.max_length, prior.stride)
    decoding_json = json.dumps(decoding, sort_keys=True)
    config_hash = hashlib.sha256(json.dumps({**decoding, "model": str(path)}, sort_keys=True).encode()).hexdigest()[:16]
    args = {"generation": generation, "into": into, "model": str(path), **asdict(cfg), "device": prior.device,
            "dtype": dtype, "origins": list(origins), "tokenizer": tokenizer, "stats": stats}

    from ..ingest.ids import IdHasher
    from ..ingest.seen import SeenIds

    hasher = IdHasher()
    with store.transaction("edit", args) as tx:
        result = EditResult(tx.run_id, 0, generation, into, str(path), config_hash)
        into_ids = tx.dataset("samples").to_table(columns=["sample_id"], filter=f"generation = {into}")["sample_id"]
        # Parents already edited with this config into `into` (idempotence without running the model).
        done = tx.dataset("edit_samples").to_table(columns=["sample_id", "parent_id"],
                                                   filter=f"config_hash = '{config_hash}'")
        done = done.filter(pc.is_in(done["sample_id"], value_set=into_ids.combine_chunks()))["parent_id"]
        seen = SeenIds(into_ids)
        frags: dict[str, list[Any]] = {"samples": [], "edits": [], "edit_samples": []}
        bar = progress.task(f"edit gen {generation} -> {into}", total=total, unit="samples")
        columns = ["sample_id", "text", "prompt", "reference", "external_id", "metadata", "source_file", "source_row"]
        for batch in tx.dataset("samples").to_batches(columns=columns, filter=where, batch_size=_CHUNK_ROWS):
            parents = pa.Table.from_batches([batch])
            bar.advance(parents.num_rows)  # per chunk read: skipped chunks count too
            fresh = pc.invert(pc.is_in(parents["sample_id"], value_set=done.combine_chunks()))
            result.skipped += parents.num_rows - pc.sum(fresh.cast(pa.int64())).as_py()
            parents = parents.filter(fresh)
            if parents.num_rows == 0:
                continue
            parent_ids = parents["sample_id"].combine_chunks()
            texts = pc.fill_null(parents["text"], "").combine_chunks()
            ce = edit_tokens(prior, cfg, texts.to_pylist(), doc_keys(parent_ids, cfg.seed))
            edited, _ = _edited_texts(prior.tokenizer, texts, ce)
            rows = pa.table({"external_id": parents["external_id"], "prompt": parents["prompt"], "text": edited})
            ids = hasher.ids(rows, into)
            # Content addressing as ingest: an id already in `into` (or earlier in this run) is not written again.
            fresh_ids = seen.fresh(ids["sample_id"])
            written = np.ones(ids.num_rows, bool) if fresh_ids is None else fresh_ids
            result.documents += parents.num_rows
            result.duplicates += int((~written).sum())
            counts = _counts(ce)
            for name in ("tokens", "eligible", "changed", "deleted"):
                setattr(result, name, getattr(result, name) + int(counts[name].sum()))
            if not written.any():
                continue
            keep = pa.array(written)
            sample_ids = ids["sample_id"].to_numpy(zero_copy_only=False)
            n_keep = int(written.sum())
            samples = pa.table({
                "sample_id": ids["sample_id"], "text_hash": ids["text_hash"],
                "generation": pa.repeat(pa.scalar(into, pa.int32()), parents.num_rows),
                "origin": pa.repeat(pa.scalar("edited"), parents.num_rows), "text": edited,
                "prompt": parents["prompt"], "prompt_id": ids["prompt_id"], "reference": parents["reference"],
                "parent_id": parent_ids, "external_id": parents["external_id"],
                "model": pa.repeat(pa.scalar(str(path)), parents.num_rows),
                "decoding": pa.repeat(pa.scalar(decoding_json), parents.num_rows),
                "metadata": parents["metadata"], "source_file": parents["source_file"],
                "source_row": parents["source_row"], "ingest_run": pa.repeat(pa.scalar(tx.run_id), parents.num_rows),
            }).filter(keep)
            frags["samples"].extend(tx.write_fragments("samples", samples))
            per_sample = pa.table({
                "sample_id": ids["sample_id"], "parent_id": parent_ids,
                **{name: pa.array(values, type=pa.int64()) for name, values in counts.items()},
                "config_hash": pa.repeat(pa.scalar(config_hash), parents.num_rows),
                "run_id": pa.repeat(pa.scalar(tx.run_id), parents.num_rows),
            }).filter(keep)
            frags["edit_samples"].extend(tx.write_fragments("edit_samples", per_sample))
            edits = _edit_rows(prior.tokenizer, ce, sample_ids, parent_ids.to_numpy(zero_copy_only=False), written,
                               tx.run_id)
            if edits.num_rows:
                frags["edits"].extend(tx.write_fragments("edits", edits))
            result.rows_added += n_keep
        for table, fragments in frags.items():
            tx.commit_fragments(table, fragments)
        if stats and result.rows_added:
            from ..stats.corpus import compute_stats

            result.stats = compute_stats(tx, [into], tokenizer, progress=progress)
        tx.generations.update({generation, into})
        tx.checkpoints.append(str(path))
        tx.tag(f"gen-{into}")
        for tag in tags:
            tx.tag(tag)
        tx.summary.update(editor=EDITOR, config_hash=config_hash, documents=result.documents,
                          skipped=result.skipped, rows_added=result.rows_added, duplicates=result.duplicates,
                          tokens=result.tokens, eligible=result.eligible, changed=result.changed,
                          deleted=result.deleted)
    result.store_version = store.version()
    return result
