"""Option groups that several commands share, so that they read and behave the same everywhere."""
from __future__ import annotations

from collections.abc import Callable

import click


def _apply(options: list[Callable], f: Callable) -> Callable:
    for option in reversed(options):  # the first listed shows first in --help
        f = option(f)
    return f


def torch_options(f: Callable) -> Callable:
    """--device, --dtype, --threads: where and how a command's torch model runs (curator.models)."""
    return _apply([
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--dtype", default="auto", show_default=True,
                     help="auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16, ..."),
        click.option("--threads", type=int, default=None,
                     help="Torch CPU threads (default: CURATOR_TORCH_THREADS or torch's)."),
    ], f)


def generation_output_options(f: Callable) -> Callable:
    """--tokenizer, --no-stats, --tag: what a command that writes a generation adds to it."""
    return _apply([
        click.option("--tokenizer", default="word_v1", show_default=True,
                     help="Tokenizer of the generation's n-gram statistics: word_v1 or hf:PATH."),
        click.option("--no-stats", is_flag=True, help="Skip the n-gram statistics (run `curator stats` later)."),
        click.option("--tag", "tags", multiple=True, help="Tag the resulting store version (repeatable)."),
    ], f)
