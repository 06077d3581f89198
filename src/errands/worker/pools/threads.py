"""The thread pool: plain functions for blocking I/O, fed from the worker's loop.

A Python thread cannot be killed. At its time limit a job is failed with kind `timeout` (and
retried by policy) while its thread runs on, counted as stuck; past `max_stuck` the worker is
told to drain and restart so stuck threads cannot starve it. A cancelled job's attempt is
abandoned the same way: stored as cancelled at once, its thread stuck until the function
returns (it can check `errands.current_job().cancelled`). Threads are daemons: the stdlib
executor joins its threads at exit, so one stuck job would hold a stopping worker forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from errands.brokers.contract import Claimed
from errands.outcome import Outcome
from errands.worker.execution import Invocation, attempt, timed_out

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
        self._executor: DaemonExecutor | None = None

    async def start(self) -> None:
        """Create the executor (threads start on demand)."""
        if self._executor is None:
            self._executor = DaemonExecutor(self.size + self.max_stuck, asyncio.get_running_loop())

    async def run(self, claimed: Claimed, invocation: Invocation) -> Outcome:
        """Run the function in a thread; at its timeout, fail the attempt and count the thread."""
        await self.start()
        assert self._executor is not None
        # In a copy of the worker's context, as an asyncio task would be: what the worker made
        # current for this attempt (tracing's span) is current in the thread too. A copy costs
        # well under a microsecond, and current_job() is set inside it, so jobs never share one.
        context = contextvars.copy_context()
        future: asyncio.Future[Outcome] = self._executor.submit(
            functools.partial(context.run, attempt, claimed, invocation)
        )
        limit = invocation.timeout.total_seconds() if invocation.timeout else None
        try:
            done, _ = await asyncio.wait({future}, timeout=limit)
        except asyncio.CancelledError:
            # Cancelled or shut down: the attempt is abandoned; `current_job().cancelled` tells
            # the function, whose thread counts as stuck until it returns.
            if not future.done():
                self._count_stuck(future, claimed, "was stopped")
            raise
        if not done:
            self._count_stuck(future, claimed, "timed out")
            return timed_out(claimed, invocation, "time limit; its thread runs on")
        return future.result()

    def _count_stuck(self, future: asyncio.Future[Any], claimed: Claimed, why: str) -> None:
        self.stuck += 1
        future.add_done_callback(lambda _: self._unstick())
        log.warning(
            "job %s %s; its thread is stuck (%d stuck of %d allowed)",
            claimed.job.id,
            why,
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
            self._executor.shutdown()
            self._executor = None


class DaemonExecutor:
    """Up to `max_workers` daemon threads, started on demand, fed from one queue.

    Results go back to `loop` in batches: a thread that finishes while a delivery is already on
    its way adds to it instead of waking the loop again, so a busy pool costs one wake-up per
    batch of jobs, not one per job.
    """

    def __init__(self, max_workers: int, loop: asyncio.AbstractEventLoop) -> None:
        self._max, self._loop = max_workers, loop
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._done: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self._delivering = False

    def submit(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run `call` on a pool thread; the returned future (of the loop) carries its value or
        exception. Call from the loop's thread."""
        future = self._loop.create_future()
        with self._lock:
            if self._idle == 0 and self._threads < self._max:
                self._threads += 1
                threading.Thread(target=self._serve, name="errands-job", daemon=True).start()
            elif self._idle > 0:
                self._idle -= 1
        self._jobs.put((call, future))
        return future

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            call, future = item
            if not future.cancelled():  # a benign race: at worst a cancelled call still runs
                try:
                    self._finished(future, True, call())
                except BaseException as error:  # delivered to the awaiting job, never lost here
                    self._finished(future, False, error)
            with self._lock:
                self._idle += 1

    def _finished(self, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        with self._lock:
            self._done.append((future, ok, value))
            if self._delivering:
                return
            self._delivering = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            done, self._done, self._delivering = self._done, [], False
        for future, ok, value in done:
            if future.done():
                continue  # its job was cancelled meanwhile
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def shutdown(self) -> None:
        """Ask idle threads to end; busy ones end after their call (or with the process)."""
        with self._lock:
            threads, self._threads, self._idle = self._threads, 0, 0
        for _ in range(threads):
            self._jobs.put(None)
