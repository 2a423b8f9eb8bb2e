"""`curator report`: the store's generations as one self-contained HTML page (charts per arm and round).

Kept apart from `cli.py` so the command can be added to the group with `register(cli)`.
"""
from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.option("--out", "-o", default="report.html", show_default=True, help="HTML file to write.")
@click.option("--loop", "loop", default=None, help="Loop to report (default: the store's latest loop run).")
@click.option("--as-of", default=None, help="Store version or tag to read.")
@click.option("--summary", "summary_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the per-arm, per-round numbers as JSON to this file.")
@click.pass_context
def report(ctx: click.Context, out: str, loop: str | None, as_of: str | None, summary_path: str | None) -> None:
    """Write an HTML report: per arm and round, held-out perplexity, distinct-n, concentration, divergence
    from the human data, verifier pass rates, perplexity histograms and over-represented bigrams.

    One file, viewable offline (inline CSS and SVG). A store without a loop run is reported as one arm,
    its synthetic generations in order as rounds.
    """
    import json

    from .report import json_safe, summary_rows, write_report
    from .store import Store

    store = Store(Path(ctx.obj["store"]))
    data = write_report(store, out, loop=loop, as_of=as_of)
    if summary_path:
        Path(summary_path).write_text(json.dumps(json_safe(summary_rows(data)), indent=1) + "\n")
    rounds = sum(len(a.rounds) - 1 for a in data.arms)
    click.echo(f"wrote {out}: {len(data.arms)} arm(s), {rounds} round(s) after the human data; store version "
               f"{data.store_version}")


def register(cli: click.Group) -> None:
    """Add `report` to the `curator` group (a second call changes nothing)."""
    if report.name not in cli.commands:
        cli.add_command(report)
