"""The `curator` command: one thin command per verb.

Each command parses its options, calls one library function and prints the result. Library errors
(`CuratorError`) become a one-line message and an exit code here, at the boundary, and nowhere else.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .cli_options import generation_output_options
from .errors import AlarmError, CuratorError, UsageError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CuratorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


def _store_path(ctx: click.Context) -> Path:
    return Path(ctx.obj["store"])


def _open(ctx: click.Context, create: bool = False):
    from .store import Store

    return Store(_store_path(ctx), create=create)


def _console():
    from rich.console import Console

    # Piped output is read by people too (logs, CI): give tables room instead of 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200)


def _print_table(table, title: str | None = None, fmt: str = "table", output: str | None = None) -> None:
    """Print an Arrow table as a rich table on a terminal, or as csv/json/parquet."""
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        if not output:
            raise UsageError("--format parquet needs --output FILE")
        pq.write_table(table, output)
        return
    if fmt == "csv":
        import polars as pl

        frame = pl.from_arrow(table)
        # CSV has no nested values: lists and structs are written as JSON text.
        nested = [c for c, t in frame.schema.items() if isinstance(t, (pl.List, pl.Array, pl.Struct))]
        if nested:
            frame = frame.with_columns(pl.col(c).map_elements(lambda v: json.dumps(v.to_list() if hasattr(v, "to_list") else v, default=str),
                                                              return_dtype=pl.String) for c in nested)
        text = frame.write_csv()
        if output:
            Path(output).write_text(text)
        else:
            sys.stdout.write(text)
        return
    if fmt == "json":
        text = json.dumps(table.to_pylist(), default=str, indent=1)
        if output:
            Path(output).write_text(text + "\n")
        else:
            click.echo(text)
        return
    from rich.markup import escape
    from rich.table import Table

    rt = Table(title=title, show_lines=False)
    for name in table.column_names:
        rt.add_column(name, overflow="fold")
    for row in table.to_pylist():
        # Cells are data (n-grams, texts): escape them so '[...]' is never read as rich markup.
        cells = [escape(_cell(v)) for v in row.values()]
        if row.get("status") == "alarm":
            cells[list(row).index("status")] = "[bold red]alarm[/]"
        rt.add_row(*cells)
    _console().print(rt)
    if isinstance(table, pa.Table) and table.num_rows == 0:
        click.echo("(no rows)")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "store", envvar="CURATOR_STORE", default="curator-store", show_default=True,
              help="Store directory (env CURATOR_STORE).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(__version__, prog_name="curator")
@click.pass_context
def cli(ctx: click.Context, store: str, quiet: bool) -> None:
    """curator: curate synthetic training data without model collapse.

    Every generation's samples, n-gram statistics and provenance live in versioned Lance tables in a
    store directory; SQL (DuckDB) runs over them; `shift` tells whether a generation drifted from the
    human reference.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(store=store, quiet=quiet)


# ---- ingest ---------------------------------------------------------------------------------------
@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--generation", "-g", type=int, required=True, help="Generation number (0 = the human reference).")
@click.option("--origin", type=click.Choice(["human", "synthetic", "edited", "labeled"]), required=True)
@click.option("--text-field", default="text", show_default=True, help="Field holding the document text.")
@click.option("--prompt-field", default=None, help="Field holding the prompt.")
@click.option("--id-field", default=None, help="Field holding the input's own id (part of the content address).")
@click.option("--reference-field", default=None, help="Field holding the gold answer.")
@click.option("--parent-field", default=None, help="Field holding the parent sample or prompt id.")
@click.option("--no-metadata", is_flag=True, help="Drop the input's other fields instead of keeping them as JSON.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "csv", "tsv", "text"]), default=None,
              help="Input format (default: from the file extension).")
