"""`export`: write a selection as deterministic training shards, with a manifest and a row per shard in
`exports`.

One store transaction (command "export"): the selection is read at a pinned store version (the current one,
or `as_of`), shards are written into a staging folder beside `out` and moved into place at the end, and the
`exports` rows commit with the run, so `runs` records the export and its lineage (its parents are the
select runs that wrote the selection's rows). A failed export leaves neither a run nor a folder.

Memory: the plan holds only ids and weights; each shard's rows are fetched from the pinned `samples`
version (`take` of sorted positions) when that shard is written, so memory grows with the largest shard,
not with the selection.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__
from ..errors import UsageError
from ..outputs import check_output_folder
from ..progress import NullReporter, Reporter
from ..store import Store
from . import plan as planning
from .manifest import MANIFEST, file_entry, write_manifest
from .writers import EXTENSIONS, SAMPLE_COLUMNS, SHARD_SCHEMA, WRITERS

FORMATS = ("parquet", "jsonl", "tokens")
SELECTION_COLUMNS = ["sample_id", "weight", "reason", "generation", "run_id"]


@dataclass
class ShardResult:
    shard: int
    path: Path          # absolute path of the shard's main file
    rows: int
    bytes: int
    sha256: str
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ExportResult:
    export_id: str
    selection: str
    store_version: int          # the version the selection was read at
    format: str
    seed: int
    out: Path
    selected_rows: int          # rows of the selection
    documents: int              # documents written (weights applied: repeats counted, weight-0 rows gone)
    shards: list[ShardResult]
    seconds: float
    run_version: int            # the store version of the export run itself

    @property
    def bytes(self) -> int:
        return sum(f["bytes"] for s in self.shards for f in s.files)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_selection(store: Store, selection: str, version: int) -> pa.Table:
    """The selection's rows at `version`, in canonical order; unknown or empty selections are usage errors."""
    if "selections" not in store.table_versions(version):
        raise UsageError(f"unknown selection '{selection}': the store has no selections (run `curator select` first)")
    ds = store.dataset("selections", as_of=version)
    rows = ds.to_table(columns=SELECTION_COLUMNS, filter=f"selection = {_quote(selection)}")
    if rows.num_rows == 0:
        names = pc.unique(ds.to_table(columns=["selection"]).column("selection")).to_pylist()
        raise UsageError(f"unknown selection '{selection}' at store version {version}; "
                         f"selections: {', '.join(sorted(names)) or 'none'}")
    return planning.canonical(rows)


