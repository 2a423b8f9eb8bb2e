"""Finding scorers by name: built-ins, the `curator.scorers` entry-point group, and `module:Name`.

Built-ins are listed here by module so that importing the registry stays cheap: a scorer's module (and
its heavy imports) loads only when that scorer is asked for.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from ..errors import UsageError
from .base import NAME_RE, Scorer

ENTRY_POINT_GROUP = "curator.scorers"

# versioned name -> "module:Class" (relative to curator.scorers)
BUILTIN: dict[str, str] = {
    "text_stats_v1": "text_stats:TextStats",
    "repetition_v1": "repetition:Repetition",
    "embedding_v1": "embedding:Embedding",
    "perplexity_v1": "perplexity:Perplexity",
    "reward_model_v1": "reward_model:RewardModel",
    "gsm8k_answer_v1": "verifiers:Gsm8kAnswer",
    "exact_match_v1": "verifiers:ExactMatch",
    "regex_v1": "verifiers:Regex",
    "python_v1": "verifiers:PythonFunction",
    "code_tests_v1": "code_tests:CodeTests",
    "dsir_v1": "dsir:Dsir",
}

_REGISTERED: dict[str, type[Scorer]] = {}


def register(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator: make a scorer findable by its versioned name (also for user code imported first)."""
    if not isinstance(getattr(cls, "name", None), str) or not NAME_RE.fullmatch(cls.name):
        raise UsageError(f"scorer class {cls.__qualname__} needs a versioned name like 'my_scorer_v1' "
                         f"(lower-case, ending in _v<N>), got {getattr(cls, 'name', None)!r}")
    _REGISTERED[cls.name] = cls
    return cls


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    return sorted(set(BUILTIN) | set(_REGISTERED) | set(_entry_points()))


def _load_target(target: str, what: str) -> type[Scorer]:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise UsageError(f"scorer '{what}': expected module:Name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"scorer '{what}': cannot import module '{module_name}': {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UsageError(f"scorer '{what}': module '{module_name}' has no attribute '{attr}'")
    if not (isinstance(obj, type) and issubclass(obj, Scorer)):
        raise UsageError(f"scorer '{what}': {target} is not a curator Scorer subclass")
    if not isinstance(getattr(obj, "name", None), str) or not NAME_RE.fullmatch(obj.name):
        raise UsageError(f"scorer '{what}': class {obj.__qualname__} needs a versioned name like 'my_scorer_v1', "
                         f"got {getattr(obj, 'name', None)!r}")
    return obj


def scorer_class(name: str) -> type[Scorer]:
    """The scorer class for a versioned name, an entry-point name, or `module:Name`."""
    if ":" in name:
        return _load_target(name, name)
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return _load_target(f"{__package__}.{module}:{attr}", name)
    eps = _entry_points()
    if name in eps:
        try:
            obj = eps[name].load()
        except Exception as exc:  # a broken third-party package must not look like a typo
            raise UsageError(f"scorer '{name}': entry point {eps[name].value} failed to load: {exc}") from exc
        return _load_target(f"{obj.__module__}:{obj.__qualname__}", name)
    raise UsageError(f"unknown scorer '{name}'; available: {', '.join(available()) or 'none'} "
                     f"(or give module:Name)")


def create(name: str, options: dict[str, Any] | None = None) -> Scorer:
    """A configured scorer instance."""
    return scorer_class(name)(**(options or {}))
