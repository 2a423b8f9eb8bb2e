"""Progress reporting: a rich progress bar on a terminal, silence when piped or with `--quiet`.

Library functions take an optional `Progress`-like object and never print on their own.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from collections.abc import Iterator
from typing import Protocol


class Reporter(Protocol):
    def task(self, description: str, total: float | None = None, unit: str = "") -> "Task": ...


class Task(Protocol):
    def advance(self, amount: float = 1) -> None: ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass


class NullReporter:
    def task(self, description: str, total: float | None = None, unit: str = "") -> Task:
        return _NullTask()


class _RichTask:
    def __init__(self, progress, task_id) -> None:
        self._p, self._id = progress, task_id

    def advance(self, amount: float = 1) -> None:
        self._p.advance(self._id, amount)


class RichReporter:
    def __init__(self, progress) -> None:
        self._p = progress

    def task(self, description: str, total: float | None = None, unit: str = "") -> Task:
        return _RichTask(self._p, self._p.add_task(description, total=total))


@contextmanager
def reporter(quiet: bool = False) -> Iterator[Reporter]:
    """A reporter for the CLI: rich bars only when stderr is a terminal and not quiet."""
    if quiet or not sys.stderr.isatty():
        yield NullReporter()
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                               TransferSpeedColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeElapsedColumn(), transient=True) as progress:
        yield RichReporter(progress)
