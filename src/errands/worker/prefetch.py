"""Prefetch: the jobs a worker holds beyond its concurrency for its process pool, and the gate
that lets no more than `concurrency` jobs run at once.

A child never waits for a claim and claims come in batches; but a held job cannot be run by
another worker, so only as many are held per child as it starts within WINDOW at the recent
pace (none for slow jobs), and a stopping worker releases those not started yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from errands.job import JobId
from errands.outcome import Outcome

#: Hold no more per child than it starts within this many seconds at the recent pace.
WINDOW: Final = 0.1


class Prefetch:
    """Up to `per_child` jobs per process-pool child beyond `concurrency`, paced."""

    def __init__(self, concurrency: int, per_child: int) -> None:
        self.concurrency, self.per_child = concurrency, per_child
        self.children = 0
        self._executing = asyncio.Semaphore(concurrency)
        self._waiting: set[JobId] = set()
        self._pace: float | None = None  # seconds per job, an exponential moving average

    def start(self, children: int) -> None:
        """A process pool of `children` started: prefetch for it."""
        self.children = children

    @property
    def capacity(self) -> int:
        """The most jobs the worker may hold."""
        return self.concurrency + self.children * self.per_child

    def headroom(self) -> int:
        """Jobs to hold beyond `concurrency` now: none until a job has been timed."""
        if not self.children or not self.per_child or self._pace is None:
            return 0
        return self.children * min(self.per_child, int(WINDOW / max(self._pace, 1e-6)))

    @property
    def waiting(self) -> list[JobId]:
        """Held jobs that have not started."""
        return list(self._waiting)

    async def run(self, job_id: JobId, job: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """Run `job` once one of the `concurrency` slots is free, timing it for the pace."""
        if self.capacity == self.concurrency:
            return await job()
        self._waiting.add(job_id)
        try:
            await self._executing.acquire()
        finally:
            self._waiting.discard(job_id)
        began = time.monotonic()
        try:
            return await job()
        finally:
            self._executing.release()
            took = time.monotonic() - began
            self._pace = took if self._pace is None else 0.8 * self._pace + 0.2 * took
