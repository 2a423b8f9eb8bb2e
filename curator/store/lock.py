"""One writer at a time: an exclusive advisory lock on `<store>/.lock`.

Readers never lock: they read the versions recorded by the last committed run, which a writer
only ever appends to.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import StoreError


class WriterLock:
    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> "WriterLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(f"store {self.path.parent} is being written by another process (pid {holder}); try again when it ends")
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
