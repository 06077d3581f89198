"""Delays and ETAs on the memory broker (one process, so not in the system suite): an idle
in-process worker starts a delayed job within 100 ms of its time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import errands

SAMPLES = 12
ON_TIME = timedelta(milliseconds=100)


async def test_a_delayed_job_starts_within_100_ms_of_its_time_on_an_idle_worker() -> None:
    app = errands.App("memory://")
    app.portal.adopt(asyncio.get_running_loop())

    @app.task
    async def noop() -> None:
        """Nothing: only its start time is measured."""

    worker = app.worker()
    running = asyncio.ensure_future(worker.run())
    late: list[timedelta] = []
    try:
        for i in range(SAMPLES):
            eta = datetime.now(UTC) + timedelta(milliseconds=200 + (i * 83) % 300)
            handle = await noop.options(eta=eta).enqueue_async()
            await handle.result_async(timeout=10)
            job = await handle.refresh_async()
            assert job.started_at is not None
            late.append(job.started_at - eta)
    finally:
        worker.request_stop()
        await running
        await app.close_async()
    assert min(late) >= timedelta(0), f"a job started early: {min(late)}"
    assert max(late) <= ON_TIME, f"a delayed job started {max(late)} after its time"
