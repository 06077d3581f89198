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
