"""`curator edit`: the ToEdit token editor as a CLI command (a thin layer over `curator.transforms.edit`).

Kept out of `curator/cli.py` so that it can be wired in with one call: `register(cli)`.
"""
from __future__ import annotations

from pathlib import Path

import click

from .cli_options import generation_output_options, torch_options


@click.command("edit")
@click.option("--generation", "-g", type=int, default=0, show_default=True, help="Source generation to edit.")
@click.option("--into", type=int, required=True, help="Generation the edited samples go into (not 0, not the source).")
@click.option("--model", required=True, help="The prior: a local causal-LM checkpoint (folder with config.json).")
@click.option("--threshold", "-p", type=float, default=0.99, show_default=True,
              help="A position is eligible when the prior gives its token P >= this (above 1: nothing eligible).")
@click.option("--top-k", type=int, default=8, show_default=True, help="Replacements are drawn from the prior's top k.")
@click.option("--temperature", type=float, default=1.5, show_default=True,
              help="Draws are from softmax(logits / temperature) over the top k.")
@click.option("--delete-below", type=float, default=None,
              help="Also delete tokens with P below this (e.g. 0.001; default: no deletion).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws (with the parent's id).")
@click.option("--origin", "origins", multiple=True, default=("human",), show_default=True,
              type=click.Choice(["human", "synthetic", "edited", "labeled"]),
              help="Origins of the source generation to edit (repeatable).")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Windows per forward pass.")
@click.option("--max-length", type=int, default=None, help="Window length in tokens (default: the prior's context).")
@click.option("--stride", type=int, default=None, help="Window step for long documents (default: max-length / 2).")
@torch_options
@generation_output_options
@click.pass_context
def edit_command(ctx: click.Context, generation: int, into: int, model: str, threshold: float, top_k: int,
                 temperature: float, delete_below: float | None, seed: int, origins: tuple[str, ...], batch_size: int,
                 max_length: int | None, stride: int | None, device: str, dtype: str, threads: int | None,
                 tokenizer: str, no_stats: bool, tags: tuple[str, ...]) -> None:
    """Edit human documents token by token with a prior model (ToEdit) into a new generation.

    One teacher-forced pass of the prior over each document: a token the prior predicts with
    P >= --threshold is replaced by a draw from the prior's top-k at --temperature (it may draw the same
    token); with --delete-below, tokens the prior finds very unlikely are deleted. Edited samples have origin
    `edited` and `parent_id` = the source sample; per-token edits go to `edits`, per-sample counts to
    `edit_samples`. Seeded and idempotent: the same edit twice adds nothing.
    """
    from .progress import reporter
    from .store import Store
    from .transforms import edit

    store = Store(Path(ctx.obj["store"]))
    with reporter(ctx.obj.get("quiet", False)) as progress:
        r = edit(store, generation=generation, into=into, model=model, threshold=threshold, top_k=top_k,
                 temperature=temperature, delete_below=delete_below, seed=seed, batch_size=batch_size, device=device,
                 dtype=dtype, threads=threads, max_length=max_length, stride=stride, origins=origins,
                 tokenizer=tokenizer, stats=not no_stats, tags=tags, progress=progress)
    click.echo(f"edited {r.documents} samples of generation {generation} into generation {into} "
               f"({r.rows_added} new, {r.duplicates} already present, {r.skipped} already edited with this config): "
               f"{r.tokens} tokens, {r.eligible} eligible, {r.changed} changed, {r.deleted} deleted; "
               f"config {r.config_hash}; store version {r.store_version}")


def register(cli: click.Group) -> None:
    """Add `edit` to the command group (a no-op when it already has one)."""
    if "edit" not in cli.commands:
        cli.add_command(edit_command, "edit")
