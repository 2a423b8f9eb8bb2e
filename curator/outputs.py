"""Output folders written by a command (an export, a checkpoint): the checks before anything is written."""
from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def check_output_folder(out: Path, overwrite: bool, *, marker: str, what: str) -> None:
    """Refuse a file, or a non-empty folder unless `overwrite`; and `overwrite` only ever replaces a folder that
    holds `marker` (a previous `what`), so that it can never delete an unrelated folder."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out '{out}' is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"output folder '{out}' is not empty; choose another or pass --overwrite")
        if not (out / marker).is_file():
            raise UsageError(f"output folder '{out}' is not empty and holds no {marker}; --overwrite only "
                             f"replaces a previous {what}")
