"""Named crash points, used by the crash-safety tests.

`CURATOR_CRASH_AT=<name>` makes the process kill itself (SIGKILL, no cleanup, no finally blocks) when it
reaches that point, which is how the tests prove that a crash at any step of a write leaves the store
readable at its previous version. Costs one dict lookup when unset.
"""
from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("CURATOR_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
