"""Plugin configs: frozen dataclasses built from options (CLI strings, TOML values or Python), and their hash.

Every plugin kind (scorers, selectors, ...) keeps its options in a frozen dataclass; the field types drive
parsing of `key=value` strings, and the hash of the plugin's versioned name and options keys its outputs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any

from .errors import UsageError


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`, first 16 hex digits."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_config(config_cls: type, options: dict[str, Any], *, plugin: str = "", kind: str = "scorer") -> Any:
    """Build a config dataclass from options, parsing strings (from `-o key=value`) by the field types.

    `kind` and `plugin` name the plugin in error messages ("unknown option(s) ... for scorer x_v1")."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)} if dataclasses.is_dataclass(config_cls) else {}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "none"
        raise UsageError(f"unknown option(s) {unknown} for {kind} {plugin or config_cls.__name__}; options: {valid}")
    hints = typing.get_type_hints(config_cls)
    values = {}
    for key, value in options.items():
        try:
            values[key] = _parse(value, hints[key])
        except (TypeError, ValueError) as exc:
            raise UsageError(f"option {key}={value!r} for {kind} {plugin}: expected {_type_name(hints[key])}") from exc
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad options for {kind} {plugin}: {exc}") from exc


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _parse(value: Any, tp: Any) -> Any:
    """Coerce a string to a config field type; non-strings (from TOML or Python) pass through checked."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse(value, arg)
            except (TypeError, ValueError) as exc:
                errors.append(exc)
        raise ValueError(errors)
    if origin in (tuple, list):
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = args[0] if args else str
        return tuple(_parse(v.strip() if isinstance(v, str) else v, inner) for v in items if v != "")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(value)
        return int(value)
    if tp is float:
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    return value
