"""`evaluate`: a checkpoint's perplexity on fixed held-out human text, and (optionally) its task accuracy.

Perplexity is the collapse curve of Shumailov et al.: each generation's model on the same human text. It is
the token-weighted corpus perplexity, exp(-(sum of every scored token's log-probability) / (tokens scored)),
computed by `perplexity_v1` (the teacher-forced pass of `curator.teacher_forcing`: the same windows,
batching and float32 log-probabilities as the scorer). Each non-empty line of a text file (or each row's
`text` of a JSONL file) is one document; what a document scores follows perplexity_v1's defaults (for GPT-2
tokenizers: every token but a document's first).

Accuracy (when a verifier and an eval set are given): greedy answers from HF `generate` for each prompt,
judged by the verifier scorer (`gsm8k_answer_v1`, `exact_match_v1`, ...) against the reference.
accuracy = correct / judged, where rows the verifier cannot judge (a null verdict: no number in the
reference, say) are left out of both.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import models
from .errors import InputError, UsageError

# Field names tried for an eval set's prompt and reference, in order (curator's own, then GSM8K's).
PROMPT_FIELDS = ("prompt", "question")
REFERENCE_FIELDS = ("reference", "answer")


@dataclass
class EvalResult:
    model: str
    perplexity: float | None        # token-weighted corpus perplexity on the held-out text
    mean_logprob: float | None
    heldout_tokens: int             # tokens scored
    heldout_documents: int
    verifier: str | None = None
    accuracy: float | None = None   # correct / judged
    correct: int = 0
    judged: int = 0                 # eval rows with a verdict
    eval_rows: int = 0
    seconds: float = 0.0
    run_id: str | None = None

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("run_id",)}


def read_heldout(path: str | Path, field: str = "text") -> list[str]:
    """The held-out documents: a JSONL file's `field` per row, else each non-empty line of a text file."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"heldout '{path}': no such file")
    lines = p.read_text(encoding="utf-8").splitlines()
    if p.suffix.lower() in (".jsonl", ".json"):
        docs = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line).get(field)
            except (ValueError, AttributeError) as exc:
                raise InputError(f"not a JSON object ({exc})", file=str(p), line=n) from exc
            if isinstance(value, str) and value.strip():
                docs.append(value)
        return docs
    return [line for line in lines if line.strip()]


