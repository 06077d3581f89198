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
        call = self._executor.submit(functools.partial(context.run, attempt, claimed, invocation))
        limit = invocation.timeout.total_seconds() if invocation.timeout else None
        try:
            if limit is None:  # the common case: no timer, no wait() bookkeeping
                outcome: Outcome = await call.future
                return outcome
            done, _ = await asyncio.wait({call.future}, timeout=limit)
        except asyncio.CancelledError:
            # Cancelled or shut down: the attempt is abandoned; `current_job().cancelled` tells
            # the function, whose thread counts as stuck until it returns.
            if not call.ended:
                self._count_stuck(call, claimed, "was stopped")
            raise
        if not done:
            self._count_stuck(call, claimed, "timed out")
            return timed_out(claimed, invocation, "time limit; its thread runs on")
        outcome = call.future.result()
        return outcome

    def _count_stuck(self, call: _Submitted, claimed: Claimed, why: str) -> None:
        self.stuck += 1
        call.on_end = self._unstick
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


class _Submitted:
    """One call given to a DaemonExecutor: the loop's future for its value, whether its thread
    is done with it (set on the loop, with `on_end` then called), even if the future was
    cancelled first."""

    __slots__ = ("ended", "fn", "future", "on_end")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        self.fn, self.future = fn, future
        self.ended = False
        self.on_end: Callable[[], None] | None = None


class DaemonExecutor:
    """Up to `max_workers` daemon threads, started on demand, fed from one queue.

    Results go back to `loop` in batches: a thread that finishes while a delivery is already on
    its way adds to it instead of waking the loop again, so a busy pool costs one wake-up per
    batch of jobs, not one per job.
    """

    def __init__(self, max_workers: int, loop: asyncio.AbstractEventLoop) -> None:
        self._max, self._loop = max_workers, loop
        self._jobs: queue.SimpleQueue[_Submitted | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._done: list[tuple[_Submitted, bool, Any]] = []
        self._delivering = False

    def submit(self, fn: Callable[[], Any]) -> _Submitted:
        """Run `fn` on a pool thread; the returned call's future (of the loop) carries its
        value or exception. Call from the loop's thread."""
        call = _Submitted(fn, self._loop.create_future())
        with self._lock:
            if self._idle == 0 and self._threads < self._max:
                self._threads += 1
                threading.Thread(target=self._serve, name="errands-job", daemon=True).start()
            elif self._idle > 0:
                self._idle -= 1
        self._jobs.put(call)
        return call

    def _serve(self) -> None:
        while (call := self._jobs.get()) is not None:
            if call.future.cancelled():  # a benign race: at worst a cancelled call still runs
                self._finished(call, False, None)
            else:
                try:
                    self._finished(call, True, call.fn())
                except BaseException as error:  # delivered to the awaiting job, never lost here
                    self._finished(call, False, error)
            with self._lock:
                self._idle += 1

    def _finished(self, call: _Submitted, ok: bool, value: Any) -> None:
        with self._lock:
            self._done.append((call, ok, value))
            if self._delivering:
                return
            self._delivering = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            done, self._done, self._delivering = self._done, [], False
        for call, ok, value in done:
            call.ended = True
            if call.on_end is not None:
                call.on_end()
            if call.future.done():
                continue  # its job was cancelled meanwhile
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)

    def shutdown(self) -> None:
        """Ask idle threads to end; busy ones end after their call (or with the process)."""
        with self._lock:
            threads, self._threads, self._idle = self._threads, 0, 0
        for _ in range(threads):
            self._jobs.put(None)
