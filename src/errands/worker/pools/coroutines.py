"""The async pool: `async def` tasks as coroutines on the worker's own loop.

A time limit cancels the coroutine (asyncio.timeout); thousands run at once on one thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from errands.brokers.contract import Claimed
from errands.errors import Timeout
from errands.job import ErrorKind
from errands.outcome import Outcome
from errands.worker.execution import Invocation, classify, completed


class CoroutinePool:
    """Runs coroutine functions on the running loop."""

    name = "async"

    async def start(self) -> None:
        """Nothing to start."""

    async def run(self, claimed: Claimed, invocation: Invocation) -> Outcome:
        """Await the task, cancelled at its timeout."""
        task = invocation.task
        limit = invocation.timeout.total_seconds() if invocation.timeout else None
        try:
            async with asyncio.timeout(limit) as scope:
                value: Any = task.fn(*invocation.args, **invocation.kwargs)
                if asyncio.iscoroutine(value):
                    value = await value
        except TimeoutError as error:
            if scope.expired():
                late = Timeout(f"{task.name} ran past its {limit:g}s time limit and was cancelled")
                return classify(late, claimed, task, ErrorKind.TIMEOUT)
            return classify(error, claimed, task)
        except (Exception, SystemExit) as error:  # the task's own failure becomes an Outcome
            return classify(error, claimed, task)
        return completed(claimed, value)

    async def stop(self) -> None:
        """Nothing to stop: the worker cancels running coroutines itself."""
