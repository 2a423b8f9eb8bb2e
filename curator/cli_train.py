"""`curator train` and `curator eval`: fine-tune a checkpoint on an export; score a checkpoint on held-out text.

Kept apart from `cli.py` so the commands can be added to the group with `register(cli)`.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import UsageError
from .cli_options import torch_options


def _json_or_path(value: str | None) -> str | dict | None:
    """--init-config: inline JSON (starts with '{') or the path of a JSON file."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise UsageError(f"--init-config {value!r}: not valid JSON ({exc})") from exc


@click.command("train")
@click.option("--export", "export_dir", required=True, help="An export folder written by `curator export`.")
@click.option("--base", default=None, help="Local checkpoint to start from (a transformers folder).")
@click.option("--init-config", default=None,
              help="From scratch instead of --base: a model config (JSON file, or inline JSON; model_type "
                   "defaults to gpt2). Needs --tokenizer.")
@click.option("--tokenizer", default=None, help="Tokenizer folder (default: the base's own).")
@click.option("--out", "-o", required=True, help="Folder for the new checkpoint (must be empty or absent).")
@click.option("--steps", type=int, default=None, help="Optimizer steps (default: one epoch).")
@click.option("--epochs", type=int, default=None, help="Passes over the export instead of --steps.")
@click.option("--batch-size", default=8, show_default=True, help="Blocks per micro-batch.")
@click.option("--block-size", type=int, default=None, help="Tokens per block (default: the context, at most 1024).")
@click.option("--lr", default=3e-4, show_default=True, help="Peak learning rate (cosine decay to lr/10).")
@click.option("--warmup", type=int, default=None, help="Linear warmup steps (default: a tenth of the steps).")
@click.option("--weight-decay", default=0.1, show_default=True, help="AdamW weight decay (matrices only).")
@click.option("--grad-accum", default=1, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--seed", default=0, show_default=True, help="Seed of the shuffle and (from scratch) the initialisation.")
@torch_options
@click.option("--overwrite", is_flag=True, help="Replace a previous checkpoint in --out.")
@click.pass_context
def train(ctx: click.Context, export_dir: str, base: str | None, init_config: str | None, tokenizer: str | None,
          out: str, steps: int | None, epochs: int | None, batch_size: int, block_size: int | None, lr: float,
          warmup: int | None, weight_decay: float, grad_accum: int, seed: int, device: str, dtype: str,
          threads: int | None, overwrite: bool) -> None:
    """Train a causal LM on an export and save the checkpoint (model + tokenizer + train_log.jsonl).

    Records a `train` run whose parent is the export run and whose checkpoints are [base, out]. The same
    seed and shards give identical weights on CPU.
    """
    from .progress import reporter
    from .store import Store
    from .train import train as run_train

    store = Store(Path(ctx.obj["store"]))
    with reporter(ctx.obj["quiet"]) as progress:
        result = run_train(store, export=export_dir, base=base, init_config=_json_or_path(init_config),
                           tokenizer=tokenizer, out=out, steps=steps, epochs=epochs, batch_size=batch_size,
                           block_size=block_size, lr=lr, warmup=warmup, weight_decay=weight_decay,
                           grad_accum=grad_accum, seed=seed, device=device, dtype=dtype, threads=threads,
                           overwrite=overwrite, progress=progress)
    click.echo(f"trained {result.steps} step(s) ({result.epochs:.2f} epoch(s) of {result.blocks} block(s) of "
               f"{result.block_size} tokens) on export {result.export_id}: loss {result.first_loss:.4f} -> "
               f"{result.last_loss:.4f} (mean {result.mean_loss:.4f}) in {result.seconds:.1f}s on {result.device}")
    click.echo(f"checkpoint {result.out}; run {result.run_id}")


@click.command("eval")
@click.option("--model", "-m", required=True, help="Checkpoint folder to evaluate.")
@click.option("--heldout", default=None, help="Held-out human text: a text file (one document per line) or JSONL.")
@click.option("--heldout-field", default="text", show_default=True, help="JSONL held-out: the field holding text.")
@click.option("--verifier", default=None, help="Verifier scorer for task accuracy (gsm8k_answer_v1, exact_match_v1).")
@click.option("--eval-set", default=None, help="JSONL with prompt/reference (or question/answer) for --verifier.")
@click.option("--limit", type=int, default=None, help="Evaluate the first N rows of --eval-set only.")
@click.option("--max-new-tokens", default=64, show_default=True, help="Greedy answer length for --eval-set.")
@click.option("--batch-size", default=16, show_default=True, help="Windows (or prompts) per forward pass.")
@click.option("--max-length", type=int, default=None, help="Perplexity window (default: the model's context).")
@click.option("--stride", type=int, default=None, help="Perplexity sliding-window step (default: max-length/2).")
@torch_options
@click.pass_context
def eval_(ctx: click.Context, model: str, heldout: str | None, heldout_field: str, verifier: str | None,
          eval_set: str | None, limit: int | None, max_new_tokens: int, batch_size: int, max_length: int | None,
          stride: int | None, device: str, dtype: str, threads: int | None) -> None:
    """Held-out perplexity of a checkpoint (token-weighted, perplexity_v1) and optional verifier accuracy.

    Records an `eval` run with the results in its summary.
    """
    from .evaluate import evaluate
    from .store import Store

    store = Store(Path(ctx.obj["store"]))
    result = evaluate(store, model=model, heldout=heldout, heldout_field=heldout_field, verifier=verifier,
                      eval_set=eval_set, limit=limit, max_new_tokens=max_new_tokens, batch_size=batch_size,
                      max_length=max_length, stride=stride, device=device, dtype=dtype, threads=threads)
    if result.perplexity is not None:
        click.echo(f"held-out perplexity {result.perplexity:.4f} over {result.heldout_tokens} token(s) in "
                   f"{result.heldout_documents} document(s)")
    if result.verifier:
        acc = "n/a" if result.accuracy is None else f"{result.accuracy:.4f}"
        click.echo(f"{result.verifier} accuracy {acc} ({result.correct}/{result.judged} judged, "
                   f"{result.eval_rows} row(s))")
    click.echo(f"model {result.model}; run {result.run_id}")


def register(cli: click.Group) -> None:
    """Add `train` and `eval` to the `curator` group (a second call changes nothing)."""
    for command in (train, eval_):
        if command.name not in cli.commands:
            cli.add_command(command)
