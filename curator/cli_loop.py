"""`curator loop`: run or resume the loop of a TOML config (a thin wrapper over `curator.loop.run_loop`).

Kept apart from `cli.py` so the command can be added to the group with `register(cli)`.
"""
from __future__ import annotations

import click


@click.command("loop")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The loop's TOML config (see examples/loop.toml).")
@click.option("--workdir", default=None, help="Override [loop] workdir.")
@click.option("-q", "--quiet", "quiet_here", is_flag=True, help="No progress lines or bars.")
@click.pass_context
def loop(ctx: click.Context, config_path: str, workdir: str | None, quiet_here: bool) -> None:
    """Rounds of generate -> score -> shift -> select/edit/mix -> export -> train -> eval, in several arms
    side by side on the same human data, all in one store.

    Resumable: run the same command again after a crash and it continues from the last completed step
    (a changed config is refused). The store is [loop] store (default <workdir>/store); the group's
    `--store PATH` (or CURATOR_STORE), when given, overrides it. `curator log --lineage` shows where each
    checkpoint came from.
    """
    from click.core import ParameterSource

    from .loop import load_config, run_loop
    from .progress import reporter

    overrides = {"workdir": workdir}
    parent = ctx.parent
    if parent is not None and parent.get_parameter_source("store") in (ParameterSource.COMMANDLINE,
                                                                       ParameterSource.ENVIRONMENT):
        overrides["store"] = parent.params["store"]
    quiet = quiet_here or ctx.obj.get("quiet", False)
    cfg = load_config(config_path, overrides=overrides)
    with reporter(quiet) as progress:
        result = run_loop(cfg, progress=progress, echo=click.echo, quiet=quiet)
    for arm in cfg.arms:
        final = result.final(arm.name)
        ppl = "n/a" if final.perplexity is None else f"{final.perplexity:.2f}"
        click.echo(f"{arm.name}: round {final.round} checkpoint {final.checkpoint} (held-out perplexity {ppl})")


def register(cli: click.Group) -> None:
    """Add `loop` to the `curator` group (a second call changes nothing)."""
    if loop.name not in cli.commands:
        cli.add_command(loop)