@click.option("--separator", default=None, help="Plain text: documents are split by this string instead of blank lines.")
@click.option("--model", default=None, help="Model that generated the rows.")
@click.option("--decoding", default=None, help="JSON object of decoding parameters and seed, stored per row.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="fail: stop at the first bad row, write nothing; skip: ingest good rows, record bad ones in `rejects`.")
@generation_output_options
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], generation: int, origin: str, text_field: str,
           prompt_field: str | None, id_field: str | None, reference_field: str | None, parent_field: str | None,
           no_metadata: bool, fmt: str | None, separator: str | None, model: str | None, decoding: str | None,
           on_error: str, tokenizer: str, no_stats: bool, tags: tuple[str, ...]) -> None:
    """Read JSONL, Parquet, CSV or plain-text files (or folders) into a generation.

    Content-addressed: ingesting the same rows twice adds nothing. Statistics of the generation are
    recomputed unless --no-stats.
    """
    from .ingest.pipeline import ingest as run_ingest
    from .ingest.readers import FieldMap
    from .progress import reporter

    try:
        decoding_obj = json.loads(decoding) if decoding else None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--decoding must be a JSON object, got {decoding!r}: {exc}") from exc
    fields = FieldMap(text=text_field, prompt=prompt_field, id=id_field, reference=reference_field,
                      parent=parent_field, extra=not no_metadata)
    store = _open(ctx, create=True)
    with reporter(ctx.obj["quiet"]) as progress:
        result = run_ingest(store, list(paths), generation=generation, origin=origin, fields=fields, fmt=fmt,
                            model=model, decoding=decoding_obj, on_error=on_error, text_separator=separator,
                            tokenizer=tokenizer, stats=not no_stats, tags=tags, progress=progress)
    click.echo(f"ingested {result.rows_added} new rows into generation {generation} ({result.origin}) "
               f"from {len(result.files)} file(s): {result.rows_read} read, {result.duplicates} already present, "
               f"{result.rejected} rejected; store version {result.store_version}")
    if result.rejected:
        click.echo(f"rejected rows: curator sql \"SELECT * FROM rejects WHERE ingest_run = '{result.run_id}'\"")


