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
        """A bar counting bytes (unit "" or "bytes": sizes and MB/s) or items of `unit` ("samples": n/s)."""
        return _RichTask(self._p, self._p.add_task(description, total=total, unit=unit or "bytes"))


def _columns():
    """Columns that show bytes as sizes and speeds, and counted items as `done/total unit` and `n unit/s`."""
    from rich.progress import DownloadColumn, ProgressColumn, TransferSpeedColumn
    from rich.text import Text

    class Count(ProgressColumn):
        _bytes = DownloadColumn()

        def render(self, task) -> Text:
            unit = task.fields.get("unit", "bytes")
            if unit == "bytes":
                return self._bytes.render(task)
            total = "?" if task.total is None else f"{int(task.total):,}"
            return Text(f"{int(task.completed):,}/{total} {unit}", style="progress.download")

    class Rate(ProgressColumn):
        _bytes = TransferSpeedColumn()

        def render(self, task) -> Text:
            unit = task.fields.get("unit", "bytes")
            if unit == "bytes":
                return self._bytes.render(task)
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{speed:,.0f} {unit}/s", style="progress.data.speed")

    return Count(), Rate()


@contextmanager
def reporter(quiet: bool = False) -> Iterator[Reporter]:
    """A reporter for the CLI: rich bars only when stderr is a terminal and not quiet."""
    if quiet or not sys.stderr.isatty():
        yield NullReporter()
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), *_columns(), TimeElapsedColumn(),
                  transient=True) as progress:
        yield RichReporter(progress)
