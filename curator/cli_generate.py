"""`curator generate`: sample completions from a local model into a new generation (a thin layer over
`curator.generate.generate`).

Kept out of `curator/cli.py` so that it can be wired in with one call: `register(cli)`.
"""
from __future__ import annotations

from pathlib import Path

import click

from .cli_options import generation_output_options, torch_options


@click.command("generate")
@click.option("--model", required=True, help="A local causal-LM checkpoint (folder with config.json).")
@click.option("--generation", "-g", type=int, required=True, help="Generation the samples go into (>= 1).")
@click.option("--prompts-from", type=int, default=None,
              help="Generation whose distinct prompts (or text prefixes of prompt-less samples) are the prompts.")
@click.option("--prompts-file", type=click.Path(dir_okay=False), default=None,
              help="JSONL with a prompt field (and optional reference), or plain text: one prompt per line.")
@click.option("--prompt-field", default="prompt", show_default=True,
              help="The prompt field of a JSONL prompts file.")
@click.option("--prefix-tokens", type=int, default=16, show_default=True,
              help="Prefix length (model tokens) of prompt-less samples used as prompts.")
@click.option("--samples-per-prompt", "-k", type=int, default=1, show_default=True, help="Completions per prompt.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Sampling temperature (0: greedy).")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling mass (1: off).")
@click.option("--top-k", type=int, default=0, show_default=True, help="Top-k cut (0: off).")
@click.option("--max-new-tokens", type=int, default=64, show_default=True,
              help="Tokens generated at most per sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws (same seed: same samples).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Sequences per batch (hf backend).")
@click.option("--backend", type=click.Choice(["auto", "hf", "vllm"]), default="auto", show_default=True,
              help="auto: vllm on a CUDA GPU when installed, else hf (transformers generate).")
@torch_options
@click.option("--tensor-parallel-size", type=int, default=None, help="vllm: GPUs per model replica.")
@click.option("--data-parallel-size", type=int, default=None, help="vllm: model replicas.")
@generation_output_options
@click.pass_context
def generate_command(ctx: click.Context, model: str, generation: int, prompts_from: int | None,
                     prompts_file: str | None, prompt_field: str, prefix_tokens: int, samples_per_prompt: int,
                     temperature: float, top_p: float, top_k: int, max_new_tokens: int, seed: int, batch_size: int,
                     backend: str, device: str, dtype: str, threads: int | None, tensor_parallel_size: int | None,
                     data_parallel_size: int | None, tokenizer: str, no_stats: bool, tags: tuple[str, ...]) -> None:
    """Generate completions with a local model into a new generation (origin `synthetic`).

    Prompts are the distinct prompts of --prompts-from (prompt-less samples give their first --prefix-tokens
    tokens as a prefix to continue) or the lines of --prompts-file. Each row records the model, every
    sampling parameter, the seed and its sample index; ids are content-addressed, so the same seed twice
    adds nothing.
    """
    from .generate import generate
    from .progress import reporter
    from .store import Store

    store = Store(Path(ctx.obj["store"]))
    with reporter(ctx.obj.get("quiet", False)) as progress:
        r = generate(store, model=model, generation=generation, prompts_from=prompts_from, prompts_file=prompts_file,
                     prompt_field=prompt_field, prefix_tokens=prefix_tokens, samples_per_prompt=samples_per_prompt,
                     temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens, seed=seed,
                     batch_size=batch_size, backend=backend, device=device, dtype=dtype, threads=threads,
                     tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                     tokenizer=tokenizer, stats=not no_stats, tags=tags, progress=progress)
    click.echo(f"generated {r.generated} samples from {r.prompts} prompts into generation {generation} with "
               f"{r.backend} ({r.rows_added} new, {r.duplicates} already present, {r.empty} empty): "
               f"{r.new_tokens} new tokens; store version {r.store_version}")


def register(cli: click.Group) -> None:
    """Add `generate` to the command group (a no-op when it already has one)."""
    if "generate" not in cli.commands:
        cli.add_command(generate_command, "generate")
