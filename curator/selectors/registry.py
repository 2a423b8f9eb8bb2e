"""Finding selectors by versioned name: built-ins (loaded lazily, by module) and classes registered by user code."""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import UsageError
from .base import NAME_RE, Selector

# versioned name -> "module:Class" (relative to curator.selectors)
BUILTIN: dict[str, str] = {
    "threshold_v1": "rules:Threshold",
    "top_k_v1": "rules:TopK",
    "top_fraction_v1": "rules:TopFraction",
    "reference_band_v1": "rules:ReferenceBand",
    "verifier_v1": "verifier:Verifier",
    "best_of_k_v1": "verifier:BestOfK",
    "exact_dedup_v1": "dedup:ExactDedup",
    "near_dedup_v1": "dedup:NearDedup",
    "diversity_v1": "diversity:Diversity",
    "dsir_resample_v1": "dsir:DsirResample",
}

_REGISTERED: dict[str, type[Selector]] = {}


def register(cls: type[Selector]) -> type[Selector]:
    """Class decorator: make a selector findable by its versioned name."""
    if not isinstance(getattr(cls, "name", None), str) or not NAME_RE.fullmatch(cls.name):
        raise UsageError(f"selector class {cls.__qualname__} needs a versioned name like 'my_selector_v1' "
                         f"(lower-case, ending in _v<N>), got {getattr(cls, 'name', None)!r}")
    _REGISTERED[cls.name] = cls
    return cls


def available() -> list[str]:
    return sorted(set(BUILTIN) | set(_REGISTERED))


def selector_class(name: str) -> type[Selector]:
    """The selector class for a versioned name or `module:Class`."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj: Any = getattr(importlib.import_module(module_name), attr, None)
        except ImportError as exc:
            raise UsageError(f"selector '{name}': cannot import module '{module_name}': {exc}") from exc
        if not (isinstance(obj, type) and issubclass(obj, Selector)) or not NAME_RE.fullmatch(getattr(obj, "name", "")):
            raise UsageError(f"selector '{name}': not a curator Selector subclass with a versioned name")
        return obj
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)
    raise UsageError(f"unknown selector '{name}'; available: {', '.join(available())} (or give module:Class)")


def create(name: str, options: dict[str, Any] | None = None) -> Selector:
    """A configured selector instance."""
    return selector_class(name)(**(options or {}))
