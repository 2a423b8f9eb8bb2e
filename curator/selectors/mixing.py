"""Mixing policies: what the next model trains on, from the chain's kept rows of the newest generation N,
the human data, and earlier generations.

Pools (each a set of samples; a sample appears at most once in a mix):
- new: the rows the selector chain kept out of generation N's candidates (by default its non-human samples);
- human: every `origin = 'human'` sample of generations <= N (the chain does not filter them);
- earlier: the kept rows of generations 1..N-1. Which rows those are is a choice, made explicit by
  `previous`: the rows of the named earlier selection (the previous round of the same arm, so arms sharing a
  store never mix) of generations < N and non-human origin; without `previous`, every non-human sample of
  those generations (Gerstgrasser et al.'s "accumulate": nothing is thrown away).

Policies (counts are exact; "rhu" rounds half up):
- `replace`: new only (Shumailov's collapsing regime);
- `accumulate`: human + earlier + new;
- `accumulate-subsample`: accumulate, then a seeded uniform sample of exactly `size` rows (an error when fewer
  are available);
- `human-fraction` alpha: human + new such that the human rows are exactly rhu(alpha * total). With `size`,
  total = size (an error when either pool is too small); without it, the largest total whose human and
  synthetic shares both fit their pools (all of one pool is used);
- `keep-human` f: new + a seeded sample of rhu(f * |human|) human rows;
- `accumulate` or `accumulate-subsample` with a human fraction alpha: the human-fraction draw over the
  accumulated pools (synthetic = earlier + new), so `--mix accumulate --human-fraction 0.2` trains on every
  kept synthetic row so far (or as many as fit) with exactly rhu(0.2 * total) human rows; `size` (required by
  accumulate-subsample) fixes the total.

Samples are drawn with numpy's PCG64 seeded by (seed, pool), over rows in sample_id order: the same store,
config and seed give the same mix. Every row's reason ends with the policy and pool that put it in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from .base import CANDIDATE_SCHEMA, SelectContext, keep

POLICIES = ("replace", "accumulate", "accumulate-subsample", "human-fraction", "keep-human")
_ALIASES = {"accumulate_subsample": "accumulate-subsample", "human_fraction": "human-fraction",
            "keep_human": "keep-human", "keep-human-fraction": "keep-human", "keep_human_fraction": "keep-human"}
_POOL_SALT = {"human": 1, "new": 2, "all": 3}


def _rhu(x: float) -> int:
    return int(np.floor(x + 0.5))


@dataclass(frozen=True)
class MixConfig:
    """policy: one of POLICIES; human_fraction: alpha (human-fraction) or the kept share (keep-human);
    size: rows of accumulate-subsample (and of human-fraction when given); previous: the selection whose rows
    stand for earlier generations under accumulate (default: all their samples)."""

    policy: str = "replace"
    human_fraction: float | None = None
    size: int | None = None
    previous: str | None = None

    def __post_init__(self) -> None:
        policy = _ALIASES.get(self.policy, self.policy)
        object.__setattr__(self, "policy", policy)
        if policy not in POLICIES:
            raise UsageError(f"unknown mixing policy {self.policy!r}; policies: {', '.join(POLICIES)}")
        if policy in ("human-fraction", "keep-human") and self.human_fraction is None:
            raise UsageError(f"mix {policy} needs human_fraction in [0, 1], got {self.human_fraction}")
        if self.human_fraction is not None:
            if not 0.0 <= self.human_fraction <= 1.0:
                raise UsageError(f"human_fraction must be in [0, 1], got {self.human_fraction}")
            if policy == "replace":
                raise UsageError(f"human_fraction={self.human_fraction} does not apply to mix replace "
                                 f"(use human-fraction, keep-human or accumulate)")
        if policy == "accumulate-subsample" and self.size is None:
            raise UsageError("mix accumulate-subsample needs size (the number of rows to keep)")
        sized = ("accumulate-subsample", "human-fraction") + (("accumulate",) if self.human_fraction is not None else ())
        if self.size is not None and (self.size < 0 or policy not in sized):
            raise UsageError(f"size={self.size}: expected a count >= 0, for accumulate-subsample, human-fraction or "
                             f"accumulate with a human fraction (not {policy})")
        if self.previous is not None and policy not in ("accumulate", "accumulate-subsample"):
            raise UsageError(f"previous={self.previous!r} applies to accumulate and accumulate-subsample, not to {policy}")


def _pool(ctx: SelectContext, query: str, params: dict, reason: str) -> pa.Table:
    rows = ctx.sql(f"SELECT sample_id, generation, origin, prompt_id, text_hash, 1.0::DOUBLE AS weight, '' AS reason "
                   f"FROM ({query}) ORDER BY sample_id", params)
    rows = rows.cast(CANDIDATE_SCHEMA)
    return keep(rows, np.ones(rows.num_rows, dtype=bool), reason)


def _sample(rows: pa.Table, n: int, seed: int, pool: str, what: str) -> pa.Table:
    if n > rows.num_rows:
        raise UsageError(f"{what}: needs {n} rows but only {rows.num_rows} are available")
    if n == rows.num_rows:
        return rows
    order = np.argsort(rows.column("sample_id").to_numpy(zero_copy_only=False), kind="stable")
    rng = np.random.default_rng([seed, _POOL_SALT[pool]])
    return rows.take(pa.array(np.sort(order[rng.choice(len(order), size=n, replace=False)])))


def _tag(rows: pa.Table, text: str) -> pa.Table:
    return keep(rows, np.ones(rows.num_rows, dtype=bool), text)


def _union(*tables: pa.Table) -> pa.Table:
    """Concatenate pools; a sample in two pools stays once (the first pool's row)."""
    rows = pa.concat_tables([t.cast(CANDIDATE_SCHEMA) for t in tables])
    if rows.num_rows == 0:
        return rows
    ids = rows.column("sample_id").combine_chunks()
    _, first = np.unique(ids.to_numpy(zero_copy_only=False), return_index=True)
    return rows.take(pa.array(np.sort(first)))


def human_pool(ctx: SelectContext, generation: int, policy: str) -> pa.Table:
    return _pool(ctx, "SELECT * FROM samples WHERE origin = 'human' AND generation <= $g", {"g": generation},
                 f"mix {policy}: human")


def earlier_pool(ctx: SelectContext, generation: int, cfg: MixConfig) -> pa.Table:
    if cfg.previous is None:
        return _pool(ctx, "SELECT * FROM samples WHERE origin <> 'human' AND generation < $g", {"g": generation},
                     f"mix {cfg.policy}: earlier generation")
    found = ctx.sql("SELECT count(*) AS n FROM selections WHERE selection = $name", {"name": cfg.previous})
    if found.column("n")[0].as_py() == 0:
        names = ctx.sql("SELECT DISTINCT selection FROM selections ORDER BY 1").column(0).to_pylist()
        raise UsageError(f"previous selection {cfg.previous!r} not found; selections: {', '.join(names) or 'none'}")
    return _pool(ctx, "SELECT x.* FROM samples AS x JOIN selections AS s USING (sample_id) "
                      "WHERE s.selection = $name AND x.origin <> 'human' AND x.generation < $g",
                 {"name": cfg.previous, "g": generation}, f"mix {cfg.policy}: kept in {cfg.previous}")


def mix(new: pa.Table, ctx: SelectContext, cfg: MixConfig) -> pa.Table:
    """The training rows of policy `cfg` from the chain's kept rows `new` of generation `ctx.generation`."""
    g, p, seed = ctx.generation, cfg.policy, ctx.seed
    new = _tag(new, f"mix {p}: generation {g}")
    if p == "replace":
        return new
    if p in ("accumulate", "accumulate-subsample"):
        if cfg.human_fraction is not None:
            synthetic = _union(earlier_pool(ctx, g, cfg), new)
            return _fixed_fraction(human_pool(ctx, g, p), synthetic, cfg, seed)
        rows = _union(human_pool(ctx, g, p), earlier_pool(ctx, g, cfg), new)
        if p == "accumulate-subsample":
            rows = _sample(rows, cfg.size, seed, "all", f"mix accumulate-subsample size={cfg.size}")
        return rows
    human = human_pool(ctx, g, p)
    if p == "keep-human":
        new = _union(new.filter(pc.not_equal(new.column("origin"), "human")))
        n = _rhu(cfg.human_fraction * human.num_rows)
        return _union(_sample(human, n, seed, "human", "mix keep-human"), new)
    return _fixed_fraction(human, new, cfg, seed)


def _fixed_fraction(human: pa.Table, synthetic: pa.Table, cfg: MixConfig, seed: int) -> pa.Table:
    """Exactly rhu(alpha * total) human rows and the rest synthetic (total = size, or the most both pools fill)."""
    new = _union(synthetic.filter(pc.not_equal(synthetic.column("origin"), "human")))
    alpha = cfg.human_fraction
    if cfg.size is not None:
        total = cfg.size
    else:
        total = _largest_total(alpha, human.num_rows, new.num_rows)
    n_human = _rhu(alpha * total)
    what = f"mix {cfg.policy} human fraction {alpha:g} of {total} rows"
    return _union(_sample(human, n_human, seed, "human", what + " (human)"),
                  _sample(new, total - n_human, seed, "new", what + " (synthetic)"))


def _largest_total(alpha: float, humans: int, synthetic: int) -> int:
    """The largest total T with rhu(alpha T) <= humans and T - rhu(alpha T) <= synthetic."""
    total = humans + synthetic
    if 0.0 < alpha:
        total = min(total, int(np.floor((humans + 0.5) / alpha)) + 1)
    if alpha < 1.0:
        total = min(total, int(np.floor((synthetic + 0.5) / (1.0 - alpha))) + 1)
    while total > 0 and (_rhu(alpha * total) > humans or total - _rhu(alpha * total) > synthetic):
        total -= 1  # at most a couple of steps past the bounds above
    return total


def counts(rows: pa.Table) -> list[dict]:
    """Exact row counts by (origin, generation), sorted."""
    if rows.num_rows == 0:
        return []
    t = rows.group_by(["origin", "generation"]).aggregate([("sample_id", "count")])
    t = t.rename_columns(["origin", "generation", "rows"]).sort_by([("generation", "ascending"), ("origin", "ascending")])
    return t.to_pylist()
