"""Typed errors. Library code raises these; the CLI turns them into messages and exit codes.

Messages are lower-case, show the offending value, and say what was expected.
"""
from __future__ import annotations


class CuratorError(Exception):
    """Base class of every error curator raises on purpose."""

    exit_code = 1


class InputError(CuratorError):
    """Bad input data: names the file, the line (or row) and the problem."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.reason = message
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(where + message)


class UsageError(CuratorError):
    """A wrong option, parameter or plugin name."""

    exit_code = 2


class StoreError(CuratorError):
    """The store is missing, locked, corrupt or of another schema version."""

    exit_code = 3


class SchemaVersionError(StoreError):
    """A table was written by another schema version than this curator reads."""


class AlarmError(CuratorError):
    """Raised (by the CLI) when `--fail-on alarm` meets a metric in alarm."""

    exit_code = 4