# ---- stats ----------------------------------------------------------------------------------------
def _generations(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise UsageError(f"--generation expects numbers separated by commas, got '{value}'") from exc


@cli.command()
@click.option("--generation", "-g", default=None, help="Generations, e.g. 0,1 (default: all).")
@click.option("--tokenizer", default="word_v1", show_default=True, help="word_v1 or hf:PATH (a tokenizer.json or its folder).")
@click.option("--buckets", default=10_000, show_default=True, help="Buckets of the hashed n-gram histograms.")
@click.option("--top-k", default=100, show_default=True, help="Exact top n-grams kept per n.")
@click.option("--sample-rate", default=16, show_default=True, help="Keep distinct n-grams with hash < 2^64/RATE for tail loss.")
@click.pass_context
def stats(ctx: click.Context, generation: str | None, tokenizer: str, buckets: int, top_k: int, sample_rate: int) -> None:
    """Recompute n-gram statistics (n = 1..4) of existing generations."""
    from .progress import reporter
    from .stats.corpus import recompute

    store = _open(ctx)
    with reporter(ctx.obj["quiet"]) as progress:
        summary = recompute(store, _generations(generation), tokenizer, progress=progress, buckets=buckets,
                            top_k=top_k, sample_rate=sample_rate)
    click.echo(f"statistics ({summary['tokenizer']}) recomputed; store version {store.version()}")


# ---- score ----------------------------------------------------------------------------------------
@cli.command()
@click.option("--generation", "-g", default=None, help="Generations to score, e.g. 0,1 (default: all).")
@click.option("--scorer", "-s", "scorers", multiple=True,
              help="Scorer: a versioned name (text_stats_v1), an entry-point name or module:Name (repeatable).")
@click.option("-o", "--option", "options", multiple=True, metavar="[SCORER.]KEY=VALUE",
              help="Scorer option, for every scorer that has it or for one (perplexity_v1.batch_size=8).")
@click.option("--model", default=None, help="Model path for scorers that take one (same as -o model=PATH).")
@click.option("--device", default=None, help="Device for scorers that take one: auto, cpu, cuda, cuda:1.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML file: scorers = [...] and a [<scorer>] table of options each.")
@click.option("--rescore", is_flag=True, help="Score again samples that already have scores of this scorer and config.")
@click.option("--batch-size", type=int, default=None, help="Samples per scorer call (default: each scorer's own).")
@click.option("--executor", "executor_name", type=click.Choice(["local", "processes"]), default="local", show_default=True,
              help="Where scorers run: local (this process) or processes (worker processes, one chunk of a fragment each).")
@click.option("--workers", default=0, show_default=True, help="Worker processes for --executor processes (0: one per core).")
@click.option("--list", "list_only", is_flag=True, help="List the available scorers and exit.")
@click.option("--tag", "tags", multiple=True, help="Tag the resulting store version (repeatable).")
@click.pass_context
def score(ctx: click.Context, generation: str | None, scorers: tuple[str, ...], options: tuple[str, ...],
          model: str | None, device: str | None, config_path: str | None, rescore: bool, batch_size: int | None,
          executor_name: str, workers: int, list_only: bool, tags: tuple[str, ...]) -> None:
    """Attach versioned scores to samples, each scorer into its own table `scores_<scorer>`.

    Incremental: samples already scored by the same scorer and config are skipped (--rescore forces).
    In SQL every scorer's table is `scores_<scorer>`, and the long view `scores(sample_id, scorer,
    config_hash, run_id, metric, value)` spans them all.
    """
    from .executors import executor
    from .progress import reporter
    from .scorers import available
    from .scorers.options import build_scorers
    from .scoring import score as run_score

    if list_only:
        click.echo("\n".join(available()))
        return
    built = build_scorers(list(scorers), list(options), model=model, device=device, config_file=config_path)
    store = _open(ctx)
    with reporter(ctx.obj["quiet"]) as progress:
        summaries = run_score(store, built, generations=_generations(generation), rescore=rescore,
                              batch_size=batch_size, executor=executor(executor_name, workers), progress=progress,
                              tags=tags)
    import pyarrow as pa

    rows = [{"scorer": s.scorer, "config_hash": s.config_hash, "table": s.table, "scored": s.scored,
             "skipped": s.skipped, "replaced": s.replaced, "samples/s": round(s.per_second, 1)} for s in summaries]
    _print_table(pa.Table.from_pylist(rows), title=f"store version {store.version()}")


# ---- shift ----------------------------------------------------------------------------------------
@cli.command()
@click.option("--generation", "-g", type=int, required=True, help="Generation to measure.")
@click.option("--baseline", "-b", type=int, default=0, show_default=True, help="Reference generation.")
@click.option("--origin", default="*", show_default=True, help="Origin group to compare ('*' = all).")
@click.option("--tokenizer", default="word_v1", show_default=True, help="Tokenizer of the statistics to compare.")
@click.option("--threshold", "thresholds", multiple=True, metavar="METRIC=VALUE",
              help="Override a threshold, by metric (js_divergence_2=0.1) or family (js_divergence=0.1).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML file with a [thresholds] table.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--fail-on", type=click.Choice(["alarm", "never"]), default="never", show_default=True,
              help="alarm: exit with status 4 when any metric is in alarm.")
@click.option("--top", default=10, show_default=True, help="Over-represented bigrams to list after the table (0: none).")
@click.option("--as-of", default=None, help="Store version or tag to read.")
@click.pass_context
def shift(ctx: click.Context, generation: int, baseline: int, origin: str, tokenizer: str, thresholds: tuple[str, ...],
          config_path: str | None, fmt: str, fail_on: str, top: int, as_of: str | None) -> None:
    """Distribution-shift report of a generation against a baseline (default 0, the human reference)."""
    import pyarrow as pa

    from .shift import Thresholds, overrepresented, shift_report
    from .stats.tokenize import get_tokenizer
    from .store.query import connect

    overrides: dict[str, float] = {}
    if config_path:
        import tomllib

        overrides.update(tomllib.loads(Path(config_path).read_text()).get("thresholds", {}))
    for item in thresholds:
        name, sep, value = item.partition("=")
        try:
            overrides[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--threshold expects METRIC=NUMBER, got '{item}'")
    store = _open(ctx)
    con = connect(store, as_of)
    tok_name = get_tokenizer(tokenizer).name if tokenizer != "word_v1" else tokenizer
    rows = shift_report(con, generation, baseline, origin=origin, tokenizer=tok_name,
                        thresholds=Thresholds.from_mapping(overrides))
    table = pa.Table.from_pylist([r.__dict__ for r in rows])
    if fmt == "json":
        click.echo(json.dumps([r.__dict__ for r in rows], indent=1))
    else:
        _print_table(table, title=f"shift: generation {generation} vs baseline {baseline} (origin {origin}, {tok_name})",
                     fmt=fmt)
        if fmt == "table" and top > 0:
            over = overrepresented(con, generation, baseline, origin=origin, tokenizer=tok_name, n=2, limit=top)
            if over.num_rows:
                _print_table(over, title="over-represented bigrams")
    alarms = [r.metric for r in rows if r.status == "alarm"]
    if fmt == "table":
        click.echo(f"{len(alarms)} metric(s) in alarm" + (f": {', '.join(alarms)}" if alarms else ""), err=True)
    if alarms and fail_on == "alarm":
        raise AlarmError(f"{len(alarms)} metric(s) in alarm: {', '.join(alarms)}")


# ---- sql ------------------------------------------------------------------------------------------
@cli.command()
@click.argument("query", required=False)
@click.option("--query", "-Q", "named", default=None, help="Run a named query from sql/ (e.g. shift/distinct_n).")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE", help="Query parameter (repeatable).")
@click.option("--as-of", default=None, help="Store version (a number) or tag to read.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default=None,
              help="Output format (default: table on a terminal, csv when piped).")
@click.option("--output", "-o", default=None, help="Write to this file instead of stdout.")
@click.option("--list", "list_queries", is_flag=True, help="List the named queries with their parameters.")
@click.pass_context
def sql(ctx: click.Context, query: str | None, named: str | None, params: tuple[tuple[str, str], ...],
        as_of: str | None, fmt: str | None, output: str | None, list_queries: bool) -> None:
    """Run read-only SQL (DuckDB) over the store's tables.

    Tables: samples, ngram_totals, ngram_buckets, ngram_top, ngram_sample, rejects, runs, one
    scores_<scorer> per scorer used, and the long view scores(sample_id, scorer, config_hash, run_id,
    metric, value).
    Parameters are bound, never formatted: `curator sql "SELECT * FROM samples WHERE generation = $g" -p g 1`.
    """
    from .store import catalog
    from .store.query import connect, run_sql

    if list_queries:
        import pyarrow as pa

        rows = [{"name": q.name, "params": ", ".join(f"{p.name}{'' if p.required else '=' + repr(p.default)}"
                                                     for p in q.params), "description": q.description}
                for q in catalog.catalogue().values()]
        _print_table(pa.Table.from_pylist(rows), fmt=fmt or "table", output=output)
        return
    if (query is None) == (named is None):
        raise UsageError("give either a SQL text or --query NAME")
    given = dict(params)
    if named:
        nq = catalog.get(named)
        text, bound = nq.sql, nq.bind(given)
    else:
        text, bound = query, given
    store = _open(ctx)
    con = connect(store, as_of)
    if named:
        missing = nq.missing_score_tables(con, bound)
        if missing:
            raise UsageError(f"query '{named}' needs score tables or columns the store lacks: {', '.join(missing)}; "
                             f"run `curator score` with those scorers first")
    try:
        result = run_sql(con, text, bound)
    except Exception as exc:  # duckdb raises many types; all mean "your query failed"
        import duckdb

        if isinstance(exc, duckdb.Error):
            raise UsageError(f"query failed: {exc}") from exc
        raise
    fmt = fmt or ("table" if sys.stdout.isatty() or output else "csv")
    _print_table(result, fmt=fmt, output=output)


# ---- log / tag / tables ---------------------------------------------------------------------------
@cli.command()
@click.option("--limit", default=50, show_default=True, help="Newest runs to show.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--lineage", is_flag=True, help="Instead: each checkpoint's lineage back to the human data, as trees.")
@click.pass_context
def log(ctx: click.Context, limit: int, fmt: str, lineage: bool) -> None:
    """The store's run log: every command that wrote, with the table versions it left and its tags.

    With --lineage: for each trained checkpoint, the chain train <- export <- selection <- generate <- the
    model that generated <- ... <- human ingest (generation 0), from the runs table.
    """
    import pyarrow as pa

    store = _open(ctx)
    if lineage:
        from .lineage import format_trees, lineage as trees

        found = trees(store)
        click.echo(json.dumps(found, indent=1, default=str) if fmt == "json" else format_trees(found))
        return
    runs = store.runs().to_pylist()[-limit:]
    tags: dict[int, list[str]] = {}
    for name, seq in store.tags().items():
        tags.setdefault(seq, []).append(name)
    rows = []
    for r in runs:
        rows.append({
            "version": r["seq"], "run_id": r["run_id"], "command": r["command"],
            "when": r["ended_at"].strftime("%Y-%m-%d %H:%M:%S"), "generations": ",".join(map(str, r["generations"])),
            "wrote": _wrote(r),
            "parents": ", ".join(r["parents"]), "tags": ", ".join(sorted(tags.get(r["seq"], []))),
            "summary": r["summary"],
        })
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    else:
        _print_table(pa.Table.from_pylist(rows), title=f"runs of {store.root}")


def _wrote(run: dict) -> str:
    """Tables a run wrote with their versions, the four n-gram tables folded into one entry."""
    versions = json.loads(run["tables"])
    parts, ngram = [], []
    for t in run["written"]:
        (ngram if t.startswith("ngram_") else parts).append(f"{t}@{versions[t]}")
    if ngram:
        parts.append(f"ngram_*({len(ngram)})")
    return ", ".join(parts)


@cli.command()
@click.argument("name")
@click.option("--version", "version", default=None, help="Store version to tag (default: the current one).")
@click.pass_context
def tag(ctx: click.Context, name: str, version: str | None) -> None:
    """Name a store version, so that `--as-of NAME` reads it later."""
    store = _open(ctx)
    seq = store.tag(name, version)
    click.echo(f"tagged store version {seq} as '{name}'")


@cli.command()
@click.option("--as-of", default=None, help="Store version or tag.")
@click.pass_context
def tables(ctx: click.Context, as_of: str | None) -> None:
    """The store's tables with their Lance versions and row counts."""
    import pyarrow as pa

    from .store.schema import SCORES_LAYOUT, SCORES_PREFIX, is_score_table, table_schema

    store = _open(ctx)
    versions = store.table_versions(as_of)
    rows = []
    for name, version in sorted(versions.items()):
        if is_score_table(name):
            schema, description = f"scores v{SCORES_LAYOUT}", f"scores of {name.removeprefix(SCORES_PREFIX)}, one row per (sample, config)"
        else:
            schema, description = f"v{table_schema(name).version}", table_schema(name).description
        rows.append({"table": name, "lance_version": version, "rows": store.dataset(name, as_of).count_rows(),
                     "schema": schema, "description": description})
    rows.append({"table": "runs", "lance_version": store.dataset("runs").version, "rows": store.runs(as_of).num_rows,
                 "schema": f"v{table_schema('runs').version}", "description": table_schema("runs").description})
    _print_table(pa.Table.from_pylist(rows), title=f"store {store.root} at version {store.resolve(as_of) if as_of else store.version()}")


# ---- demo -----------------------------------------------------------------------------------------
@cli.command()
@click.option("--out", default="demo-out", show_default=True,
              help="Directory for the demo's store, report.html, summary.json and main_plot.svg.")
@click.option("--corpus", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Human corpus (a text file, documents split by blank lines) instead of the stdlib docstrings.")
@click.option("--quick", is_flag=True, help="Fewer rounds and documents (the same design): a few minutes.")
@click.option("--resume", is_flag=True, help="Continue an interrupted demo in --out instead of starting afresh.")
@click.option("--seed", default=0, show_default=True)
@click.pass_context
def demo(ctx: click.Context, out: str, corpus: str | None, quick: bool, resume: bool, seed: int) -> None:
    """Model collapse and its prevention: a tiny GPT-2 trained on its own outputs for several rounds in three
    arms (replace, accumulate, curated), with the report to look at."""
    from .demo import run_demo

    run_demo(Path(out), corpus=Path(corpus) if corpus else None, seed=seed, quick=quick, resume=resume,
             quiet=ctx.obj["quiet"], echo=click.echo)


# Commands that live in their own modules (one per area), added to the group here.
def _register_commands() -> None:
    from . import cli_edit, cli_export, cli_generate, cli_loop, cli_report, cli_select, cli_train

    cli_generate.register(cli)
    cli_select.register(cli)
    cli_edit.register(cli)
    cli_export.register(cli)
    cli_train.register(cli)
    cli_loop.register(cli)
    cli_report.register(cli)


_register_commands()


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cli(obj={})


if __name__ == "__main__":
    main()
