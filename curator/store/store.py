"""The store: one directory of Lance datasets, one per table, and a multi-table commit protocol.

Lance commits each dataset atomically, but a curator command writes several tables (samples, the n-gram
statistics, rejects). The `runs` table is the commit log that makes a command atomic as a whole:

1. a writer takes the lock and first *rolls back* any table whose newest Lance version is past the version
   recorded by the last committed run (the debris of a crashed command) by restoring the recorded version;
2. it writes its tables (each write is a Lance commit, but nobody reads it yet);
3. it appends one row to `runs` holding the version of every table after the command. That append is the
   commit point.

Readers never look at a table's newest version: they open each table at the version the last run row
records. A command killed at any moment therefore leaves the store readable at its previous version, and
the next writer cleans up. The run's `seq` is the store version: `--as-of 7` opens every table as run 7
left it, and a tag (a Lance tag on the runs dataset, mirrored on each table it wrote) names a run.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lance
import pyarrow as pa

from ..errors import StoreError, UsageError
from .faults import crash_point
from .lock import WriterLock
from .schema import TABLES, arrow_schema, check_schema, check_score_schema, conform, is_score_table

DATA_TABLES = tuple(t for t in TABLES if t != "runs")
# Compact the run log once it has this many fragments (one per run).
_COMPACT_RUNS_AT = 32
DEFAULT_STORE = "curator-store"
_TAG_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
# Lance file format 2.0: it writes text about 7x faster than 2.1/2.2 (no FSST string compression:
# 450 vs 65 MB/s measured on one core) and reads it 2x faster; ingest speed matters more here than
# the smaller files of the newer formats.
FILE_FORMAT = "2.0"
# Tables of numbers and short repeated strings are the other way round: 2.1 writes the n-gram
# sample (a million rows per 100 MB of text) 3x faster than 2.0 (0.10 vs 0.32 s, one core) and
# reads it as fast. A table keeps the format it was created with; this only picks it.
_NUMERIC_FORMAT = "2.1"
_NUMERIC_TABLES = frozenset({"ngram_totals", "ngram_buckets", "ngram_top", "ngram_sample"})


def file_format(table: str) -> str:
    """The Lance file format a new table is created with."""
    return _NUMERIC_FORMAT if table in _NUMERIC_TABLES else FILE_FORMAT


def code_version() -> str:
    from .. import __version__

    head = Path(__file__).resolve().parents[2] / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text().strip()
        return f"{__version__}+g{ref[:10]}"
    except OSError:
        return __version__


def validate_tag(tag: str) -> str:
    if not tag or not set(tag) <= _TAG_OK or tag[0] == "." or tag.isdigit():
        raise UsageError(f"invalid tag '{tag}': use letters, digits, '.', '-' and '_', not only digits (digits name a store version)")
    return tag


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _empty(table: str) -> pa.Table:
    return arrow_schema(table).empty_table()


class Store:
    """A curator store rooted at a directory. Cheap to open; all reads go through pinned Lance versions."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False) -> None:
        self.root = Path(root)
        self._runs_cache: tuple[int, pa.Table] | None = None
        self._context: dict[str, Any] = {}
        if not (self.root / "runs.lance").exists():
            if not create:
                raise StoreError(f"no curator store at {self.root} (no runs.lance); ingest data first to create one")
            self._create()
        self._check_schemas()

    # ---- creation and checks -------------------------------------------------------------------
    def _uri(self, table: str) -> str:
        return str(self.root / f"{table}.lance")

    def _create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with WriterLock(self.root):
            if (self.root / "runs.lance").exists():  # another process created it meanwhile
                return
            versions = {}
            for table in DATA_TABLES:
                # mode=overwrite: a creation killed half-way left datasets but no runs.lance; start again.
                ds = lance.write_dataset(_empty(table), self._uri(table), mode="overwrite",
                                         data_storage_version=file_format(table))
                versions[table] = ds.version
            started = _now()
            # runs is written last: its existence is what makes the store exist.
            row = self._run_row("init", {}, started, versions, written=list(DATA_TABLES), seq=1, run_id=_new_run_id(),
                                generations=[], parents=[], tags=[], checkpoints=[], summary={})
            lance.write_dataset(row, self._uri("runs"), mode="overwrite", data_storage_version=FILE_FORMAT)

    def _check_schemas(self) -> None:
        committed = self.table_versions()
        for table in TABLES:
            uri = self._uri(table)
            if table != "runs" and table not in committed:
                continue  # a table this curator added after the store was made: the next write creates it
            if not Path(uri).exists():
                raise StoreError(f"store {self.root} is missing table '{table}' ({uri})")
            check_schema(table, lance.dataset(uri).schema, str(self.root))
        for table in self.score_tables():
            uri = self._uri(table)
            if not Path(uri).exists():
                raise StoreError(f"store {self.root} is missing score table '{table}' ({uri})")
            check_score_schema(table, lance.dataset(uri).schema, str(self.root))

    # ---- reading ---------------------------------------------------------------------------------
    def runs(self, as_of: int | str | None = None) -> pa.Table:
        """The committed runs, oldest first, up to `as_of` (a store version or a tag)."""
        ds = lance.dataset(self._uri("runs"))
        # A command asks for the run log several times (version, table versions, schema checks); read it
        # once per runs-dataset version instead of every time.
        if self._runs_cache is None or self._runs_cache[0] != ds.version:
            self._runs_cache = (ds.version, ds.to_table().sort_by("seq"))
        runs = self._runs_cache[1]
        if as_of is not None:
            seq = self.resolve(as_of)
            runs = runs.filter(pa.compute.less_equal(runs["seq"], seq))
        return runs

    def _last_run(self, as_of: int | str | None = None) -> dict[str, Any]:
        runs = self.runs(as_of)
        if runs.num_rows == 0:
            raise StoreError(f"store {self.root} has no committed run")
        return runs.slice(runs.num_rows - 1).to_pylist()[0]

    def version(self) -> int:
        """The store version: the seq of the last committed run."""
        return int(self._last_run()["seq"])

    def table_versions(self, as_of: int | str | None = None) -> dict[str, int]:
        """Every committed table (fixed and score tables) -> its Lance version at that store version."""
        return json.loads(self._last_run(as_of)["tables"])

    def score_tables(self, as_of: int | str | None = None) -> list[str]:
        """The committed score tables (`scores_<scorer>`), sorted."""
        return sorted(t for t in self.table_versions(as_of) if is_score_table(t))

    def resolve(self, ref: int | str) -> int:
        """A store version (run seq) from a number or a tag name."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            seq = int(ref)
            seqs = lance.dataset(self._uri("runs")).to_table(columns=["seq"])["seq"].to_pylist()
            if seq not in seqs:
                raise UsageError(f"no store version {seq}: versions run from 1 to {max(seqs)}")
            return seq
        tags = self.tags()
        if ref not in tags:
            raise UsageError(f"no tag '{ref}' in store {self.root}; tags: {', '.join(sorted(tags)) or 'none'}")
        return tags[ref]

    def tags(self) -> dict[str, int]:
        """Tag name -> store version (run seq)."""
        ds = lance.dataset(self._uri("runs"))
        out = {}
        for name, info in ds.tags.list().items():
            seqs = lance.dataset(self._uri("runs"), version=info["version"]).to_table(columns=["seq"])["seq"]
            out[name] = int(pa.compute.max(seqs).as_py())
        return out

    def tag(self, name: str, version: int | str | None = None) -> int:
        """Tag a store version (default: the current one) on the runs dataset and on every table."""
        validate_tag(name)
        with WriterLock(self.root):
            seq = self.version() if version is None else self.resolve(version)
            runs = lance.dataset(self._uri("runs"))
            # The runs dataset version that holds run `seq` as its newest row.
            for v in sorted(x["version"] for x in runs.versions()):
                seqs = lance.dataset(self._uri("runs"), version=v).to_table(columns=["seq"])["seq"]
                if seqs and pa.compute.max(seqs).as_py() == seq:
                    _set_tag(runs, name, v)
                    break
            for table, tv in self.table_versions(seq).items():
                _set_tag(lance.dataset(self._uri(table)), name, tv)
        return seq

    def dataset(self, table: str, as_of: int | str | None = None) -> lance.LanceDataset:
        """The Lance dataset of `table` at the committed version (or at store version `as_of`)."""
        if table == "runs":
            if as_of is None:
                return lance.dataset(self._uri("runs"))
            raise UsageError("open runs through Store.runs(as_of=...)")
        versions = self.table_versions(as_of)
        if table not in versions:
            if table in DATA_TABLES:
                raise UsageError(f"table '{table}' does not exist at this store version (nothing wrote it yet)")
            raise UsageError(f"unknown table '{table}'; tables: {', '.join(sorted(versions))}")
        return lance.dataset(self._uri(table), version=versions[table])

    def read(self, table: str, *, columns: list[str] | None = None, filter: str | None = None,
             as_of: int | str | None = None) -> pa.Table:
        if table == "runs":
            return self.runs(as_of)
        if table in DATA_TABLES and table not in self.table_versions(as_of):
            empty = _empty(table)
            return empty.select(columns) if columns else empty
        return self.dataset(table, as_of).to_table(columns=columns, filter=filter)

    # ---- writing ---------------------------------------------------------------------------------
    @contextmanager
    def annotate(self, **fields: Any) -> Iterator[None]:
        """Every run committed inside the block carries `fields` in its args under "context".

        The loop marks each step's runs with its arm, round and step this way: the mark commits atomically
        with the step's own writes, so a rerun can tell a finished step from an interrupted one.
        """
        saved = self._context
        self._context = {**saved, **fields}
        try:
            yield
        finally:
            self._context = saved

    @contextmanager
    def transaction(self, command: str, args: dict[str, Any]) -> Iterator["Transaction"]:
        """Everything written inside commits together when the block ends, or not at all."""
        with WriterLock(self.root):
            self._check_schemas()
            committed = self.table_versions()
            for table, version in committed.items():
                latest = lance.dataset(self._uri(table))
                if latest.version != version:
                    # Debris of a crashed writer: bring the newest version back to the committed content.
                    lance.dataset(self._uri(table), version=version).restore()
            for path in self.root.glob("scores_*.lance"):
                if path.name.removesuffix(".lance") not in committed:
                    # A score table created by a writer that crashed before its run committed.
                    shutil.rmtree(path, ignore_errors=True)
            if self._context:
                args = {**args, "context": dict(self._context)}
            tx = Transaction(self, command, args, committed)
            for table in DATA_TABLES:
                if table not in committed:
                    # Migration: a table added by a newer curator than the one that made the store.
                    lance.write_dataset(_empty(table), self._uri(table), mode="overwrite",
                                        data_storage_version=file_format(table))
                    tx.created.add(table)
                    tx.written.add(table)
            try:
                yield tx
            except BaseException:
                tx._abort()
                raise
            tx._commit()

    def _run_row(self, command: str, args: dict[str, Any], started: datetime, versions: dict[str, int], *,
                 written: list[str], seq: int, run_id: str, generations: list[int], parents: list[str],
                 tags: list[str], checkpoints: list[str], summary: dict[str, Any]) -> pa.Table:
        args_json = json.dumps(args, sort_keys=True, default=str)
        row = {
            "run_id": run_id,
            "seq": seq,
            "command": command,
            "args": args_json,
            "config_hash": hashlib.sha256(args_json.encode()).hexdigest()[:16],
            "code_version": code_version(),
            "started_at": started,
            "ended_at": _now(),
            "tables": json.dumps(versions, sort_keys=True),
            "written": sorted(written),
            "generations": sorted(set(generations)),
            "parents": parents,
            "tags": tags,
            "checkpoints": checkpoints,
            "summary": json.dumps(summary, sort_keys=True, default=str),
        }
        return pa.Table.from_pylist([row], schema=arrow_schema("runs"))

    def temp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(exist_ok=True)
        return path


def _new_run_id() -> str:
    return _now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class Transaction:
    """The writes of one command. Each method is a Lance commit that stays invisible until `_commit`."""

    store: Store
    command: str
    args: dict[str, Any]
    committed: dict[str, int]
    run_id: str = field(default_factory=_new_run_id)
    started: datetime = field(default_factory=_now)
    written: set[str] = field(default_factory=set)
    generations: set[int] = field(default_factory=set)
    parents: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    _orphans: list[str] = field(default_factory=list)

    def dataset(self, table: str) -> lance.LanceDataset:
        """The table as this transaction sees it: the committed content plus its own writes.

        Under the writer lock, and after the rollback of `Store.transaction`, the newest Lance version
        always holds exactly that, and appends must be based on it.
        """
        return lance.dataset(self.store._uri(table))

    def exists(self, table: str) -> bool:
        """Whether the table exists for this transaction (committed, or created by it)."""
        return table in self.committed or table in self.created

    def write_fragments(self, table: str, data: pa.Table) -> list[Any]:
        """Write data files without committing them (for streaming a large input into one commit).

        Score tables are not in `schemas/`: their rows must come with their full schema (see
        `schema.score_table_schema`), and the table is created by the first commit.
        """
        from lance.fragment import write_fragments

        data = self._conform(table, data)
        frags = write_fragments(data, self.store._uri(table), schema=data.schema, max_rows_per_file=1 << 22,
                                data_storage_version=file_format(table))
        for frag in frags:
            self._orphans.extend(str(Path(self.store._uri(table)) / "data" / f.path) for f in frag.files)
        return frags

    def _conform(self, table: str, data: pa.Table) -> pa.Table:
        if not is_score_table(table):
            return conform(table, data)
        if self.exists(table):
            found = self.dataset(table).schema
            if found.remove_metadata() != data.schema.remove_metadata():
                raise StoreError(
                    f"rows for '{table}' do not match the table's columns (a scorer whose columns change needs a "
                    f"new versioned name)\n  expected: {found.remove_metadata()}\n  received: {data.schema.remove_metadata()}"
                )
            return data.cast(found)
        return data

    def commit_fragments(self, table: str, fragments: list[Any], schema: pa.Schema | None = None) -> None:
        """Commit written fragments as one append; `schema` creates a score table on its first commit."""
        if not self.exists(table):
            if schema is None:
                raise StoreError(f"table '{table}' does not exist; its first commit needs a schema")
            lance.LanceDataset.commit(self.store._uri(table), lance.LanceOperation.Overwrite(schema, fragments))
            self._orphans.clear()
            self.created.add(table)
            self.written.add(table)
            return
        if not fragments:
            return
        read_version = self.dataset(table).version
        lance.LanceDataset.commit(self.store._uri(table), lance.LanceOperation.Append(fragments), read_version=read_version)
        self._orphans.clear()
        self.written.add(table)

    def append(self, table: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        if not self.exists(table):
            raise StoreError(f"table '{table}' does not exist; create it with write_fragments + commit_fragments")
        lance.write_dataset(self._conform(table, data), self.store._uri(table), mode="append")
        self.written.add(table)

    def delete_keys(self, table: str, keys: pa.Table) -> int:
        """Delete the rows whose key columns equal a row of `keys` (a join, not a giant SQL IN list)."""
        if not self.exists(table) or keys.num_rows == 0:
            return 0
        result = self.dataset(table).merge_insert(keys.column_names).when_matched_delete().execute(keys)
        self.written.add(table)  # a commit even when nothing matched: record the version it made
        return int(result["num_deleted_rows"])

    def delete(self, table: str, predicate: str) -> None:
        """Delete the rows matching a Lance SQL predicate (built from validated values, never user text)."""
        ds = self.dataset(table)
        if ds.count_rows(filter=predicate) == 0:
            return
        ds.delete(predicate)
        self.written.add(table)

    def tag(self, name: str) -> None:
        validate_tag(name)
        if name not in self.tags:
            self.tags.append(name)

    def _abort(self) -> None:
        # Uncommitted fragment files are invisible, but they are garbage: remove them now.
        for path in self._orphans:
            Path(path).unlink(missing_ok=True)
        for table in self.written:
            if table in self.created:
                shutil.rmtree(self.store._uri(table), ignore_errors=True)
            else:
                lance.dataset(self.store._uri(table), version=self.committed[table]).restore()

    def _commit(self) -> None:
        crash_point("before-run-commit")
        versions = dict(self.committed)
        for table in self.written:
            versions[table] = lance.dataset(self.store._uri(table)).version
        runs = lance.dataset(self.store._uri("runs"))
        history = runs.to_table(columns=["seq", "run_id", "generations"]).sort_by("seq").to_pylist()
        seq = history[-1]["seq"] + 1
        if not self.parents and self.generations:
            # Lineage: the run this one builds on is the last one that touched any of its generations.
            for run in reversed(history):
                if set(run["generations"]) & self.generations:
                    self.parents.append(run["run_id"])
                    break
        row = self.store._run_row(
            self.command, self.args, self.started, versions, written=sorted(self.written), seq=seq,
            run_id=self.run_id, generations=sorted(self.generations), parents=self.parents, tags=self.tags,
            checkpoints=self.checkpoints, summary=self.summary,
        )
        runs = lance.write_dataset(row, self.store._uri("runs"), mode="append")
        crash_point("after-run-commit")
        if len(runs.get_fragments()) >= _COMPACT_RUNS_AT:
            # Every run appends a one-row fragment; reading hundreds of them makes every command slower.
            # Compaction is a new Lance version with the same rows (older versions and tags stay valid).
            runs.optimize.compact_files()
            runs = lance.dataset(self.store._uri("runs"))
        # Tags are pointers, set after the commit point; a crash here loses a tag, never data.
        for name in self.tags:
            _set_tag(runs, name, runs.version)
            for table in self.written:
                _set_tag(lance.dataset(self.store._uri(table)), name, versions[table])
        shutil.rmtree(self.store.root / "tmp", ignore_errors=True)


def _set_tag(ds: lance.LanceDataset, name: str, version: int) -> None:
    if name in ds.tags.list():
        ds.tags.update(name, version)
    else:
        ds.tags.create(name, version)
