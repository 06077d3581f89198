"""Prefetch: held jobs are paced by how fast children start them, and gated to concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from errands.lease import Lease
from errands.outcome import Outcome, Released
from errands.worker.prefetch import WINDOW, Prefetch

LEASE = Lease("j", 1, "t", datetime(2030, 1, 1, tzinfo=UTC))


def job(seconds: float) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        await asyncio.sleep(seconds)
        return Released(LEASE)

    return run


async def test_no_headroom_without_a_process_pool_or_before_a_job_is_timed() -> None:
    prefetch = Prefetch(concurrency=2, per_child=4)
    assert (prefetch.capacity, prefetch.headroom()) == (2, 0)
    prefetch.start(children=2)
    assert (prefetch.capacity, prefetch.headroom()) == (10, 0)


async def test_quick_jobs_get_the_full_prefetch_and_slow_ones_none() -> None:
    quick, slow = Prefetch(2, 4), Prefetch(2, 4)
    quick.start(2)
    slow.start(2)

    await quick.run("a", job(0.001))
    await slow.run("b", job(WINDOW * 1.5))

    assert quick.headroom() == 2 * 4
    assert slow.headroom() == 0


async def test_never_more_than_concurrency_run_at_once_and_the_rest_wait() -> None:
    prefetch = Prefetch(concurrency=2, per_child=4)
    prefetch.start(2)
    running, most = 0, 0

    async def counted() -> Outcome:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return Released(LEASE)

    tasks = [asyncio.create_task(prefetch.run(f"j{i}", counted)) for i in range(6)]
    await asyncio.sleep(0)
    assert sorted(prefetch.waiting) == ["j2", "j3", "j4", "j5"]
    await asyncio.gather(*tasks)
    assert most == 2
    assert prefetch.waiting == []
