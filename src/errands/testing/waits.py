"""Waits with deadlines: a job's state awaited through the broker, never slept for."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from errands.brokers.contract import Broker
from errands.job import Job, JobId, JobState


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
