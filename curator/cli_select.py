"""CLI commands of the selectors: `curator select`, `curator audit`, `curator label-queue`.

Thin, like the rest of the CLI: each command parses its options, calls one library function in
`curator.selectors` and prints. `register(cli)` adds them to the `curator` group (idempotent).
"""
from __future__ import annotations

from typing import Any

import click

from .errors import UsageError


def _ctx_store(ctx: click.Context):
    from .store import Store

    return Store(ctx.obj["store"])


def _echo_table(rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    from .cli import _print_table

    _print_table(pa.Table.from_pylist(rows))


def _options(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


@click.command("select")
@click.option("--generation", "-g", type=int, required=True, help="Generation whose samples are the candidates.")
@click.option("--name", required=True, help="Selection name; a new run of the same name replaces its rows.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML: [[select]] steps (selector = \"verifier_v1\", options) and a [mix] table.")
@click.option("--verifier", default=None, help="Add a verifier_v1 step: keep samples this verifier accepts.")
@click.option("--verifier-config", default=None, help="config_hash of the verifier (when its table holds several).")
@click.option("--best-of-k", is_flag=True, help="After the verifier step, keep the best sample per prompt.")
@click.option("--best-score", default=None, metavar="SCORER.COLUMN",
              help="Score ranking --best-of-k (default: the verifier's correct; ties by sample_id).")
@click.option("--where", "wheres", multiple=True, metavar="'SCORER.COLUMN OP VALUE'",
              help="Add a threshold_v1 step, e.g. 'text_stats_v1.words >= 20' (repeatable).")
@click.option("--step", "steps", multiple=True, metavar="SELECTOR[:KEY=VALUE,...]",
              help="Add any selector step, e.g. exact_dedup_v1 or diversity_v1:k=100 (repeatable).")
@click.option("--dedup", is_flag=True, help="Add an exact_dedup_v1 step (against earlier generations).")
@click.option("--mix", "policy", type=click.Choice(["replace", "accumulate", "accumulate-subsample",
                                                    "human-fraction", "keep-human"]), default=None,
              help="Mixing policy (default: the config's, else replace).")
@click.option("--human-fraction", type=float, default=None, help="alpha for human-fraction; kept share for keep-human.")
@click.option("--size", type=int, default=None, help="Rows for accumulate-subsample (and human-fraction).")
@click.option("--previous", default=None, help="accumulate: the earlier selection whose rows stand for earlier generations.")
@click.option("--origin", "origins", multiple=True, help="Candidate origins (default: all but human; repeatable).")
@click.option("--seed", type=int, default=None, help="Seed of the sampling steps (default: the config's, else 0).")
@click.option("--tag", "tags", multiple=True, help="Tag the resulting store version (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the available selectors and exit.")
@click.pass_context
def select_cmd(ctx: click.Context, generation: int, name: str, config_path: str | None, verifier: str | None,
               verifier_config: str | None, best_of_k: bool, best_score: str | None, wheres: tuple[str, ...],
               steps: tuple[str, ...], dedup: bool, policy: str | None, human_fraction: float | None,
               size: int | None, previous: str | None, origins: tuple[str, ...], seed: int | None,
               tags: tuple[str, ...], list_only: bool) -> None:
    """Select training rows of a generation: a selector chain, then a mixing policy, stored as a selection.

    Steps run in this order: the config file's [[select]] steps, --verifier (and --best-of-k), --where,
    --step, --dedup. Prints the rows of every step and the exact counts by origin and generation.
    """
    from dataclasses import asdict

    from .selectors import available, create
    from .selectors.mixing import MixConfig
    from .selectors.pipeline import SelectConfig, load_config, select

    if list_only:
        click.echo("\n".join(available()))
        return
    cfg = load_config(config_path) if config_path else SelectConfig()
    chain = list(cfg.steps)
    if best_of_k and not verifier:
        raise UsageError("--best-of-k needs --verifier")
    if verifier:
        chain.append(create("verifier_v1", {"verifier": verifier, "config_hash": verifier_config}))
        if best_of_k:
            column = best_score or f"{verifier}.correct"
            chain.append(create("best_of_k_v1", {"column": column,
                                                 "config_hash": verifier_config if best_score is None else None}))
    chain += [create("threshold_v1", {"where": w}) for w in wheres]
    for spec in steps:
        sel, _, opts = spec.partition(":")
        chain.append(create(sel, _options(tuple(o for o in opts.split(",") if o), f"--step {sel} option")))
    if dedup:
        chain.append(create("exact_dedup_v1"))
    given = {k: v for k, v in (("policy", policy), ("human_fraction", human_fraction), ("size", size),
                                ("previous", previous)) if v is not None}
    # The config's [mix] options carry over only while the policy stays the config's own.
    base = asdict(cfg.mix) if policy is None or policy == cfg.mix.policy else {}
    mix_opts = {**base, **given}
    mix_cfg = MixConfig(**mix_opts)
    store = _ctx_store(ctx)
    result = select(store, generation=generation, name=name, steps=tuple(chain), mix_config=mix_cfg,
                    seed=seed if seed is not None else (cfg.seed or 0),
                    origins=tuple(origins) if origins else cfg.origins, tags=tags,
                    args={"config_file": config_path})
    if result.steps:
        _echo_table([{"step": i, "selector": s.selector, "rows_in": s.rows_in, "rows_out": s.rows_out}
                     for i, s in enumerate(result.steps, 1)])
    _echo_table(result.counts + [{"origin": "total", "generation": None, "rows": result.rows}])
    click.echo(f"selection {result.name}: {result.rows} rows (mix {mix_cfg.policy}, config {result.config_hash}); "
               f"store version {result.store_version}")


@click.command("audit")
@click.option("--oracle", required=True, help="Oracle verifier scorer (its correct is the truth), e.g. gold_answer_v1.")
@click.option("--oracle-config", default=None, help="config_hash of the oracle (when its table holds several).")
@click.option("--selection", default=None, help="Audit this selection's rows.")
@click.option("--verifier", "verifiers", multiple=True, help="Audit this verifier (scorer or scorer.column; repeatable).")
@click.option("--verifier-config", default=None, help="config_hash of the verifier.")
@click.option("--threshold", "thresholds", type=float, multiple=True,
              help="Keep when the verifier's column >= this (repeatable; default 0.5: a boolean's true).")
@click.option("--generation", "-g", type=int, default=None, help="Generation audited (default: the selection's, or all).")
@click.option("--as-of", default=None, help="Store version or tag to read.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_context
def audit_cmd(ctx: click.Context, oracle: str, oracle_config: str | None, selection: str | None,
              verifiers: tuple[str, ...], verifier_config: str | None, thresholds: tuple[float, ...],
              generation: int | None, as_of: str | None, fmt: str) -> None:
    """The verifier audit: keep-rate given correct, keep-rate given incorrect and precision against an oracle."""
    from .cli import _print_table
    from .selectors.audit import audit

    table = audit(_ctx_store(ctx), oracle=oracle, oracle_config=oracle_config, verifiers=verifiers,
                  verifier_config=verifier_config, thresholds=thresholds or (0.5,), selection=selection,
                  generation=generation, as_of=as_of)
    _print_table(table, fmt=fmt)


@click.command("label-queue")
@click.option("--generation", "-g", type=int, required=True, help="Generation whose prompts are ranked.")
@click.option("--budget", type=int, required=True, help="Prompts to write (the hardest first).")
@click.option("--verifier", default=None, help="Verifier scorer whose correct gives the pass rate (default: the only one that scored the generation).")
@click.option("--verifier-config", default=None, help="config_hash of the verifier.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="JSONL file for the labelers.")
@click.option("--include-labeled", is_flag=True, help="Also queue prompts that already have labels.")
@click.pass_context
def label_queue_cmd(ctx: click.Context, generation: int, budget: int, verifier: str | None, verifier_config: str | None,
                    out: str, include_labeled: bool) -> None:
    """Write the hardest prompts (1 - pass rate over their k samples) up to a budget, for labeling.

    Ingest the labels back with: curator ingest OUT -g N --origin labeled --text-field reference
    --prompt-field prompt --reference-field reference --parent-field prompt_id
    """
    from .selectors.budget import label_queue

    q = label_queue(_ctx_store(ctx), generation, budget, verifier, out, verifier_config=verifier_config,
                    include_labeled=include_labeled)
    click.echo(f"wrote {q.rows} of {q.prompts} prompts to {q.path} ({q.unsolved} unsolved, "
               f"{q.already_labeled} already labeled and left out)")


COMMANDS = (select_cmd, audit_cmd, label_queue_cmd)


def register(cli: click.Group) -> None:
    """Add the selector commands to `cli`, skipping any it already has."""
    for command in COMMANDS:
        if command.name not in cli.commands:
            cli.add_command(command)
