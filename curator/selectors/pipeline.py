"""A select run: a selector chain over generation N's candidates, a mixing policy, and the result written to
`selections` in one store transaction (command "select"), recorded in `runs`.

`select(store, generation=N, steps=[...], mix=MixConfig(...), name="round3")`:

1. candidates: generation N's samples of the chosen origins (default: every origin but human; human rows
   enter through the mixing policy), in sample_id order, weight 1.0, no reason yet;
2. each step (a `Selector`) keeps a subset and appends its reason; the rows in and out of every step are
   reported;
3. the mixing policy (`mixing.py`) adds human and earlier rows;
4. in one transaction: the rows of selection `name` are replaced by the new ones (the old rows stay
   readable at earlier store versions: `--as-of`), band keys a near-dedup step computed go to `minhash`,
   and the run is tagged `select-<name>`. The chain, the policy and their hash are the run's args; the hash
   is also on every row (`config_hash`).

The chain reads the store as the last committed run left it (a DuckDB connection over pinned Lance
versions), so a select run is deterministic given the store version, the config and the seed.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import UsageError
from ..store import Store
from ..store.query import connect
from ..store.store import validate_tag
from .base import CANDIDATE_SCHEMA, SelectContext, Selector, config_hash
from .mixing import MixConfig, counts, mix
from .registry import create

ORIGINS = ("human", "synthetic", "edited", "labeled")


@dataclass
class StepReport:
    selector: str
    rows_in: int
    rows_out: int


@dataclass
class SelectResult:
    name: str
    generation: int
    config_hash: str
    rows: int
    counts: list[dict]  # {origin, generation, rows}, sorted by generation then origin
    steps: list[StepReport] = field(default_factory=list)
    run_id: str = ""
    store_version: int = 0


@dataclass(frozen=True)
class SelectConfig:
    """A chain and a policy, as read from TOML (`[[select]]` steps and a `[mix]` table)."""

    steps: tuple[Selector, ...] = ()
    mix: MixConfig = MixConfig()
    seed: int | None = None
    origins: tuple[str, ...] | None = None


def build_steps(specs: list[dict[str, Any]]) -> tuple[Selector, ...]:
    """Selectors from `{"selector": name, **options}` dicts (the `[[select]]` tables of a config file)."""
    steps = []
    for i, spec in enumerate(specs, 1):
        spec = dict(spec)
        name = spec.pop("selector", None)
        if not isinstance(name, str):
            raise UsageError(f"select step {i}: needs selector = \"<name>\" (e.g. verifier_v1), got {name!r}")
        steps.append(create(name, spec))
    return tuple(steps)


def load_config(path: str | Path) -> SelectConfig:
    """Read a chain file::

        seed = 1                       # optional
        origins = ["synthetic"]        # optional: candidate origins
        [[select]]
        selector = "verifier_v1"
        verifier = "gsm8k_answer_v1"
        [[select]]
        selector = "exact_dedup_v1"
        [mix]
        policy = "accumulate"
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read select config {path}: {exc}") from exc
    unknown = sorted(set(data) - {"select", "mix", "seed", "origins"})
    if unknown:
        raise UsageError(f"select config {path}: unknown keys {unknown}; expected select, mix, seed, origins")
    steps = data.get("select", [])
    if not isinstance(steps, list):
        raise UsageError(f"select config {path}: 'select' must be an array of tables ([[select]]), got {type(steps).__name__}")
    mix_opts = data.get("mix", {})
    try:
        mix_cfg = MixConfig(**mix_opts)
    except TypeError as exc:
        raise UsageError(f"select config {path}: bad [mix] table {mix_opts}: {exc}") from exc
    origins = data.get("origins")
    return SelectConfig(build_steps(steps), mix_cfg, data.get("seed"), tuple(origins) if origins is not None else None)


def _check_name(name: str) -> str:
    try:
        return validate_tag(name)
    except UsageError as exc:
        raise UsageError(f"invalid selection name {name!r}: use letters, digits, '.', '-' and '_'") from exc


