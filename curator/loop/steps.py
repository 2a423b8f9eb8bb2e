"""The loop's steps, each one library call inside `store.annotate(...)`, and how a rerun finds what is done.

A step is done when the store holds a committed run whose context mark (`runs.args` -> "context") names
this loop, arm, round and step: the mark commits atomically with the step's own writes, so "done" can never
be half true. A rerun skips a done step and reads its outputs back from that run (the checkpoint from
`checkpoints`, the export folder and the perplexity from `summary`). Every step is also safe to redo after
a kill that came after its own work but before its commit (the cases "a folder but no run"):

- generate and edit with the same seed make the same ids (content addressing): nothing is added twice;
- scoring is incremental, and a rolled-back attempt left no rows;
- select replaces the rows of its named selection;
- export and train write into staging folders and move them into place; a folder that holds an earlier
  attempt's export (a `_manifest.json`) or checkpoint (`config.json`) but no run is replaced
  (`overwrite=True`), and staging debris of a killed attempt (`.<name>.partial-*`) is removed first;
- eval and shift only record a run.

Each step's context also carries `started` (UTC, ISO 8601): when the loop began the step. A step's wall
time is its run's `ended_at` minus that (the runs of train and eval are short transactions recorded after
the work, so their own `started_at` does not cover it).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from ..store import Store

STEP_NAMES_BASE = ("ingest", "score", "select", "export", "train", "eval")
STEP_NAMES_ARM = ("generate", "edit", "score", "shift", "select", "export", "train", "eval")


def context(run: dict[str, Any]) -> dict[str, Any]:
    """The context mark of a run (empty when it has none)."""
    try:
        return json.loads(run["args"]).get("context") or {}
    except (ValueError, AttributeError):
        return {}


@dataclass
class Marks:
    """The runs of one loop, by (arm, round, step); refreshed after every step (one read per store version)."""

    store: Store
    loop: str

    def refresh(self) -> None:
        runs = self.store.runs()
        self._by_step: dict[tuple[str, int, str], dict[str, Any]] = {}
        self._start: dict[str, Any] | None = None
        self._other_loops: set[str] = set()
        # Only runs with a context can be marks; the args JSON is parsed for those alone.
        args = runs.column("args")
        for run in runs.filter(pc.match_substring(args, '"context"')).to_pylist():
            ctx = context(run)
            if ctx.get("loop") is None:
                continue
            if ctx["loop"] != self.loop:
                if run["command"] == "loop":
                    self._other_loops.add(ctx["loop"])
                continue
            if run["command"] == "loop" and ctx.get("step") == "start":
                self._start = self._start or run
                continue
            key = (ctx.get("arm"), ctx.get("round"), ctx.get("step"))
            self._by_step[key] = run  # the newest run of a step wins (there is one, unless redone by hand)

    @property
    def start(self) -> dict[str, Any] | None:
        return self._start

    @property
    def other_loops(self) -> set[str]:
        return self._other_loops

    def done(self, arm: str, round_: int, step: str) -> dict[str, Any] | None:
        return self._by_step.get((arm, round_, step))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def step_seconds(run: dict[str, Any]) -> float:
    """A step's wall time from its run: ended_at minus the context's `started` (else the run's own start)."""
    started = context(run).get("started")
    begin = datetime.fromisoformat(started) if started else run["started_at"]
    end = run["ended_at"]
    if begin.tzinfo is None:
        begin = begin.replace(tzinfo=timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    return max((end - begin).total_seconds(), 0.0)


def clear_staging(out: Path) -> None:
    """Remove the staging folders a killed export or train left beside `out`."""
    if out.parent.is_dir():
        for debris in out.parent.glob(f".{out.name}.partial-*"):
            shutil.rmtree(debris, ignore_errors=True)


def record(store: Store, command: str, *, summary: dict[str, Any], generations: list[int],
           args: dict[str, Any] | None = None) -> str:
    """Commit a run that writes no table (the loop's start mark, a shift report)."""
    with store.transaction(command, args or {}) as tx:
        tx.generations.update(generations)
        tx.summary = summary
        return tx.run_id


# --------------------------------------------------------------------------- the human data


@dataclass
class HumanSplit:
    train: Path           # JSONL of the training documents (ingested as generation 0)
    heldout: Path         # JSONL of the held-out documents (never ingested, never trained on)
    train_docs: int
    heldout_docs: int


def heldout_of(text: str, fraction: float) -> bool:
    """Whether a document is held out: the first 8 bytes of md5(text) as a fraction of 2^64 < `fraction`.

    A hash of the text, not a random draw: the same document is on the same side on every run and machine,
    whatever the order or number of the other documents."""
    h = int.from_bytes(hashlib.md5(text.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return h < fraction * 2.0 ** 64


def split_human(cfg: Any, workdir: Path) -> HumanSplit:
    """Read the human documents as `curator ingest` would (text files split by blank lines), keep the first
    `max_documents`, split off the held-out ones, and write both sides as JSONL into `workdir`.

    Files are rewritten only when their content changes, so a rerun leaves them (and their times) alone.
    Each training row carries its source file and line as metadata (kept by ingest)."""
    from ..ingest.readers import FieldMap, discover, read_documents

    h = cfg.human
    docs: list[tuple[str, str, int]] = []
    for path, fmt in discover(list(h.path), h.format):
        for batch in read_documents(path, fmt, FieldMap(text=h.text_field), text_separator=h.separator):
            t = batch.table
            docs.extend(zip(t["text"].to_pylist(), t["source_file"].to_pylist(), t["source_row"].to_pylist()))
            if h.max_documents is not None and len(docs) >= h.max_documents:
                break
        if h.max_documents is not None and len(docs) >= h.max_documents:
            break
    if h.max_documents is not None:
        docs = docs[:h.max_documents]
    if h.heldout is not None:
        train = docs
        heldout = []
        for path, fmt in discover([h.heldout], None):
            for batch in read_documents(path, fmt, FieldMap(text=h.text_field), text_separator=h.separator):
                heldout.extend(batch.table["text"].to_pylist())
    else:
        train, heldout = [], []
        for doc in docs:
            (heldout.append(doc[0]) if heldout_of(doc[0], h.heldout_fraction) else train.append(doc))
    from ..errors import UsageError

    if not train:
        raise UsageError(f"no human training documents in {', '.join(h.path)} (after the held-out split)")
    if not heldout:
        raise UsageError(f"no held-out documents: raise [human] heldout_fraction (now {h.heldout_fraction}) or give "
                         f"[human] heldout = PATH")
    human_dir = workdir / "human"
    human_dir.mkdir(parents=True, exist_ok=True)
    train_path = human_dir / "train.jsonl"
    heldout_path = workdir / "heldout.jsonl"
    _write_if_changed(train_path, "".join(json.dumps({"text": t, "source_file": f, "source_line": r}) + "\n"
                                          for t, f, r in train))
    _write_if_changed(heldout_path, "".join(json.dumps({"text": t}) + "\n" for t in heldout))
    return HumanSplit(train_path, heldout_path, len(train), len(heldout))


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def train_texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
