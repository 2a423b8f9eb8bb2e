"""Named crash points, used by the crash-safety tests.

`CURATOR_CRASH_AT=<name>` makes the process kill itself (SIGKILL, no cleanup, no finally blocks) when it
reaches that point, which is how the tests prove that a crash at any step of a write leaves the store
readable at its previous version; `<name>@<n>` kills it at the n-th time it reaches the point (a crash in
a later round of a loop, say). Costs one dict lookup when unset.
"""
from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    target = os.environ.get("CURATOR_CRASH_AT")
    if not target:
        return
    point, _, nth = target.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)