def candidates(ctx: SelectContext, origins: tuple[str, ...] | None) -> pa.Table:
    origins = tuple(o for o in ORIGINS if o != "human") if origins is None else origins
    bad = sorted(set(origins) - set(ORIGINS))
    if bad:
        raise UsageError(f"unknown origin(s) {bad}; origins: {', '.join(ORIGINS)}")
    rows = ctx.sql("SELECT sample_id, generation, origin, prompt_id, text_hash, 1.0::DOUBLE AS weight, '' AS reason "
                   "FROM samples WHERE generation = $g AND list_contains($o, origin) ORDER BY sample_id",
                   {"g": ctx.generation, "o": list(origins)})
    return rows.cast(CANDIDATE_SCHEMA)


def chain_config(generation: int, steps: tuple[Selector, ...], mix_cfg: MixConfig, seed: int,
                 origins: tuple[str, ...] | None, lineage: tuple[int, ...] | None = None) -> dict[str, Any]:
    out = {"generation": generation, "origins": list(origins) if origins is not None else None, "seed": seed,
           "chain": [{"selector": s.name, "config": s.config_dict()} for s in steps], "mix": asdict(mix_cfg)}
    if lineage is not None:  # absent rather than null: chains without one keep their earlier config hash
        out["lineage"] = sorted({int(g) for g in lineage})
    return out


def select(store: Store, *, generation: int, name: str, steps: tuple[Selector, ...] | list[Selector] = (),
           mix_config: MixConfig | None = None, seed: int = 0, origins: tuple[str, ...] | None = None,
           tags: tuple[str, ...] = (), args: dict[str, Any] | None = None,
           lineage: tuple[int, ...] | list[int] | None = None) -> SelectResult:
    """Run the chain and the policy for `generation` and store the rows as selection `name` (one run).

    `lineage`: the generations that dedup steps compare against as earlier data (default: every generation of
    the store); the loop passes each arm's own line so that arms sharing a store stay apart."""
    _check_name(name)
    for tag in tags:
        validate_tag(tag)
    steps = tuple(steps)
    mix_cfg = mix_config or MixConfig()
    lineage = None if lineage is None else tuple(lineage)
    chain = chain_config(generation, steps, mix_cfg, seed, origins, lineage)
    digest = config_hash(chain)
    with store.transaction("select", {**chain, "name": name, "config_hash": digest, **(args or {})}) as tx:
        con = connect(store)
        ctx = SelectContext(store, con, generation=generation, seed=seed, lineage=lineage)
        known = ctx.sql("SELECT count(*) AS n FROM samples WHERE generation <= $g", {"g": generation})
        if known.column("n")[0].as_py() == 0:
            raise UsageError(f"no samples in generation {generation} or before; ingest them first")
        rows = candidates(ctx, origins)
        reports = []
        for step in steps:
            out = step.select(rows, ctx)
            reports.append(StepReport(step.name, rows.num_rows, out.num_rows))
            rows = out
        rows = mix(rows, ctx, mix_cfg)
        tx.delete("selections", f"selection = '{name}'")  # validated name: letters, digits, . - _
        n = rows.num_rows
        if n:
            tx.append("selections", pa.table({
                "selection": pa.array([name] * n, pa.string()), "sample_id": rows.column("sample_id"),
                "generation": rows.column("generation"), "origin": rows.column("origin"),
                "weight": rows.column("weight"), "reason": rows.column("reason"),
                "config_hash": pa.array([digest] * n, pa.string()), "run_id": pa.array([tx.run_id] * n, pa.string()),
            }))
        _write_minhash(tx, ctx)
        tx.generations.add(generation)
        tx.tag(f"select-{name}")
        for tag in tags:
            tx.tag(tag)
        result = SelectResult(name, generation, digest, n, counts(rows), reports, tx.run_id)
        tx.summary = {"selection": name, "rows": n, "counts": result.counts,
                      "steps": [asdict(r) for r in reports]}
        con.close()
    result.store_version = store.version()
    return result


def _write_minhash(tx: Any, ctx: SelectContext) -> None:
    """Store the band keys computed by near-dedup steps, once per (sample, config)."""
    batches = ctx.writes.get("minhash", [])
    if not batches:
        return
    new = pa.concat_tables(batches)
    # Several steps of one chain may hash the same sample: keep its first row.
    keys = np.char.add(new.column("sample_id").to_numpy(zero_copy_only=False).astype(str),
                       new.column("config_hash").to_numpy(zero_copy_only=False).astype(str))
    _, first = np.unique(keys, return_index=True)
    new = new.take(pa.array(np.sort(first)))
    new = new.append_column("run_id", pa.array([tx.run_id] * new.num_rows, pa.string()))
    tx.append("minhash", new)
