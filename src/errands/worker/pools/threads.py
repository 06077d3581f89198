"""The thread pool: plain functions for blocking I/O, fed from the worker's loop.

A Python thread cannot be killed. At its time limit a job is failed with kind `timeout` (and
retried by policy) while its thread runs on, counted as stuck; past `max_stuck` the worker is
told to drain and restart so stuck threads cannot starve it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from errands.brokers.contract import Claimed
from errands.errors import Timeout
from errands.job import ErrorKind
from errands.outcome import Outcome
from errands.worker.execution import Invocation, classify, completed

log = logging.getLogger("errands.worker")


class ThreadPool:
    """A ThreadPoolExecutor with room for `size` jobs plus the threads that got stuck."""

    name = "thread"

    def __init__(
        self,
        size: int,
        *,
        max_stuck: int | None = None,
        on_too_stuck: Callable[[], None] | None = None,
    ) -> None:
        self.size = size
        self.max_stuck = size if max_stuck is None else max_stuck
        self.stuck = 0
        self._on_too_stuck = on_too_stuck
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Create the executor (threads start on demand)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.size + self.max_stuck, thread_name_prefix="errands-job"
            )

    async def run(self, claimed: Claimed, invocation: Invocation) -> Outcome:
        """Run the function in a thread; at its timeout, fail the attempt and count the thread."""
        await self.start()
        assert self._executor is not None
        task = invocation.task
        call = functools.partial(task.fn, *invocation.args, **invocation.kwargs)
        future = asyncio.get_running_loop().run_in_executor(self._executor, _capture, call)
        limit = invocation.timeout.total_seconds() if invocation.timeout else None
        done, _ = await asyncio.wait({future}, timeout=limit)
        if not done:
            self._count_stuck(future, claimed)
            late = Timeout(f"{task.name} ran past its {limit:g}s time limit; its thread runs on")
            return classify(late, claimed, task, ErrorKind.TIMEOUT)
        ok, value = future.result()
        if not ok:
            return classify(value, claimed, task)
        return completed(claimed, value)

    def _count_stuck(self, future: asyncio.Future[Any], claimed: Claimed) -> None:
        self.stuck += 1
        future.add_done_callback(lambda _: self._unstick())
        log.warning(
            "job %s timed out; its thread is stuck (%d stuck of %d allowed)",
            claimed.job.id,
            self.stuck,
            self.max_stuck,
        )
        if self.stuck > self.max_stuck and self._on_too_stuck is not None:
            self._on_too_stuck()

    def _unstick(self) -> None:
        self.stuck -= 1

    async def stop(self) -> None:
        """Stop accepting work; threads still running finish in the background."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _capture(call: Callable[[], Any]) -> tuple[bool, Any]:
    # Exceptions travel back as values so a job's error is never logged as the executor's.
    try:
        return True, call()
    except (Exception, SystemExit) as error:  # sys.exit() in a task ends the job, not the worker
        return False, error