def export(store: Store, selection: str, *, fmt: str = "parquet", shards: int = 1, seed: int = 0,
           out: str | Path, tokenizer: str | Path | None = None, as_of: int | str | None = None,
           overwrite: bool = False, progress: Reporter | None = None) -> ExportResult:
    """Export `selection` as `shards` shards of format `fmt` into folder `out` (see the package docstring)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'; valid choices: {', '.join(FORMATS)}")
    if fmt == "tokens" and tokenizer is None:
        raise UsageError("format tokens needs a tokenizer: --tokenizer PATH (a folder holding tokenizer.json)")
    if fmt != "tokens" and tokenizer is not None:
        raise UsageError(f"--tokenizer is for format tokens only, not {fmt}")
    if shards < 1:
        raise UsageError(f"--shards must be at least 1, got {shards}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    out = Path(out).absolute()
    check_output_folder(out, overwrite, marker=MANIFEST, what="export")
    tok = None
    if fmt == "tokens":
        from .tokens import load_tokenizer

        tok = load_tokenizer(tokenizer)
    progress = progress or NullReporter()
    started = time.perf_counter()
    args = {"selection": selection, "format": fmt, "shards": shards, "seed": int(seed), "out": str(out),
            "tokenizer": tok.name if tok else None, "as_of": as_of}
    with store.transaction("export", args) as tx:
        version = store.resolve(as_of) if as_of is not None else store.version()
        rows = read_selection(store, selection, version)
        plan = planning.make_plan(rows, seed=int(seed), shards=shards)
        if plan.documents == 0:
            raise UsageError(f"selection '{selection}' is empty: its {rows.num_rows} row(s) all have weight 0 "
                             f"(after drawing fractional weights with seed {seed})")
        samples = store.dataset("samples", as_of=version)
        positions = planning.sample_positions(samples.to_table(columns=["sample_id"]).column("sample_id"),
                                              rows.column("sample_id"))
        weights = rows.column("weight").to_numpy()
        stage = out.parent / f".{out.name}.partial-{tx.run_id}"
        stage.mkdir(parents=True)
        try:
            bar = progress.task(f"export {fmt}", total=plan.documents, unit="samples")
            results = []
            for k in range(plan.shards):
                sl = plan.shard(k)
                results.append(_write_shard(k, plan.order[sl], plan.copy[sl], positions, weights, samples, fmt,
                                            tok, stage, out))
                bar.advance(sl.stop - sl.start)
            write_manifest(stage, {
                "export_id": tx.run_id, "selection": selection, "store": str(store.root.absolute()),
                "store_version": version, "format": fmt, "seed": int(seed), "shards_count": plan.shards,
                "tokenizer": tok.manifest() if tok else None, "documents": plan.documents,
                "selected_rows": rows.num_rows, "created_by": f"curator {__version__}",
                "weights": "floor(w) copies + 1 more with probability w - floor(w) (seeded); 0 = dropped",
                "columns": None if fmt == "tokens" else SHARD_SCHEMA.names,
                "shards": [{"shard": r.shard, "path": r.path.relative_to(out).as_posix(), "rows": r.rows,
                            "bytes": r.bytes, "sha256": r.sha256, "files": r.files} for r in results],
            })
            if out.exists():
                shutil.rmtree(out)  # empty, or a previous export (checked above) replaced under --overwrite
            stage.rename(out)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        tx.append("exports", pa.table({
            "export_id": [tx.run_id] * len(results), "selection": [selection] * len(results),
            "store_version": [version] * len(results), "path": [str(r.path) for r in results],
            "format": [fmt] * len(results), "shard": [r.shard for r in results], "rows": [r.rows for r in results],
            "bytes": [r.bytes for r in results], "sha256": [r.sha256 for r in results],
            "seed": [int(seed)] * len(results), "run_id": [tx.run_id] * len(results),
        }))
        # Lineage: the select run(s) whose rows were exported.
        tx.parents.extend(sorted(set(rows.column("run_id").to_pylist())))
        tx.generations.update(int(g) for g in pc.unique(rows.column("generation")).to_pylist())
        tx.summary = {"selection": selection, "format": fmt, "store_version": version, "documents": plan.documents,
                      "shards": plan.shards, "bytes": sum(f["bytes"] for r in results for f in r.files),
                      "out": str(out)}
        export_id = tx.run_id
    return ExportResult(export_id=export_id, selection=selection, store_version=version, format=fmt, seed=int(seed),
                        out=out, selected_rows=rows.num_rows, documents=plan.documents, shards=results,
                        seconds=time.perf_counter() - started, run_version=store.version())


def _write_shard(k: int, order: np.ndarray, copy: np.ndarray, positions: np.ndarray, weights: np.ndarray,
                 samples: Any, fmt: str, tok: Any, stage: Path, out: Path) -> ShardResult:
    # Fetch each distinct sample of the shard once, in storage order (sorted positions: sequential reads),
    # then lay the rows out in shuffled order, repeats included.
    uniq, inverse = np.unique(positions[order], return_inverse=True)
    fetched = samples.take(uniq, columns=SAMPLE_COLUMNS)
    stem = stage / f"shard-{k:05d}"
    if fmt == "tokens":
        from .tokens import write_shard

        paths = write_shard(tok, fetched.column("text").to_pylist(), inverse,
                            fetched.column("sample_id").take(pa.array(inverse)), copy, stem)
        files = [paths["bin"], paths["idx"], paths["sidecar"]]
    else:
        table = fetched.take(pa.array(inverse))
        table = table.append_column("weight", pa.array(weights[order], pa.float64()))
        table = table.append_column("copy", pa.array(copy, pa.int32()))
        table = table.select(SHARD_SCHEMA.names).cast(SHARD_SCHEMA)
        path = stem.with_suffix(EXTENSIONS[fmt])
        WRITERS[fmt](table, path)
        files = [path]
    entries = [file_entry(stage, f) for f in files]
    main = entries[0]
    return ShardResult(shard=k, path=out / main["path"], rows=int(len(order)), bytes=main["bytes"],
                       sha256=main["sha256"], files=entries)
