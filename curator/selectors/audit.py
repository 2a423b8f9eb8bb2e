"""The verifier audit (Feng et al., "Beyond Model Collapse"): a proxy, measured on a labelled audit subset,
of whether training on a verifier's selection will help.

On the audit samples (non-human samples of a generation that an oracle verifier judged: the exact answers,
say `gsm8k_answer_v1` against the gold reference, or any verifier scored with the reference) it reports, for
each verifier and threshold or for a stored selection:

- keep_rate_correct   P(kept | oracle correct): how much good data the verifier keeps;
- keep_rate_incorrect P(kept | oracle incorrect): how much bad data leaks through;
- precision           P(oracle correct | kept): the quality of the selected set;
- base_rate           P(oracle correct) of the audit samples, to compare precision with;
- audit_samples and the counts behind each rate.

The definitions live in the named query `select/audit` (sql/select/audit.sql); this module resolves which
scorer configs to read and runs it per (verifier, threshold).
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import pyarrow as pa

from ..errors import UsageError
from ..store import Store, catalog
from ..store.query import connect, run_sql
from .base import SelectContext, parse_column


def selection_generation(store: Store, selection: str, as_of: int | str | None = None) -> int:
    """The generation the latest select run of `selection` selected from."""
    runs = store.runs(as_of)
    runs = runs.filter(pa.compute.equal(runs["command"], "select")).to_pylist()
    for run in reversed(runs):
        args = json.loads(run["args"])
        if args.get("name") == selection:
            return int(args["generation"])
    names = sorted({json.loads(r["args"]).get("name") for r in runs} - {None})
    raise UsageError(f"no selection {selection!r} in the store; selections: {', '.join(names) or 'none'}")


def audit(store: Store, *, oracle: str, oracle_config: str | None = None, verifiers: Sequence[str] = (),
          verifier_config: str | None = None, metric: str = "correct", thresholds: Sequence[float] = (0.5,),
          selection: str | None = None, generation: int | None = None,
          as_of: int | str | None = None) -> pa.Table:
    """One row per (verifier, threshold), or one row for `selection`: the audit figures of `select/audit`."""
    if not verifiers and selection is None:
        raise UsageError("audit what? give a verifier (--verifier) or a selection (--selection)")
    if verifiers and selection is not None:
        raise UsageError("give either verifiers or a selection to audit, not both")
    con = connect(store, as_of)
    ctx = SelectContext(store, con, generation=generation if generation is not None else -1)
    query = catalog.get("select/audit")
    if selection is not None and generation is None:
        generation = selection_generation(store, selection, as_of)
    gen = -1 if generation is None else generation
    ocol = parse_column(oracle, default_column="correct")
    ohash = ctx.resolve_config(ocol, oracle_config)
    rows: list[dict[str, Any]] = []
    base = {"oracle": ocol.scorer, "oracle_config": ohash, "generation": gen}
    if selection is not None:
        params = query.bind({"oracle": ocol.scorer, "oracle_config": ohash, "selection": selection, "generation": gen})
        rows += [{"audited": f"selection {selection}", "threshold": None, **base, **r}
                 for r in run_sql(con, query.sql, params).to_pylist()]
    for verifier in verifiers:
        vcol = parse_column(verifier, default_column=metric)
        vhash = ctx.resolve_config(vcol, verifier_config)
        if vcol.scorer == ocol.scorer and vhash == ohash:
            raise UsageError(f"the verifier {vcol.scorer} (config {vhash}) is the oracle itself; score the oracle "
                             f"under another config or name another oracle")
        for t in thresholds:
            params = query.bind({"oracle": ocol.scorer, "oracle_config": ohash, "verifier": vcol.scorer,
                                 "verifier_config": vhash, "metric": vcol.column, "threshold": float(t),
                                 "generation": gen})
            rows += [{"audited": f"{vcol.scorer}.{vcol.column}", "threshold": float(t), **base, **r}
                     for r in run_sql(con, query.sql, params).to_pylist()]
    con.close()
    if not rows:
        raise UsageError(f"no audit samples: no non-human sample{'' if gen == -1 else f' of generation {gen}'} "
                         f"has an oracle verdict from {ocol.scorer}; score them with it first")
    return pa.Table.from_pylist(rows)
