"""A worker started with a scheduler (`errands worker --scheduler`) enqueues the periodic jobs
and runs them, and stops its scheduler when it stops."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import errands
from errands.brokers.contract import JobQuery
from errands.job import JobState


async def test_a_worker_with_a_scheduler_runs_each_slot_of_a_schedule() -> None:
    app = errands.App("memory://")
    app.portal.adopt(asyncio.get_running_loop())
    slots: list[str] = []
    two_ran = asyncio.Event()

    @app.periodic(every=timedelta(seconds=1), name="beat")
    @app.task
    async def beat() -> None:
        slot = errands.current_job().slot
        assert slot is not None
        slots.append(slot.isoformat())
        if len(slots) == 2:
            two_ran.set()

    worker = app.worker(scheduler=True)
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(two_ran.wait(), timeout=10)
    finally:
        worker.request_stop()
        await running
    assert worker.scheduler is not None
    assert worker.scheduler.fired >= 2
    assert len(set(slots)) == len(slots), "a slot ran twice"
    jobs = (await app.broker.list_jobs(JobQuery(states=(JobState.COMPLETED,)))).jobs
    assert {job.task for job in jobs} == {beat.name}
    await app.close_async()
