"""`train`: fine-tune (or train from scratch) a causal LM on an export, and record the run.

One file, top to bottom, in the spirit of nanoGPT's train.py:

1. the data: every token of the export in export order, one stream (text shards are tokenized with the
   model's tokenizer, each document followed by eos; a `tokens` export is read as is);
2. the blocks: the stream cut into consecutive windows of `block_size + 1` tokens that overlap by one token,
   so that x = b[:-1], y = b[1:] and every token after the first is a target exactly once per epoch;
3. the loop: shuffled blocks (a seeded generator, a fresh permutation each epoch), `batch_size` blocks per
   micro-batch, `grad_accum` micro-batches per AdamW step, linear warmup then cosine decay to lr / 10,
   gradients clipped to norm 1;
4. the checkpoint: `save_pretrained` model + tokenizer (loads with transformers and vLLM) and a
   `train_log.jsonl`, written into a staging folder and moved into place at the end;
5. the run (when a store is given): command "train", parents = the export run, checkpoints = [base, out].

Determinism: on CPU, the same seed, shards, options and thread count give bit-identical weights (the
shuffle, the initialisation and any dropout draw from seeded generators; CPU kernels are deterministic for
a fixed thread count). On a GPU, cuBLAS/cuDNN reductions may differ in the last bits between runs.

Precision: weights and optimizer state stay float32; `dtype="bfloat16"` (the default on a GPU) runs the
forward pass under autocast, as nanoGPT does. float16 would need a loss scaler and is refused.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import models
from .errors import UsageError
from .outputs import check_output_folder
from .progress import NullReporter, Reporter
from .store.faults import crash_point

TRAIN_LOG = "train_log.jsonl"
DEFAULT_BLOCK = 1024
_TEXT_BATCH = 1024  # documents tokenized per tokenizer call


@dataclass
class TrainResult:
    out: Path
    steps: int                      # optimizer steps taken
    epochs: float                   # passes over the blocks (micro-batches seen / micro-batches per epoch)
    blocks: int                     # blocks per epoch
    block_size: int                 # the block size used (the requested one, capped by context and data)
    tokens: int                     # tokens in the export's stream
    tokens_trained: int             # target tokens seen by the optimizer
    first_loss: float
    last_loss: float
    mean_loss: float
    losses: list[float] = field(default_factory=list)   # one per optimizer step
    seconds: float = 0.0
    device: str = "cpu"
    dtype: str = "float32"
    export_id: str | None = None
    selection: str | None = None
    run_id: str | None = None       # the "train" run, when a store was given


# --------------------------------------------------------------------------- the model and its tokenizer


def _init_model(base: str | Path | None, init_config: str | Path | dict[str, Any] | None,
                tokenizer_path: str | Path | None, seed: int) -> tuple[Any, Any]:
    """(model in float32, tokenizer): a local checkpoint, or a fresh model from a config and a tokenizer."""
    import torch

    if (base is None) == (init_config is None):
        raise UsageError("train needs exactly one of base (a checkpoint folder) or init_config (a model config "
                         f"for a from-scratch run); got base={base!r}, init_config={init_config!r}")
    if base is not None:
        # cache=False: the trainer changes the weights, and cached models are shared read-only copies.
        model = models.load_causal_lm(base, device="cpu", dtype="float32", cache=False)
        return model, models.load_tokenizer(tokenizer_path or base, cache=False)
    if tokenizer_path is None:
        raise UsageError("init_config needs a tokenizer: give tokenizer=PATH (a folder holding tokenizer.json)")
    tokenizer = models.load_tokenizer(tokenizer_path, cache=False)
    if isinstance(init_config, dict):
        cfg = dict(init_config)
    else:
        p = Path(init_config)
        if not p.is_file():
            raise UsageError(f"init_config '{init_config}': no such file (expected a JSON model config)")
        cfg = models.read_json(p)
    transformers = models.require("transformers", "transformers", "curator train")
    model_type = cfg.pop("model_type", "gpt2")
    # The embedding must cover the tokenizer, and generate() must know its special tokens.
    cfg.setdefault("vocab_size", len(tokenizer))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        cfg.setdefault(key, getattr(tokenizer, key))
    try:
        config = transformers.AutoConfig.for_model(model_type, **cfg)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"init_config: cannot build a '{model_type}' config: {exc}") from exc
    torch.manual_seed(seed)  # the initialisation is part of what the seed fixes
    return transformers.AutoModelForCausalLM.from_config(config), tokenizer


# --------------------------------------------------------------------------- the data


def _token_stream(folder: Path, manifest: dict[str, Any], tokenizer: Any, vocab: int) -> np.ndarray:
    """Every token of the export, in export order, as one int64 array (documents end with eos)."""
    from .export.reader import ShardDataset

    eos = tokenizer.eos_token_id
    if manifest["format"] == "tokens":
        info = manifest.get("tokenizer") or {}
        if eos is not None and info.get("eos_id") is not None and int(info["eos_id"]) != int(eos):
            raise UsageError(f"export '{folder}' was tokenized with eos id {info['eos_id']} ({info.get('name')}), "
                             f"the model's tokenizer has eos id {eos}: export again with the model's tokenizer")
        dtype = np.dtype(info["dtype"]).newbyteorder("<")
        parts = []
        for shard in manifest["shards"]:
            if shard["bytes"]:
                parts.append(np.fromfile((folder / shard["path"]).with_suffix(".bin"), dtype=dtype))
        stream = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        if len(stream) and int(stream.max()) >= vocab:
            raise UsageError(f"export '{folder}' holds token id {int(stream.max())}, beyond the model's vocabulary "
                             f"of {vocab}: export again with the model's tokenizer")
        return stream
    if eos is None:
        raise UsageError("the model's tokenizer has no eos token: documents could not be separated in the stream")
    ids: list[np.ndarray] = []
    texts: list[str] = []

    def flush() -> None:
        # Same rule as the tokens export: no special tokens from the tokenizer, eos appended by us.
        for enc in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
            ids.append(np.asarray(enc + [eos], dtype=np.int64))
        texts.clear()

    for row in ShardDataset(folder, columns=["text"]):
        texts.append(row["text"] or "")
        if len(texts) >= _TEXT_BATCH:
            flush()
    flush()
    return np.concatenate(ids) if ids else np.zeros(0, np.int64)


def _blocks(stream: np.ndarray, block_size: int) -> Any:
    """[n, block_size + 1] int64 tensor: consecutive windows of the stream overlapping by one token.

    Blocks cross document boundaries (attention too), as in GPT-2 pre-training: eos tells the model where
    a document ends, and no token is wasted on padding. The tail that does not fill a block is dropped."""
    import torch

    n = (len(stream) - 1) // block_size
    starts = np.arange(n, dtype=np.int64)[:, None] * block_size
    return torch.from_numpy(stream[starts + np.arange(block_size + 1)])


def _lr_at(step: int, *, lr: float, warmup: int, total: int) -> float:
    """Linear warmup from lr / warmup to lr, then cosine decay to lr / 10 at the last step (nanoGPT)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if total <= warmup + 1:
        return lr
    progress = (step - warmup) / (total - 1 - warmup)
    return lr / 10 + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - lr / 10)