def read_eval_set(path: str | Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    """(prompts, references) of a JSONL eval set (fields prompt/reference, or question/answer)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"eval set '{path}': no such file")
    prompts, refs = [], []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"not valid JSON ({exc})", file=str(p), line=n) from exc
        prompt = next((row[f] for f in PROMPT_FIELDS if isinstance(row, dict) and f in row), None)
        ref = next((row[f] for f in REFERENCE_FIELDS if isinstance(row, dict) and f in row), None)
        if not isinstance(prompt, str) or ref is None:
            raise InputError(f"expected fields {'/'.join(PROMPT_FIELDS)} and {'/'.join(REFERENCE_FIELDS)}",
                             file=str(p), line=n)
        prompts.append(prompt)
        refs.append(str(ref))
        if limit is not None and len(prompts) >= limit:
            break
    return prompts, refs


def heldout_perplexity(model: str | Path, docs: list[str], *, batch_size: int = 16, max_length: int | None = None,
                       stride: int | None = None, device: str = "auto", dtype: str = "auto",
                       threads: int | None = None, backend: str = "auto") -> tuple[float | None, float | None, int]:
    """(perplexity, mean log-probability, tokens scored) of `docs` as one corpus, through perplexity_v1."""
    from .scorers import create

    scorer = create("perplexity_v1", {"model": str(model), "batch_size": batch_size, "max_length": max_length,
                                      "stride": stride, "device": device, "dtype": dtype, "threads": threads,
                                      "backend": backend})
    table = scorer.score(pa.table({"text": pa.array(docs, pa.string())}))
    n = table.column("n_tokens").to_numpy()
    mean = table.column("mean_logprob").to_numpy(zero_copy_only=False)
    tokens = int(n.sum())
    if tokens == 0:
        return None, None, 0
    # Token-weighted: a document's mean times its tokens is its log-probability sum (nulls have 0 tokens).
    total = float(np.nansum(np.where(n > 0, mean, 0.0) * n))
    return float(np.exp(-total / tokens)), total / tokens, tokens


def generate_answers(model: str | Path, prompts: list[str], *, max_new_tokens: int = 64, batch_size: int = 16,
                     device: str = "auto", dtype: str = "auto") -> list[str]:
    """Greedy continuations of `prompts` (the new text only), batched with left padding."""
    import torch

    dev = models.resolve_device(device)
    lm = models.load_causal_lm(model, device=dev, dtype=dtype)
    tok = models.load_tokenizer(model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if pad is None:
        raise UsageError(f"the tokenizer of {model} has neither a pad nor an eos token: cannot batch prompts")
    context = models.context_length(model, tok)
    room = (context - max_new_tokens) if context else None
    if room is not None and room < 1:
        raise UsageError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the context of "
                         f"{model} ({context} tokens)")
    answers: list[str] = []
    for lo in range(0, len(prompts), batch_size):
        encoded = tok(prompts[lo:lo + batch_size], add_special_tokens=True, verbose=False)["input_ids"]
        # Keep a prompt's end when it is too long: the question is usually last.
        encoded = [ids[-room:] if room else ids for ids in encoded]
        width = max(len(ids) for ids in encoded)
        # Left padding by hand (the cached tokenizer is shared, so its padding_side is not ours to change):
        # every row's last prompt token sits in the last column, where generation continues.
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for r, row in enumerate(encoded):
            if row:
                ids[r, width - len(row):] = torch.tensor(row)
                mask[r, width - len(row):] = 1
        with torch.inference_mode():
            outputs = lm.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), do_sample=False,
                                  max_new_tokens=max_new_tokens, pad_token_id=pad,
                                  eos_token_id=tok.eos_token_id)
        answers.extend(tok.batch_decode(outputs[:, width:].cpu(), skip_special_tokens=True))
    return answers


def _train_run(store: Any, model: Path) -> str | None:
    """The run that wrote the checkpoint `model`, if this store recorded one (lineage for the eval run)."""
    import pyarrow.compute as pc

    runs = store.runs()
    found = None
    for row in runs.filter(pc.equal(runs["command"], "train")).to_pylist():
        if row["checkpoints"] and Path(row["checkpoints"][-1]).resolve() == model:
            found = row["run_id"]
    return found


def evaluate(store: Any | None = None, *, model: str | Path, heldout: str | Path | None = None,
             heldout_field: str = "text", verifier: str | None = None, eval_set: str | Path | None = None,
             verifier_options: dict[str, Any] | None = None, limit: int | None = None, max_new_tokens: int = 64,
             batch_size: int = 16, max_length: int | None = None, stride: int | None = None,
             device: str = "auto", dtype: str = "auto", threads: int | None = None,
             backend: str = "auto") -> EvalResult:
    """Held-out perplexity of the checkpoint `model`, and accuracy on `eval_set` judged by `verifier` (see the
    module docstring); records an "eval" run when a store is given."""
    from .scorers import create

    started = time.perf_counter()
    path = models.check_model_dir(model)
    if heldout is None and verifier is None:
        raise UsageError("eval needs a held-out text (heldout=PATH) or a verifier with an eval set")
    if (verifier is None) != (eval_set is None):
        raise UsageError(f"a verifier and an eval set go together; got verifier={verifier!r}, "
                         f"eval_set={str(eval_set) if eval_set else None!r}")
    if limit is not None and limit < 1:
        raise UsageError(f"limit={limit!r}: expected a positive integer")
    judge = create(verifier, verifier_options) if verifier else None  # an unknown name fails before any work
    if judge is not None and getattr(judge, "pass_column", None) is None:
        raise UsageError(f"scorer '{verifier}' is not a verifier: it has no pass column (try gsm8k_answer_v1 or "
                         f"exact_match_v1)")
    models.set_threads(threads, models.resolve_device(device))
    result = EvalResult(model=str(path), perplexity=None, mean_logprob=None, heldout_tokens=0, heldout_documents=0,
                        verifier=verifier)
    if heldout is not None:
        docs = read_heldout(heldout, heldout_field)
        if not docs:
            raise UsageError(f"heldout '{heldout}' holds no text")
        result.heldout_documents = len(docs)
        result.perplexity, result.mean_logprob, result.heldout_tokens = heldout_perplexity(
            path, docs, batch_size=batch_size, max_length=max_length, stride=stride, device=device, dtype=dtype,
            threads=threads, backend=backend)
    if judge is not None:
        prompts, refs = read_eval_set(eval_set, limit)
        answers = generate_answers(path, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                   device=device, dtype=dtype)
        batch = pa.table({"sample_id": [str(i) for i in range(len(prompts))], "text": answers, "prompt": prompts,
                          "reference": refs})
        verdict = judge.score(batch).column(judge.pass_column).to_pylist()
        result.eval_rows = len(prompts)
        result.judged = sum(v is not None for v in verdict)
        result.correct = sum(bool(v) for v in verdict if v is not None)
        result.accuracy = result.correct / result.judged if result.judged else None
    result.seconds = time.perf_counter() - started
    if store is not None:
        args = {"model": str(path), "heldout": str(Path(heldout).absolute()) if heldout else None,
                "heldout_field": heldout_field, "verifier": verifier, "verifier_options": verifier_options,
                "eval_set": str(Path(eval_set).absolute()) if eval_set else None, "limit": limit,
                "max_new_tokens": max_new_tokens, "batch_size": batch_size, "max_length": max_length,
                "stride": stride, "device": device, "dtype": dtype, "threads": threads, "backend": backend}
        with store.transaction("eval", args) as tx:
            parent = _train_run(store, path)
            if parent:
                tx.parents.append(parent)
            tx.checkpoints.append(str(path))
            tx.summary = result.summary()
            result.run_id = tx.run_id
    return result
