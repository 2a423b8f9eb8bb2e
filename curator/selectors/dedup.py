"""Duplicate removal: exact (by `text_hash`) and near (MinHash LSH), within the candidates and against
earlier generations.

Scope (option `against`):
- `none`: only within the candidates;
- `earlier` (the default): also against every sample of an earlier generation than the candidate's own,
  of any origin, selected or not. A synthetic text that repeats an earlier text (human or generated) adds
  no new data whatever an earlier selection did with it, and this scope does not depend on which
  selections happen to exist (so a re-run decides the same way);
- `selected`: against the rows of earlier generations that some selection in the store kept (any name).

Within the candidates the first row of each duplicate group stays: earliest generation, human before other
origins, then smallest `sample_id`; the others are dropped. Removed rows are simply absent from the
selection; the kept ones carry the reason "exact_dedup ..." / "near_dedup ...".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..dedup import minhash
from ..dedup.minhash import MinHashConfig
from ..errors import UsageError
from .base import SelectContext, Selector, config_hash, keep
from .registry import register

AGAINST = ("none", "earlier", "selected")
# Candidates in keep-first order: which copy of a duplicate group survives.
_ORDER = "generation, origin <> 'human', sample_id"


def _check_against(value: str, selector: str) -> None:
    if value not in AGAINST:
        raise UsageError(f"{selector} against={value!r}: expected one of {', '.join(AGAINST)}")


@dataclass(frozen=True)
class ExactDedupConfig:
    """against: none, earlier (all samples of earlier generations) or selected (earlier selected rows)."""

    against: str = "earlier"

    def __post_init__(self) -> None:
        _check_against(self.against, "exact_dedup_v1")


@register
class ExactDedup(Selector):
    name = "exact_dedup_v1"
    description = "drop rows whose text (text_hash) repeats another candidate's or an earlier generation's"
    Config = ExactDedupConfig

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        against = self.config.against
        earlier = {
            "none": "SELECT NULL::VARCHAR AS text_hash, NULL::INTEGER AS generation WHERE false",
            "earlier": "SELECT text_hash, generation FROM samples",
            "selected": "SELECT x.text_hash, x.generation FROM selections AS s JOIN samples AS x USING (sample_id)",
        }[against]
        cand = rows.select(["sample_id", "generation", "origin", "text_hash"]).append_column(
            "i", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
        out = ctx.sql(
            f"""WITH first AS (
                    SELECT *, row_number() OVER (PARTITION BY text_hash ORDER BY {_ORDER}) AS r FROM __cand)
                SELECT i FROM first AS c
                WHERE r = 1
                  AND NOT EXISTS (SELECT 1 FROM ({earlier}) AS e
                                  WHERE e.text_hash = c.text_hash AND e.generation < c.generation
                                    AND {ctx.in_lineage("e.generation")})
                ORDER BY i""", __cand=cand)
        mask = np.zeros(rows.num_rows, dtype=bool)
        mask[out.column("i").to_numpy()] = True
        return keep(rows, mask, f"exact_dedup against {against}")


@dataclass(frozen=True)
class NearDedupConfig:
    """MinHash LSH near-duplicate removal (curator.dedup.minhash): word shingles of `ngram` words,
    `num_perm` permutations in `bands` bands of `rows` (a pair of Jaccard similarity s collides in some
    band with probability 1 - (1 - s^rows)^bands), `seed`; against: none, earlier or selected.
    The MinHash options and their defaults are those of `MinHashConfig`."""

    ngram: int = MinHashConfig.ngram
    num_perm: int = MinHashConfig.num_perm
    bands: int = MinHashConfig.bands
    rows: int = MinHashConfig.rows
    seed: int = MinHashConfig.seed
    tokenizer: str = MinHashConfig.tokenizer
    against: str = "earlier"

    def __post_init__(self) -> None:
        _check_against(self.against, "near_dedup_v1")
        self.minhash()  # MinHashConfig validates the MinHash options

    def minhash(self) -> MinHashConfig:
        return MinHashConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(MinHashConfig)})


@register
class NearDedup(Selector):
    name = "near_dedup_v1"
    description = "drop near-duplicates (MinHash LSH over word shingles), within the candidates and against earlier generations"
    Config = NearDedupConfig

    def index_hash(self) -> str:
        """The `minhash` table's config_hash: the MinHash parameters only (not `against`), so every chain
        with the same hashing shares the stored band keys."""
        return config_hash({"minhash": dataclasses.asdict(self.config.minhash())})

    def _band_keys(self, ctx: SelectContext, ids: pa.Table) -> np.ndarray:
        """Band keys of the samples in `ids` (columns sample_id, generation), in that order: read from the
        `minhash` table where stored, computed (and queued for storing) for the rest."""
        cfg = self.config.minhash()
        h = self.index_hash()
        ids = ids.append_column("i", pa.array(np.arange(ids.num_rows, dtype=np.int64)))
        # Read through Lance, not DuckDB: DuckDB's scan of a Lance dataset cannot push a filter over a
        # table holding list<uint64> (Lance's Substrait has no unsigned types). `h` is our own hex digest.
        stored = ctx.store.read("minhash", columns=["sample_id", "bands"], filter=f"config_hash = '{h}'")
        keys = np.zeros((ids.num_rows, cfg.bands), dtype=np.uint64)
        have = np.zeros(ids.num_rows, dtype=bool)
        if stored.num_rows:
            where = pc.index_in(ids.column("sample_id"), value_set=stored.column("sample_id")).to_numpy(zero_copy_only=False)
            hit = ~np.isnan(where.astype(np.float64))
            flat = stored.column("bands").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            table_keys = flat.astype(np.uint64).reshape(stored.num_rows, cfg.bands)
            keys[hit] = table_keys[where[hit].astype(np.int64)]
            have[hit] = True
        missing = np.flatnonzero(~have)
        if len(missing):
            todo = ids.take(pa.array(missing))
            texts = ctx.sql("SELECT t.i, x.text FROM __todo AS t JOIN samples AS x USING (sample_id) ORDER BY t.i",
                            __todo=todo.select(["sample_id", "i"]))
            new_keys = minhash.band_keys(minhash.signatures(texts.column("text"), cfg), cfg)
            keys[missing] = new_keys
            ctx.writes.setdefault("minhash", []).append(pa.table({
                "sample_id": todo.column("sample_id"), "generation": todo.column("generation"),
                "config_hash": pa.array([h] * len(missing), pa.string()),
                "bands": pa.array(list(new_keys), pa.list_(pa.uint64())),
            }))
        return keys

    def select(self, rows: pa.Table, ctx: SelectContext) -> pa.Table:
        against = self.config.against
        cand = rows.select(["sample_id", "generation", "origin"]).append_column(
            "i", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
        order = ctx.sql(f"SELECT i, sample_id, generation FROM __cand ORDER BY {_ORDER}", __cand=cand)
        new_keys = self._band_keys(ctx, order.select(["sample_id", "generation"]))
        gens = rows.column("generation").to_numpy()
        old = pa.table({"sample_id": pa.array([], pa.string()), "generation": pa.array([], pa.int32())})
        if against != "none" and rows.num_rows:
            source = {"earlier": "SELECT sample_id, generation FROM samples",
                      "selected": "SELECT DISTINCT sample_id, generation FROM selections"}[against]
            old = ctx.sql(f"SELECT sample_id, generation FROM ({source}) WHERE generation < $g AND {ctx.in_lineage()} "
                          f"ORDER BY generation, sample_id",
                          {"g": int(gens.max())})
        old_keys = self._band_keys(ctx, old) if old.num_rows else None
        dup = minhash.duplicate_of(new_keys, old_keys)
        unique = dup == -1
        if old_keys is not None:
            # An old representative counts only when it is from an earlier generation than this row.
            old_rep = dup <= -2
            rep_gen = old.column("generation").to_numpy()[np.where(old_rep, -(dup + 2), 0)]
            row_gen = order.column("generation").to_numpy()
            unique |= old_rep & (rep_gen >= row_gen)
        mask = np.zeros(rows.num_rows, dtype=bool)
        mask[order.column("i").to_numpy()[unique]] = True
        return keep(rows, mask, f"near_dedup against {against}")
