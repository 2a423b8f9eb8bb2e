"""The scorer plugin contract: a batch of samples in, a same-length batch of typed scores out.

A scorer is a small class:

    @register
    class TextStats(Scorer):
        name = "text_stats_v1"                       # the version is part of the name
        description = "characters, words, lines ..."
        inputs = ("text",)                           # samples columns it reads
        columns = (pa.field("chars", pa.int64()), ...)

        def score(self, batch: pa.Table) -> pa.Table:  # vectorised over the batch
            ...

Options are a frozen dataclass `Config` (field types drive parsing of `-o key=value` strings); the
hash of the scorer's name and its config (`config_hash`) keys its rows, so changing an option scores
again instead of mixing results. Life cycle, chosen so that an executor can ship scorers to other
processes (a Ray worker) unchanged:

1. `Scorer(config)` on the driver: cheap, no heavy imports;
2. `fit(context)` on the driver, once, when the scorer needs data from the store (the human reference
   for DSIR, say); whatever it keeps must be picklable;
3. the scorer is (possibly) pickled to a worker, where `setup()` loads models once;
4. `score(batch)` per batch. A batch is an Arrow table with `sample_id` plus the `inputs` columns.

`inputs` and `output_schema()` may depend on the config (an instance may narrow `inputs`); a table's
columns are fixed by its first write, so options that change the columns need care (the embedding
dimension, say: another model of another width is refused with a clear message).

Scores never go into `samples`: each scorer's rows go to its own table `scores_<name>`.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from ..config import config_hash, make_config

NAME_RE = re.compile(r"[a-z][a-z0-9_]*_v[0-9]+")
# Columns every score table carries before the scorer's own.
KEY_COLUMNS = ("sample_id", "config_hash", "run_id")
# Sample columns a scorer may ask for in `inputs`.
SAMPLE_COLUMNS = ("sample_id", "text", "prompt", "prompt_id", "reference", "metadata", "generation", "origin",
                  "parent_id", "text_hash", "model")


@dataclass(frozen=True)
class NoConfig:
    """A scorer without options."""


class Scorer:
    """Base class of every scorer. Subclasses set the class attributes and implement `score`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("text",)
    columns: ClassVar[tuple[pa.Field, ...]] = ()
    Config: ClassVar[type] = NoConfig
    # Verifiers name the boolean column that says "accepted" (pass rates, selection by verifier).
    pass_column: ClassVar[str | None] = None
    # Samples per `score` call unless the user says otherwise: small for models (memory), large for
    # vectorised text scorers (each Arrow kernel call has a fixed cost).
    batch_size: ClassVar[int] = 256
    # Options that change how a scorer runs, never what it computes: left out of the config hash, so
    # scoring again with more workers or another batch size finds the earlier rows.
    execution_options: ClassVar[frozenset[str]] = frozenset({"batch_size", "threads", "workers"})

    def __init__(self, config: Any = None, **options: Any) -> None:
        if config is not None and options:
            raise TypeError("give either a config object or keyword options, not both")
        self.config = config if config is not None else make_config(self.Config, options, plugin=self.name, kind="scorer")

    # ---- the contract ----------------------------------------------------------------------------
    def output_schema(self) -> pa.Schema:
        """The scorer's own columns (after the key columns). Override when they depend on the config."""
        return pa.schema(list(self.columns))

    def fit(self, context: "ScoreContext") -> None:
        """Learn from the store on the driver before scoring (optional)."""

    def setup(self) -> None:
        """Load models once per worker process (optional)."""

    def score(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    # ---- derived ---------------------------------------------------------------------------------
    @property
    def table(self) -> str:
        return f"scores_{self.name}"

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else dict(self.config)

    @property
    def config_hash(self) -> str:
        """sha256 of the versioned name and the canonical JSON of the config (less the execution options),
        first 16 hex digits."""
        config = {k: v for k, v in self.config_dict().items() if k not in self.execution_options}
        return config_hash({"scorer": self.name, "config": config})

    def check_output(self, batch: pa.Table, out: pa.Table) -> pa.Table:
        """The scorer's output cast to its schema; a wrong length or a missing column is an error."""
        schema = self.output_schema()
        if out.num_rows != batch.num_rows:
            raise ValueError(f"scorer {self.name} returned {out.num_rows} rows for a batch of {batch.num_rows}")
        missing = [f.name for f in schema if f.name not in out.column_names]
        if missing:
            raise ValueError(f"scorer {self.name} did not return columns {missing} (got {out.column_names})")
        return out.select(schema.names).cast(schema)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.config_dict()})"


class ScoreContext(typing.Protocol):
    """What `Scorer.fit` may read from the store (pinned at the version the scoring run started from)."""

    def samples(self, *, generations: list[int] | None = None, origins: list[str] | None = None,
                columns: list[str] | None = None) -> pa.Table: ...

    @property
    def target_generations(self) -> list[int] | None: ...
