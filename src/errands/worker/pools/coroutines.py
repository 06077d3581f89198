"""The async pool: `async def` tasks as coroutines on the worker's own loop.

A time limit cancels the coroutine (asyncio.timeout); thousands run at once on one thread.
"""

from __future__ import annotations

from errands.worker.execution import attempt_async


class CoroutinePool:
    """Runs coroutine functions on the running loop."""

    name = "async"

    async def start(self) -> None:
        """Nothing to start."""

    #: Await the task on the running loop, cancelled at its timeout (no wrapper: one coroutine
    #: per job is the whole cost of this pool).
    run = staticmethod(attempt_async)

    async def stop(self) -> None:
        """Nothing to stop: the worker cancels running coroutines itself."""