def _optimizer(model: Any, lr: float, weight_decay: float) -> Any:
    """AdamW with decay on matrices only: biases, layer norms (and 1-D embeddings) are not decayed (nanoGPT)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # foreach=False: the plain per-parameter loop is the same arithmetic on every machine and thread count.
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), foreach=False)


# --------------------------------------------------------------------------- the run


def _export_run(store: Any, export_id: str, folder: Path) -> dict[str, Any]:
    import pyarrow.compute as pc

    runs = store.runs()
    for row in runs.filter(pc.equal(runs["run_id"], export_id)).to_pylist():
        if row["command"] == "export":
            return row
    raise UsageError(f"export '{folder}' (export id {export_id}) was not made in store {store.root}: "
                     f"give the store it was exported from, or no store")


def train(store: Any | None = None, *, export: str | Path, base: str | Path | None = None,
          init_config: str | Path | dict[str, Any] | None = None, tokenizer: str | Path | None = None,
          out: str | Path, steps: int | None = None, epochs: int | None = None, batch_size: int = 8,
          block_size: int | None = None, lr: float = 3e-4, warmup: int | None = None, weight_decay: float = 0.1,
          grad_accum: int = 1, seed: int = 0, device: str = "auto", dtype: str = "auto",
          threads: int | None = None, overwrite: bool = False,
          progress: Reporter | None = None) -> TrainResult:
    """Train `base` (or a fresh model from `init_config` + `tokenizer`) on the export folder `export` and save
    the checkpoint to `out` (see the module docstring). Give `steps` or `epochs` (default: one epoch)."""
    import torch

    from .export.manifest import read_manifest

    started = time.perf_counter()
    if steps is not None and epochs is not None:
        raise UsageError(f"give steps or epochs, not both (steps={steps}, epochs={epochs})")
    for name, value in (("steps", steps), ("epochs", epochs), ("batch_size", batch_size),
                        ("block_size", block_size), ("grad_accum", grad_accum)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise UsageError(f"{name}={value!r}: expected a positive integer")
    if not lr > 0:
        raise UsageError(f"lr={lr!r}: expected a positive number")
    if weight_decay < 0:
        raise UsageError(f"weight_decay={weight_decay!r}: expected a non-negative number")
    if warmup is not None and warmup < 0:
        raise UsageError(f"warmup={warmup!r}: expected a non-negative integer")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed={seed!r}: expected a non-negative integer")
    dtype_name = models.check_dtype(dtype)
    if dtype_name == "float16":
        raise UsageError("dtype=float16 needs a loss scaler, which train does not have: use bfloat16 or float32")
    folder = Path(export)
    manifest = read_manifest(folder)
    out = Path(out).absolute()
    if base is not None and out == Path(base).absolute():
        raise UsageError(f"out '{out}' is the base checkpoint; write the new checkpoint elsewhere")
    check_output_folder(out, overwrite, marker="config.json", what="checkpoint")
    export_run = _export_run(store, manifest["export_id"], folder) if store is not None else None
    dev = models.resolve_device(device)
    amp = models.resolve_dtype(dtype_name, dev)  # auto: bfloat16 on a GPU, float32 on CPU
    used_threads = models.set_threads(threads, dev)
    progress = progress or NullReporter()

    # ---- 1. model and data ---------------------------------------------------------------------------
    model, tok = _init_model(base, init_config, tokenizer, int(seed))
    vocab = int(model.get_input_embeddings().weight.shape[0])
    stream = _token_stream(folder, manifest, tok, vocab)
    context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    block = min(block_size or DEFAULT_BLOCK, context or DEFAULT_BLOCK, max(len(stream) - 1, 0))
    if block < 1:
        raise UsageError(f"export '{folder}' holds {len(stream)} token(s): nothing to train on")
    data = _blocks(stream, block)
    n_blocks = len(data)
    micro_per_epoch = math.ceil(n_blocks / batch_size)
    total = steps if steps is not None else math.ceil((epochs or 1) * micro_per_epoch / grad_accum)
    warm = warmup if warmup is not None else total // 10

    # ---- 2. the loop ---------------------------------------------------------------------------------
    torch.manual_seed(int(seed))  # dropout, when the config has any
    gen = torch.Generator().manual_seed(int(seed))  # the shuffle, apart from the model's own draws

    def micro_batches() -> Any:
        while True:  # epochs until the step count is reached: a fresh permutation each time
            order = torch.randperm(n_blocks, generator=gen)
            for i in range(0, n_blocks, batch_size):
                yield data[order[i:i + batch_size]]

    model.to(dev)
    model.train()
    model.requires_grad_(True)
    opt = _optimizer(model, lr, weight_decay)
    use_amp = amp != torch.float32
    batches = micro_batches()
    losses: list[float] = []
    log: list[dict[str, Any]] = []
    seen = trained = 0
    bar = progress.task("train", total=total, unit="steps")
    for step in range(total):
        rate = _lr_at(step, lr=lr, warmup=warm, total=total)
        for group in opt.param_groups:
            group["lr"] = rate
        step_loss = 0.0
        for _ in range(grad_accum):
            b = next(batches).to(dev)
            x, y = b[:, :-1], b[:, 1:]
            with torch.autocast(device_type=dev.split(":")[0], dtype=amp, enabled=use_amp):
                logits = model(input_ids=x, use_cache=False).logits
            # The loss in float32 whatever the autocast dtype: log-softmax over a large vocabulary in bf16
            # loses the small probabilities.
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
            # Dividing by grad_accum makes the accumulated gradient the mean over the whole step's batch.
            (loss / grad_accum).backward()
            step_loss += loss.item() / grad_accum
            seen += 1
            trained += y.numel()
        # Clipping keeps one bad batch (a long repeated synthetic sequence, say) from wrecking the weights.
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        crash_point("train-step")  # the loop's resume tests kill a run here, mid-training
        opt.zero_grad(set_to_none=True)
        losses.append(step_loss)
        log.append({"step": step + 1, "loss": step_loss, "lr": rate, "tokens": trained,
                    "epoch": seen / micro_per_epoch, "seconds": round(time.perf_counter() - started, 3)})
        bar.advance(1)
    model.eval()

    # ---- 3. the checkpoint ---------------------------------------------------------------------------
    stage = out.parent / f".{out.name}.partial-{int(time.time() * 1e6):x}"
    stage.mkdir(parents=True)
    bars = models.require("transformers", "transformers", "curator train").utils.logging
    was = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # a "Writing model shards" bar would interleave with curator's own progress
    try:
        model.to("cpu").save_pretrained(stage)
        tok.save_pretrained(stage)
        (stage / TRAIN_LOG).write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)  # empty, or a previous checkpoint (checked above) replaced under overwrite
            models.clear_cache()  # a cached copy of the old checkpoint at this path must not be served again
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if was:
            bars.enable_progress_bar()

    result = TrainResult(
        out=out, steps=total, epochs=seen / micro_per_epoch, blocks=n_blocks, block_size=block, tokens=len(stream),
        tokens_trained=trained, first_loss=losses[0], last_loss=losses[-1], mean_loss=float(np.mean(losses)),
        losses=losses, device=dev, dtype=str(amp).removeprefix("torch."), export_id=manifest["export_id"],
        selection=manifest.get("selection"), seconds=time.perf_counter() - started)

    # ---- 4. the run ----------------------------------------------------------------------------------
    if store is not None:
        # Recorded after training, in a short transaction: holding the store's writer lock for the whole
        # training would block every other writer (scoring the next generation, say) for its duration.
        args = {"export": str(folder.absolute()), "export_id": result.export_id, "selection": result.selection,
                "base": str(Path(base).absolute()) if base is not None else None,
                "init_config": init_config if isinstance(init_config, dict) or init_config is None
                else str(init_config), "tokenizer": str(tokenizer) if tokenizer else None, "out": str(out),
                "steps": steps, "epochs": epochs, "batch_size": batch_size, "block_size": block_size, "lr": lr,
                "warmup": warmup, "weight_decay": weight_decay, "grad_accum": grad_accum, "seed": int(seed),
                "device": device, "dtype": dtype, "threads": threads}
        with store.transaction("train", args) as tx:
            tx.parents.append(result.export_id)
            tx.generations.update(int(g) for g in (export_run or {}).get("generations") or [])
            tx.checkpoints.extend(([args["base"]] if base is not None else []) + [str(out)])
            tx.summary = {"export_id": result.export_id, "selection": result.selection,
                          "format": manifest["format"], "documents": manifest.get("documents"),
                          "tokens": result.tokens, "blocks": n_blocks, "block_size": block, "steps": total,
                          "epochs": result.epochs, "tokens_trained": trained, "first_loss": result.first_loss,
                          "last_loss": result.last_loss, "mean_loss": result.mean_loss,
                          "min_loss": float(np.min(losses)), "seconds": result.seconds, "device": dev,
                          "dtype": result.dtype, "threads": used_threads, "out": str(out)}
            result.run_id = tx.run_id
    return result
