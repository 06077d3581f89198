"""Event loops: uvloop where it is installed (a dependency on Linux and macOS), asyncio's own
elsewhere or when asked (`ERRANDS_LOOP=asyncio`).

uvloop runs the same asyncio code with its socket and timer machinery in C: a worker's broker
and task I/O (a Redis or HTTP call per job) costs less CPU per job on it.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Final

LOOPS: Final = ("auto", "uvloop", "asyncio")


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new loop of `kind`: "uvloop", "asyncio", or "auto" (uvloop if importable)."""
    if kind not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {kind!r}")
    if kind == "uvloop" or (kind == "auto" and importlib.util.find_spec("uvloop") is not None):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def raise_lost_cancel() -> None:
    """Raise the cancellation of the running task if a library lost it on the way.

    On Python 3.11, `asyncio.wait_for` returns a result it got in the same loop pass as a
    cancel and drops the cancel (gh-86296, fixed in 3.12); redis-py sends every command through
    it. A wait that read the broker that way would then sleep to its timeout, however soon it
    was cancelled: a stopping worker's grace started late (docs/decisions.md 58). The task
    still counts the request (`cancelling()`), so the wait can honour it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
