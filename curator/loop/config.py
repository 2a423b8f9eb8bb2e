"""The loop's configuration: typed, frozen sections read from TOML (or a dict), checked before any work.

A config file::

    [loop]          name, workdir, store (default <workdir>/store), rounds (1..99), seed, threads
    [human]         path (a file or folder, or a list), text_field, format, separator, heldout_fraction |
                    heldout (a file), max_documents
    [base]          checkpoint = PATH, or a from-scratch model: vocab_size, n_layer, n_embd, n_head,
                    n_positions; [base.train] overrides [train] for the base model
    [generate]      prompts_from, prefix_tokens, samples_per_prompt, temperature, top_k, top_p,
                    max_new_tokens, batch_size, seed, backend, device, dtype
    [score]         scorers = [...]; [score.<scorer>] options (model = "base": the base checkpoint)
    [[select]]      the selector chain, as in `curator select --config` (selector = "...", options)
    [select_options] origins (candidate origins; default every origin but human)
    [mix]           policy, human_fraction, size (MixConfig; `previous` is set by the loop)
    [edit]          enabled, threshold, top_k, temperature, delete_below, seed, batch_size, max_length
    [train]         steps | epochs, lr, batch_size, block_size, warmup, weight_decay, grad_accum, seed,
                    init ("previous" | "base" | "scratch"), device, dtype
    [eval]          batch_size, max_length, stride, verifier, eval_set, limit, max_new_tokens
    [[arm]]         name, and tables overriding generate, score, select, select_options, mix, edit, train

Decisions:
- Every table and key is checked: an unknown key, a value of the wrong type, an unknown scorer, selector or
  mixing policy is a `UsageError` naming the file (or "<dict>") and the key, before anything runs.
- Arm overrides are shallow merges onto the top-level table (`[arm.train] lr = 1e-3` changes only lr), except
  `select`, a chain, which an arm replaces as a whole (`select = []`: keep every candidate), and `score`, whose
  `scorers` list is replaced while per-scorer option tables merge. Without any `[[arm]]` the loop has one
  arm, "main", with the top-level tables. In train tables, `steps` and `epochs` are alternatives: an override
  naming one drops the other it inherited (`[base.train] epochs = 8` under a top-level `steps = 48`).
- Relative paths resolve against the current directory (as every CLI path does) and are stored absolute,
  so the config hash, which a resumed loop must match, names the same files wherever the rerun starts.
- Arm names are tag-safe, unique, and not "base" (the shared round 0) or "store" (the report's name for a
  store made by hand); `rounds` is at most 99 because arm i round r writes generation 100 * i + r.
- `threads` (default 1) is the torch thread count of every step: CPU kernels are deterministic only for a
  fixed thread count, and one thread is what makes a resumed loop bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..store.store import validate_tag

MAX_ROUNDS = 99
RESERVED_ARMS = ("base", "store")
BASE_MODEL = "base"          # a scorer option value standing for the base checkpoint
TRAIN_INITS = ("previous", "base", "scratch")


@dataclass(frozen=True)
class HumanConfig:
    path: tuple[str, ...] = ()
    text_field: str = "text"
    format: str | None = None
    separator: str | None = None
    heldout_fraction: float = 0.1
    heldout: str | None = None
    max_documents: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = None
    epochs: int | None = None
    lr: float = 3e-4
    batch_size: int = 8
    block_size: int | None = None
    warmup: int | None = None
    weight_decay: float = 0.1
    grad_accum: int = 1
    seed: int | None = None          # default: [loop] seed
    init: str = "previous"
    device: str = "auto"
    dtype: str = "auto"


@dataclass(frozen=True)
class BaseConfig:
    checkpoint: str | None = None
    vocab_size: int = 512
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    n_positions: int = 128
    train: TrainConfig = TrainConfig()


@dataclass(frozen=True)
class GenerateConfig:
    prompts_from: int = 0
    prefix_tokens: int = 16
    samples_per_prompt: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 64
    batch_size: int = 64
    seed: int | None = None          # default: [loop] seed; round r samples with seed + r (every arm)
    backend: str = "auto"
    device: str = "auto"
    dtype: str = "auto"


@dataclass(frozen=True)
class ScoreConfig:
    scorers: tuple[str, ...] = ()
    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()   # (scorer, ((key, value), ...))

    def options_of(self, scorer: str) -> dict[str, Any]:
        return dict(dict(self.options).get(scorer, ()))


@dataclass(frozen=True)
class SelectOptions:
    origins: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MixSection:
    policy: str = "replace"
    human_fraction: float | None = None
    size: int | None = None


@dataclass(frozen=True)
class EditConfig:
    enabled: bool = False
    threshold: float = 0.99
    top_k: int = 8
    temperature: float = 1.5
    delete_below: float | None = None
    seed: int | None = None          # default: [loop] seed
    batch_size: int = 16
    max_length: int | None = None


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 16
    max_length: int | None = None
    stride: int | None = None
    verifier: str | None = None
    eval_set: str | None = None
    limit: int | None = None
    max_new_tokens: int = 64


@dataclass(frozen=True)
class ArmConfig:
    name: str
    index: int                       # 1-based, config order: round r writes generation 100 * index + r
    generate: GenerateConfig
    score: ScoreConfig
    select: tuple[tuple[tuple[str, Any], ...], ...]   # the chain: each step's (key, value) pairs
    select_options: SelectOptions
    mix: MixSection
    edit: EditConfig
    train: TrainConfig

    def generation(self, round_: int) -> int:
        return 100 * self.index + round_

    def select_specs(self) -> list[dict[str, Any]]:
        return [dict(step) for step in self.select]


@dataclass(frozen=True)
class LoopConfig:
    name: str
    workdir: str
    store: str
    rounds: int
    seed: int
    threads: int
    human: HumanConfig
    base: BaseConfig
    eval: EvalConfig
    arms: tuple[ArmConfig, ...]
    source: str = field(default="<dict>", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The whole config as plain JSON values (what the "loop" start run records)."""
        data = _plain(dataclasses.asdict(self))
        data.pop("source", None)
        return data

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def arm(self, name: str) -> ArmConfig:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise UsageError(f"unknown arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- loading

SECTIONS = ("loop", "human", "base", "generate", "score", "select", "select_options", "mix", "edit", "train",
            "eval", "arm")
ARM_KEYS = ("name", "generate", "score", "select", "select_options", "mix", "edit", "train")
_LOOP_KEYS = ("name", "workdir", "store", "rounds", "seed", "threads")


class _Where:
    """Names the file and the table in every message."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, where: str, message: str) -> UsageError:
        return UsageError(f"loop config {self.source}: {where}: {message}")


def load_config(config: str | Path | dict[str, Any], *, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """A checked `LoopConfig` from a TOML file or a dict (see the module docstring).

    `overrides` replace keys of `[loop]` (the CLI's `--store` and `--workdir`)."""
    if isinstance(config, dict):
        data, source = json.loads(json.dumps(config)), "<dict>"   # a deep copy; TOML-like values only
    else:
        path = Path(config)
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read loop config {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"loop config {path}: not valid TOML: {exc}") from exc
    w = _Where(source)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise w.error(f"[{unknown[0]}]", f"unknown table or key {unknown[0]!r}; valid: {', '.join(SECTIONS)}")
    loop = _table(w, data, "loop")
    loop.update({k: v for k, v in (overrides or {}).items() if v is not None})
    _keys(w, "[loop]", loop, _LOOP_KEYS)
    name = loop.get("name", "loop")
    if not isinstance(name, str):
        raise w.error("[loop] name", f"expected a string, got {name!r}")
    try:
        validate_tag(name)
    except UsageError:
        raise w.error("[loop] name", f"invalid name {name!r}: use letters, digits, '.', '-' and '_'") from None
    rounds = loop.get("rounds", 1)
    if not _is_int(rounds) or not 1 <= rounds <= MAX_ROUNDS:
        raise w.error("[loop] rounds", f"expected an integer from 1 to {MAX_ROUNDS} (arm i round r writes "
                                       f"generation 100 * i + r), got {rounds!r}")
    seed = loop.get("seed", 0)
    threads = loop.get("threads", 1)
    for key, value, low in (("seed", seed, 0), ("threads", threads, 1)):
        if not _is_int(value) or value < low:
            raise w.error(f"[loop] {key}", f"expected an integer >= {low}, got {value!r}")
    workdir = loop.get("workdir", f"{name}-out")
    if not isinstance(workdir, str) or not workdir:
        raise w.error("[loop] workdir", f"expected a folder path, got {workdir!r}")
    workdir = str(Path(workdir).absolute())
    store = loop.get("store")
    if store is not None and (not isinstance(store, str) or not store):
        raise w.error("[loop] store", f"expected a folder path, got {store!r}")
    store = str(Path(store).absolute()) if store else str(Path(workdir) / "store")

    human = _build(w, "[human]", HumanConfig, _human_table(w, _table(w, data, "human")))
    if not human.path:
        raise w.error("[human] path", "required: the human data (a file, a folder or a list of them)")
    if human.heldout is None and not 0.0 <= human.heldout_fraction < 1.0:
        raise w.error("[human] heldout_fraction", f"expected a number in [0, 1), got {human.heldout_fraction!r}")
    if human.max_documents is not None and human.max_documents < 1:
        raise w.error("[human] max_documents", f"expected an integer >= 1, got {human.max_documents!r}")
    human = dataclasses.replace(human, path=tuple(str(Path(p).absolute()) for p in human.path),
                                heldout=str(Path(human.heldout).absolute()) if human.heldout else None)

    train_top = _table(w, data, "train")
    base_t = _table(w, data, "base")
    base_train = _override_train(train_top, _table(w, base_t, "train", "[base.train]"))
    base_t = {k: v for k, v in base_t.items() if k != "train"}
    base = _build(w, "[base]", BaseConfig, base_t)
    base = dataclasses.replace(base, train=_train(w, "[base.train]", base_train),
                               checkpoint=str(Path(base.checkpoint).absolute()) if base.checkpoint else None)
    if base.checkpoint is None and base.n_embd % base.n_head:
        raise w.error("[base] n_embd", f"n_embd={base.n_embd} must be a multiple of n_head={base.n_head}")
    ev = _build(w, "[eval]", EvalConfig, _table(w, data, "eval"))
    if (ev.verifier is None) != (ev.eval_set is None):
        raise w.error("[eval]", f"verifier and eval_set go together; got verifier={ev.verifier!r}, "
                                f"eval_set={ev.eval_set!r}")
    if ev.eval_set:
        ev = dataclasses.replace(ev, eval_set=str(Path(ev.eval_set).absolute()))

    top = {key: data.get(key) for key in ("generate", "score", "select", "select_options", "mix", "edit", "train")}
    arms_t = data.get("arm", [{"name": "main"}])
    if not isinstance(arms_t, list) or not all(isinstance(a, dict) for a in arms_t) or not arms_t:
        raise w.error("[[arm]]", "expected one or more [[arm]] tables")
    arms = []
    for i, arm_t in enumerate(arms_t, 1):
        arms.append(_arm(w, i, arm_t, top))
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise w.error("[[arm]] name", f"arm name {dup[0]!r} used twice; arm names must be unique")
    return LoopConfig(name=name, workdir=workdir, store=store, rounds=rounds, seed=seed, threads=threads,
                      human=human, base=base, eval=ev, arms=tuple(arms), source=source)


def _arm(w: _Where, index: int, arm_t: dict[str, Any], top: dict[str, Any]) -> ArmConfig:
    name = arm_t.get("name")
    label = f"[[arm]] {name!r}" if isinstance(name, str) else f"[[arm]] number {index}"
    if not isinstance(name, str):
        raise w.error(f"{label} name", f"every arm needs name = \"...\", got {name!r}")
    try:
        validate_tag(name)
    except UsageError:
        raise w.error(f"{label} name", f"invalid arm name {name!r}: use letters, digits, '.', '-' and '_'") from None
    if name in RESERVED_ARMS:
        raise w.error(f"{label} name", f"arm name {name!r} is reserved ({', '.join(RESERVED_ARMS)})")
    unknown = sorted(set(arm_t) - set(ARM_KEYS))
    if unknown:
        raise w.error(f"{label}", f"unknown key {unknown[0]!r}; an arm overrides: {', '.join(ARM_KEYS[1:])}")

    def merged(key: str) -> dict[str, Any]:
        base = _table(w, top, key, f"[{key}]")
        over = _table(w, arm_t, key, f"{label} {key}")
        return _override_train(base, over) if key == "train" else {**base, **over}

    where = f"{label} "
    generate = _build(w, where + "generate", GenerateConfig, merged("generate"))
    from ..generate import SamplingConfig

    try:
        SamplingConfig(samples_per_prompt=generate.samples_per_prompt, temperature=generate.temperature,
                       top_p=generate.top_p, top_k=generate.top_k, max_new_tokens=generate.max_new_tokens)
    except UsageError as exc:
        raise w.error(where + "generate", str(exc)) from None
    if generate.prompts_from != 0:
        raise w.error(where + "generate prompts_from", f"the loop prompts from the human data (0), got "
                                                       f"{generate.prompts_from!r}")
    score = _score(w, where + "score", _table(w, top, "score", "[score]"), _table(w, arm_t, "score", label + " score"))
    chain = arm_t["select"] if "select" in arm_t else (top.get("select") or [])
    chain = _chain(w, where + "select", chain)
    sel_opts = _build(w, where + "select_options", SelectOptions, merged("select_options"))
    if sel_opts.origins is not None:
        from ..selectors.pipeline import ORIGINS

        bad = [o for o in sel_opts.origins if o not in ORIGINS]
        if bad:
            raise w.error(where + "select_options origins", f"unknown origin {bad[0]!r}; origins: {', '.join(ORIGINS)}")
    mix_t = merged("mix")
    if "previous" in mix_t:
        raise w.error(where + "mix previous", "set by the loop (the arm's previous round), not by the config")
    mix = _build(w, where + "mix", MixSection, mix_t)
    from ..selectors.mixing import MixConfig

    try:
        checked = MixConfig(policy=mix.policy, human_fraction=mix.human_fraction, size=mix.size)
    except UsageError as exc:
        raise w.error(where + "mix", str(exc)) from None
    mix = dataclasses.replace(mix, policy=checked.policy)  # the canonical spelling ("human_fraction" -> "human-fraction")
    edit = _build(w, where + "edit", EditConfig, merged("edit"))
    train = _train(w, where + "train", merged("train"))
    return ArmConfig(name=name, index=index, generate=generate, score=score, select=chain,
                     select_options=sel_opts, mix=mix, edit=edit, train=train)


def _override_train(inherited: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` onto `inherited`; steps and epochs are alternatives, so naming one drops the inherited other."""
    out = dict(inherited)
    if "steps" in over:
        out.pop("epochs", None)
    if "epochs" in over:
        out.pop("steps", None)
    return {**out, **over}


def _train(w: _Where, where: str, table: dict[str, Any]) -> TrainConfig:
    train = _build(w, where, TrainConfig, table)
    if train.init not in TRAIN_INITS:
        raise w.error(f"{where} init", f"unknown init {train.init!r}; valid choices: {', '.join(TRAIN_INITS)}")
    if train.steps is not None and train.epochs is not None:
        raise w.error(where, f"give steps or epochs, not both (steps={train.steps}, epochs={train.epochs})")
    for key in ("steps", "epochs", "batch_size", "block_size", "grad_accum"):
        value = getattr(train, key)
        if value is not None and value < 1:
            raise w.error(f"{where} {key}", f"expected a positive integer, got {value!r}")
    if not train.lr > 0:
        raise w.error(f"{where} lr", f"expected a positive number, got {train.lr!r}")
    return train


def _score(w: _Where, where: str, top: dict[str, Any], over: dict[str, Any]) -> ScoreConfig:
    from ..scorers.registry import create

    table = {**top, **over}
    scorers = table.pop("scorers", [])
    if not isinstance(scorers, list) or not all(isinstance(s, str) for s in scorers):
        raise w.error(f"{where} scorers", f"expected a list of scorer names, got {scorers!r}")
    if len(set(scorers)) != len(scorers):
        raise w.error(f"{where} scorers", f"a scorer named twice: {scorers}")
    options = []
    for key, value in table.items():
        if key not in scorers:
            raise w.error(f"{where} {key}", f"options for {key!r}, which is not in scorers = {scorers}")
        if not isinstance(value, dict):
            raise w.error(f"{where} {key}", f"expected a table of options, got {value!r}")
    for name in scorers:
        opts = {**(top.get(name) or {}), **(over.get(name) or {})}
        # Build the scorer once to check its name and options; an option "base" (the base checkpoint, which
        # may not exist yet) is checked by name only, through the scorer's config class.
        try:
            if BASE_MODEL in opts.values():
                from ..config import make_config
                from ..scorers.registry import scorer_class

                cls = scorer_class(name)
                make_config(cls.Config, {k: v for k, v in opts.items() if v != BASE_MODEL}, plugin=name)
                unknown = sorted(k for k, v in opts.items() if v == BASE_MODEL and k not in
                                 {f.name for f in dataclasses.fields(cls.Config)})
                if unknown:
                    make_config(cls.Config, {unknown[0]: None}, plugin=name)
            else:
                create(name, opts)
        except UsageError as exc:
            raise w.error(f"{where} {name}", str(exc)) from None
        options.append((name, tuple(sorted(opts.items()))))
    return ScoreConfig(scorers=tuple(scorers), options=tuple(options))


def _chain(w: _Where, where: str, chain: Any) -> tuple[tuple[tuple[str, Any], ...], ...]:
    from ..selectors.pipeline import build_steps

    if not isinstance(chain, list) or not all(isinstance(s, dict) for s in chain):
        raise w.error(where, f"expected an array of tables ([[select]] with selector = \"...\"), got {chain!r}")
    try:
        build_steps(chain)
    except UsageError as exc:
        raise w.error(where, str(exc)) from None
    return tuple(tuple(sorted(step.items())) for step in chain)


def _human_table(w: _Where, table: dict[str, Any]) -> dict[str, Any]:
    path = table.get("path")
    if isinstance(path, str):
        table["path"] = [path]
    elif path is not None and (not isinstance(path, list) or not all(isinstance(p, str) for p in path)):
        raise w.error("[human] path", f"expected a path or a list of paths, got {path!r}")
    return table


def _table(w: _Where, data: dict[str, Any], key: str, where: str | None = None) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise w.error(where or f"[{key}]", f"expected a table, got {value!r}")
    return dict(value)


def _keys(w: _Where, where: str, table: dict[str, Any], valid: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise w.error(where, f"unknown key {unknown[0]!r}; valid keys: {', '.join(valid)}")


def _build(w: _Where, where: str, cls: type, table: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _keys(w, where, table, tuple(fields))
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            continue  # nested tables are built by the caller
        ok, value = _coerce(value, hint)
        if not ok:
            raise w.error(f"{where} {key}", f"expected {_type_name(hint)}, got {table[key]!r}")
        values[key] = value
    return cls(**values)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return type(None) in args, None
        for arg in args:
            if arg is not type(None):
                ok, out = _coerce(value, arg)
                if ok:
                    return True, out
        return False, value
    if origin is tuple:
        if not isinstance(value, list):
            return False, value
        items = [_coerce(v, args[0]) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return _is_int(value), value
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)), float(value) if isinstance(
            value, (int, float)) and not isinstance(value, bool) else value
    if hint is str:
        return isinstance(value, str), value
    return True, value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("nothing" if a is type(None) else _type_name(a) for a in args)
    if origin is tuple:
        return f"a list of {_type_name(args[0])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
