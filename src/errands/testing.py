"""Test helpers for errands and for users' own tests: a FakeClock and waits with deadlines.

Tests advance the clock and await states; they never sleep and hope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from errands.brokers.contract import Broker
from errands.job import Job, JobId, JobState


class FakeClock:
    """A clock that moves only when told; `sleep` returns once the clock has been advanced.

    An App given a FakeClock hands it to the broker it builds too (`drives_brokers`), so one
    clock drives leases, schedules and expiry in a test.
    """

    drives_brokers = True

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._moved = asyncio.Condition() if _has_loop() else None

    def now(self) -> datetime:
        """The fake instant."""
        return self._now

    def monotonic(self) -> float:
        """Fake monotonic seconds, moved together with `now`."""
        return self._mono

    def advance(self, delta: timedelta) -> None:
        """Move time forward by `delta`."""
        if delta < timedelta(0):
            raise ValueError(f"a clock only moves forward, got {delta}")
        self._now += delta
        self._mono += delta.total_seconds()

    def set(self, instant: datetime) -> None:
        """Jump to `instant` (not earlier than now)."""
        self.advance(instant - self._now)

    async def sleep(self, delay: timedelta) -> None:
        """Yield to the loop once: fake time passes only through `advance`."""
        await asyncio.sleep(0)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def wait_for_state(
    broker: Broker,
    job_id: JobId,
    states: JobState | Sequence[JobState],
    *,
    within: timedelta = timedelta(seconds=10),
) -> Job:
    """Return the job once it is in one of `states`; TimeoutError naming the job otherwise."""
    wanted = {states} if isinstance(states, JobState) else set(states)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    while True:
        jobs = await broker.get([job_id])
        if jobs and jobs[0].state in wanted:
            return jobs[0]
        left = deadline - loop.time()
        if left <= 0:
            seen = jobs[0].state if jobs else "missing"
            raise TimeoutError(f"job {job_id} not in {sorted(wanted)} within {within} (is {seen})")
        if wanted <= {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}:
            await broker.wait_done([job_id], timedelta(seconds=min(left, 0.5)))
        else:
            await asyncio.sleep(min(left, 0.01))
