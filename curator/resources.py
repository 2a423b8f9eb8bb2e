"""Locating the `sql/` and `schemas/` folders, in a checkout and in an installed wheel.

In a wheel both folders are copied inside the package (`curator/sql`, `curator/schemas`, see
`pyproject.toml`); in a checkout or an editable install they sit beside the package at the
repository root. The packaged copy wins so an installed curator never reads a stray checkout.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def _resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"curator resource folder '{name}' not found beside {_PACKAGE}")


def sql_dir() -> Path:
    return _resource_dir("sql")


def schemas_dir() -> Path:
    return _resource_dir("schemas")
