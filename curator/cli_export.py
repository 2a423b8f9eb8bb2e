"""`curator export`: a selection as deterministic training shards, and `--verify` of an export folder.

Kept apart from `cli.py` so the export command can be added to the group with `register(cli)`.
"""
from __future__ import annotations

from pathlib import Path

import click

from .errors import UsageError


@click.command("export")
@click.option("--selection", "-s", default=None, help="Selection to export (a name written by `curator select`).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl", "tokens"]), default="parquet", show_default=True,
              help="parquet/jsonl: one row per document; tokens: .bin tokens + .idx offsets + provenance sidecar.")
@click.option("--shards", default=1, show_default=True, help="Number of shards (sizes differ by at most one document).")
@click.option("--seed", default=0, show_default=True, help="Seed of the shuffle and of fractional weights.")
@click.option("--out", "-o", default=None, help="Output folder (must be empty or absent).")
@click.option("--tokenizer", default=None, help="tokens: a folder holding tokenizer.json (or the file).")
@click.option("--as-of", default=None, help="Store version or tag to read the selection at (default: current).")
@click.option("--overwrite", is_flag=True, help="Replace a previous export in --out.")
@click.option("--verify", "verify_dir", default=None, metavar="DIR",
              help="Check an export folder against its manifest (sizes and sha256) instead of exporting.")
@click.pass_context
def export(ctx: click.Context, selection: str | None, fmt: str, shards: int, seed: int, out: str | None,
           tokenizer: str | None, as_of: str | None, overwrite: bool, verify_dir: str | None) -> None:
    """Write a selection as shuffled, sharded training files with a manifest.

    Weights: a row of weight w is written floor(w) times, plus once more with probability w - floor(w)
    (seeded); weight 0 drops it. The same selection and seed give byte-identical shards. Each shard is
    recorded in the `exports` table; `--verify DIR` recomputes every file's sha256 against _manifest.json.
    """
    from .export import VerifyError, export as run_export, verify

    if verify_dir is not None:
        if selection or out:
            raise UsageError("--verify DIR checks an existing export; do not combine it with --selection or --out")
        report = verify(verify_dir)
        if not report.ok:
            raise VerifyError(report.message())
        click.echo(report.message())
        return
    if not selection or not out:
        raise UsageError("export needs --selection NAME and --out DIR (or --verify DIR)")
    from .progress import reporter
    from .store import Store

    store = Store(Path(ctx.obj["store"]))
    with reporter(ctx.obj["quiet"]) as progress:
        result = run_export(store, selection, fmt=fmt, shards=shards, seed=seed, out=out, tokenizer=tokenizer,
                            as_of=as_of, overwrite=overwrite, progress=progress)
    click.echo(f"exported selection '{selection}' (store version {result.store_version}): {result.documents} "
               f"document(s) from {result.selected_rows} selected row(s) into {len(result.shards)} {fmt} shard(s), "
               f"{result.bytes:,} bytes in {result.out}")
    click.echo(f"export id {result.export_id}; store version {result.run_version}; "
               f"check with: curator export --verify {result.out}")


def register(cli: click.Group) -> None:
    """Add `export` to the `curator` group (a second call changes nothing)."""
    if "export" not in cli.commands:
        cli.add_command(export)
