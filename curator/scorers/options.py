"""Scorer options from the command line and TOML, resolved to configured scorer instances.

- `-o key=value` sets `key` on every named scorer that has that option (an error if none has it);
  `-o name.key=value` sets it on one scorer (`perplexity_v1.batch_size=8`);
- `--model PATH` and `--device D` are shorthands for `-o model=PATH` / `-o device=D`;
- a TOML file may list `scorers = [...]` and give `[<scorer name>]` tables of options.
Later sources win: TOML, then shorthands, then `-o`.
"""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .base import Scorer
from .registry import scorer_class


def _fields(cls: type[Scorer]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls.Config)} if dataclasses.is_dataclass(cls.Config) else set()


def build_scorers(names: list[str], options: list[str] = (), *, model: str | None = None, device: str | None = None,
                  config_file: str | None = None) -> list[Scorer]:
    """Configured scorers for the given names (versioned names, entry points or module:Name)."""
    per_scorer: dict[str, dict[str, Any]] = {}
    names = list(names)
    if config_file:
        path = Path(config_file)
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read scorer config {path}: {exc}") from exc
        listed = doc.pop("scorers", [])
        if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
            raise UsageError(f"{path}: 'scorers' must be a list of scorer names")
        names += [n for n in listed if n not in names]
        for key, value in doc.items():
            if not isinstance(value, dict):
                raise UsageError(f"{path}: '{key}' must be a table of options for scorer '{key}'")
            per_scorer.setdefault(key, {}).update(value)
    if not names:
        raise UsageError("no scorer given; name at least one with --scorer")
    classes = {name: scorer_class(name) for name in names}
    # A scorer may be addressed by what the user typed or by its versioned name.
    alias = {name: name for name in names} | {cls.name: name for name, cls in classes.items()}
    resolved: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, opts in per_scorer.items():
        if key not in alias:
            raise UsageError(f"options given for scorer '{key}', which is not being run ({', '.join(names)})")
        resolved[alias[key]].update(opts)

    def set_everywhere(key: str, value: Any, flag: str) -> None:
        takers = [n for n, cls in classes.items() if key in _fields(cls)]
        if not takers:
            raise UsageError(f"{flag}: none of the scorers {', '.join(names)} takes option '{key}'")
        for n in takers:
            resolved[n][key] = value

    if model is not None:
        set_everywhere("model", model, "--model")
    if device is not None:
        set_everywhere("device", device, "--device")
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-o expects key=value or scorer.key=value, got '{item}'")
        target, dot, field = key.rpartition(".")
        if dot:
            if target not in alias:
                raise UsageError(f"-o {item}: scorer '{target}' is not being run ({', '.join(names)})")
            resolved[alias[target]][field] = value
        else:
            set_everywhere(key, value, f"-o {item}")
    return [classes[n](**resolved[n]) for n in names]
