"""reward_model_v1: a local sequence-classification model as a reward model or verifier.

The model is any local transformers checkpoint that loads with `AutoModelForSequenceClassification` (a reward
model with a scalar head, a two-class "correct / incorrect" classifier, a GPT-2 or BERT with a trained head).

Input. When a row has a non-empty prompt, the pair (prompt, text) goes through the tokenizer's pair encoding,
so the model sees the prompt and the response the way its tokenizer joins them (BERT: `[CLS] prompt [SEP] text
[SEP]`; a tokenizer with a pair template adds its separators; one without simply concatenates); otherwise the
text alone, with the tokenizer's special tokens. Null text is the empty string. Pairs or texts longer than
`max_length` (default: the model's context) are truncated longest-first (the longer of prompt and text loses
tokens first). Chat-formatted reward models that expect a chat template are not handled here: give the text
already formatted, with a null prompt.

Columns:

- `reward` (float64): the logit of the positive class. A model with one label (a scalar reward head): that
  logit. A model with two labels: `logit[1] - logit[0]`, the log-odds of label 1 (so `reward >= 0` means the
  model prefers label 1). Other label counts are refused. Null when the input encodes to no token at all.
- `correct` (bool): `reward >= threshold` when the config sets `threshold`, else null (dolma's rule: decisions
  are taken late, in selection; a threshold here is the verifier's own operating point).

Batching: rows are sorted by encoded length, run `batch_size` at a time, right-padded with an attention mask,
and put back in order. A tokenizer without a pad token is run one row at a time (GPT-2-style classifiers
find the last real token through the pad id, and eos cannot stand in for it without mis-reading a text that
ends with eos).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import models
from .. import teacher_forcing as tf
from ..errors import UsageError
from .base import Scorer
from .registry import register


@dataclass(frozen=True)
class RewardModelConfig:
    model: str | None = None          # a local sequence-classification checkpoint (required)
    threshold: float | None = None    # `correct = reward >= threshold`; None: `correct` is null
    batch_size: int = 16
    max_length: int | None = None     # truncation length; default: the model's context
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"reward_model_v1: batch_size={self.batch_size}: expected a positive integer")
        if self.max_length is not None and self.max_length < 1:
            raise UsageError(f"reward_model_v1: max_length={self.max_length}: expected a positive integer")
        models.check_dtype(self.dtype)


@register
class RewardModel(Scorer):
    name = "reward_model_v1"
    description = ("reward (positive-class logit) of a local sequence-classification model on prompt + text; "
                   "correct = reward >= threshold")
    inputs = ("text", "prompt")
    columns = (pa.field("reward", pa.float64()), pa.field("correct", pa.bool_()))
    pass_column = "correct"
    Config = RewardModelConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        if not self.config.model:
            raise UsageError("reward_model_v1 needs a model: give the path of a local sequence-classification "
                             "checkpoint (-o model=PATH, or --model PATH)")
        models.check_model_dir(self.config.model)
        self._rt: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_rt"] = None  # executors ship the scorer, not the loaded model
        return state

    def setup(self) -> None:
        if self._rt is not None:
            return
        cfg = self.config
        device = models.resolve_device(cfg.device)
        models.set_threads(cfg.threads, device)
        tokenizer = models.load_tokenizer(cfg.model)
        model = models.load_sequence_classifier(cfg.model, device=device, dtype=cfg.dtype)
        labels = int(getattr(model.config, "num_labels", 0))
        if labels not in (1, 2):
            raise UsageError(f"reward_model_v1: the model at {cfg.model} has {labels} labels; expected 1 (a scalar "
                             f"reward) or 2 (negative, positive)")
        max_length = cfg.max_length or models.context_length(cfg.model, tokenizer)
        if max_length is None:
            raise UsageError(f"reward_model_v1: the config of {cfg.model} gives no context length; set max_length")
        self._rt = {"device": device, "tokenizer": tokenizer, "model": model, "labels": labels,
                    "max_length": max_length, "pad_id": tokenizer.pad_token_id}

    def _encode(self, texts: list[str], prompts: list[str | None]) -> tuple[np.ndarray, list, list | None]:
        """Encode rows without a prompt (text alone) and rows with one (pairs) in two tokenizer calls.

        Returns the rows in the order encoded, their token ids, and their token type ids when the tokenizer
        makes them (BERT pairs)."""
        tok, max_length = self._rt["tokenizer"], self._rt["max_length"]
        has_prompt = np.fromiter((bool(p) for p in prompts), dtype=bool, count=len(texts))
        single, paired = np.flatnonzero(~has_prompt), np.flatnonzero(has_prompt)
        kwargs = {"truncation": "longest_first", "max_length": max_length, "return_attention_mask": False}
        ids: list = []
        types: list | None = []
        if len(single):
            enc = tok([texts[i] for i in single], **kwargs)
            ids += enc["input_ids"]
            types = types + enc["token_type_ids"] if "token_type_ids" in enc and types is not None else None
        if len(paired):
            enc = tok([prompts[i] for i in paired], [texts[i] for i in paired], **kwargs)
            ids += enc["input_ids"]
            types = types + enc["token_type_ids"] if "token_type_ids" in enc and types is not None else None
        return np.concatenate([single, paired]), ids, types

    def score(self, batch: pa.Table) -> pa.Table:
        import torch

        self.setup()
        rt = self._rt
        n = batch.num_rows
        texts = pc.fill_null(batch.column("text"), "").to_pylist()
        prompts = batch.column("prompt").to_pylist() if "prompt" in batch.column_names else [None] * n
        rows_enc, ids, types = self._encode(texts, prompts)
        # The encodings sit in encoding order (single rows, then pairs) in one flat array; lens and starts
        # are indexed by row.
        lens_enc = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        total = int(lens_enc.sum())
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=total)
        flat_types = np.fromiter(chain.from_iterable(types), dtype=np.int64, count=total) if types else None
        lens = np.zeros(n, dtype=np.int64)
        starts = np.zeros(n, dtype=np.int64)
        lens[rows_enc] = lens_enc
        starts[rows_enc] = np.cumsum(lens_enc) - lens_enc
        reward = np.zeros(n, dtype=np.float64)
        live = np.flatnonzero(lens > 0)
        step = self.config.batch_size if rt["pad_id"] is not None else 1
        model, device = rt["model"], rt["device"]
        with torch.inference_mode():
            # Longest first, right-padded under an attention mask (the batching of `curator.teacher_forcing`).
            for batch_rows in tf.length_batches(lens[live], step):
                pick = live[batch_rows]
                x, mask = tf.padded(flat, starts[pick], lens[pick], rt["pad_id"] or 0)
                inputs = {"input_ids": torch.from_numpy(x).to(device),
                          "attention_mask": torch.from_numpy(mask).to(device)}
                if flat_types is not None:  # padded with type 0, as the tokenizer pads
                    tt, _ = tf.padded(flat_types, starts[pick], lens[pick], 0)
                    inputs["token_type_ids"] = torch.from_numpy(tt).to(device)
                logits = model(**inputs).logits.float()
                value = logits[:, 0] if rt["labels"] == 1 else logits[:, 1] - logits[:, 0]
                reward[pick] = value.cpu().numpy()
        empty = lens == 0
        reward_arr = pa.array(reward, type=pa.float64(), mask=empty)
        if self.config.threshold is None:
            correct = pa.nulls(n, type=pa.bool_())
        else:
            correct = pa.array(reward >= self.config.threshold, type=pa.bool_(), mask=empty)
        return pa.table({"reward": reward_arr, "correct": correct})
