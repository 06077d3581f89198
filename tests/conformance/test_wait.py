"""wait_ready and wait_done: they return on the event, or at their timeout.

The timeouts are real time (as in the memory broker), so each wait here is bounded by
asyncio.wait_for with a generous deadline: a broker that misses the event fails, it never hangs.
Nothing here asserts how fast a wait returned.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from errands.brokers.contract import Broker, ClaimOptions
from errands.job import JobState
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, make_broker, spec

BOUND = 10.0  # real seconds a wait woken by an event must beat; generous for slow machines
LONG = timedelta(minutes=5)  # a wait timeout no test may reach
SHORT = timedelta(milliseconds=50)  # a wait timeout tests do reach


async def let_waiters_block() -> None:
    """Yield to the loop a few times so a waiter task reaches its wait."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_wait_ready_returns_once_a_job_is_enqueued(broker: Broker) -> None:
    waiter = asyncio.create_task(broker.wait_ready(["default"], LONG))
    await let_waiters_block()
    assert not waiter.done()
    producer = asyncio.create_task(enqueue(broker, spec()))
    await asyncio.wait_for(asyncio.gather(waiter, producer), BOUND)
    assert (
        len(await broker.claim(ClaimOptions(["default"], n=10, lease=LEASE, worker_id="w1"))) == 1
    )


async def test_wait_ready_returns_at_once_when_a_job_is_already_claimable(broker: Broker) -> None:
    await enqueue(broker, spec())
    await asyncio.wait_for(broker.wait_ready(["default"], LONG), BOUND)


async def test_wait_ready_returns_at_its_timeout_when_no_job_comes(broker: Broker) -> None:
    await asyncio.wait_for(broker.wait_ready(["default"], SHORT), BOUND)
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w1")) == []


async def test_a_cancelled_wait_ready_ends_instead_of_running_to_its_timeout(
    broker: Broker,
) -> None:
    # A worker cancels its wait for work whenever a slot frees or a stop comes. A cancel that
    # met a completed step inside the wait (Python 3.11's wait_for, docs/decisions.md 58) was
    # lost, and the wait ran on to its timeout: a stop started its grace a second late.
    rng = random.Random(58)
    for _ in range(200):
        waiter = asyncio.create_task(broker.wait_ready(["default"], LONG))
        await asyncio.sleep(rng.uniform(0, 0.003))  # so the cancel lands at every step
        waiter.cancel()
        done, _ = await asyncio.wait({waiter}, timeout=BOUND)
        assert done, "a cancelled wait_ready went on waiting"


async def test_wait_done_returns_the_jobs_once_all_are_finished(broker: Broker) -> None:
    [first, second] = await enqueue(broker, spec(), spec())
    [a, b] = await broker.claim(ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1"))
    waiter = asyncio.create_task(broker.wait_done([second, first], LONG))
    await let_waiters_block()
    await broker.finish([Completed(a.lease, result=b"a")])
    await let_waiters_block()
    assert not waiter.done()  # one of two is not enough
    finisher = asyncio.create_task(broker.finish([Completed(b.lease, result=b"b")]))
    jobs, _ = await asyncio.wait_for(asyncio.gather(waiter, finisher), BOUND)
    assert [(job.id, job.state, job.result) for job in jobs] == [
        (second, JobState.COMPLETED, b"b"),
        (first, JobState.COMPLETED, b"a"),
    ]


async def test_wait_done_returns_once_a_waiting_job_is_cancelled(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    waiter = asyncio.create_task(broker.wait_done([job_id], LONG))
    await let_waiters_block()
    assert not waiter.done()
    canceller = asyncio.create_task(broker.cancel([job_id], reason="requested"))
    [jobs], _ = await asyncio.wait_for(asyncio.gather(waiter, canceller), BOUND)
    assert jobs.state == JobState.CANCELLED


async def test_wait_done_returns_at_once_when_all_are_already_finished(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    await broker.finish([Completed(claimed.lease, result=b"r")])
    jobs = await asyncio.wait_for(broker.wait_done([job_id], LONG), BOUND)
    assert [(job.id, job.state) for job in jobs] == [(job_id, JobState.COMPLETED)]


async def test_wait_done_returns_the_jobs_as_they_are_at_its_timeout(broker: Broker) -> None:
    [running, waiting] = await enqueue(broker, spec(), spec())
    await claim_one(broker)
    jobs = await asyncio.wait_for(broker.wait_done([running, waiting], SHORT), BOUND)
    assert [(job.id, job.state) for job in jobs] == [
        (running, JobState.RUNNING),
        (waiting, JobState.AVAILABLE),
    ]


async def test_wait_done_leaves_out_unknown_ids(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    await broker.cancel([job_id], reason="requested")
    unknown = spec().id
    jobs = await asyncio.wait_for(broker.wait_done([unknown, job_id], LONG), BOUND)
    assert [job.id for job in jobs] == [job_id]


@asynccontextmanager
async def second_broker(
    broker: Broker, kind: str, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Broker]:
    """Another broker object on the storage of `broker`, as another process would open it."""
    other = make_broker(kind, clock, tmp_path)
    await other.open()
    try:
        yield other
    finally:
        await other.close()


@pytest.mark.needs("cross_process")
async def test_wait_ready_wakes_for_a_job_enqueued_through_another_broker_object(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    async with second_broker(broker, broker_kind, clock, tmp_path) as producer:
        waiter = asyncio.create_task(broker.wait_ready(["default"], LONG))
        await let_waiters_block()
        assert not waiter.done()
        enqueuing = asyncio.create_task(enqueue(producer, spec()))
        await asyncio.wait_for(asyncio.gather(waiter, enqueuing), BOUND)
        assert (
            len(await broker.claim(ClaimOptions(["default"], n=10, lease=LEASE, worker_id="w1")))
            == 1
        )


@pytest.mark.needs("cross_process")
async def test_wait_done_wakes_for_a_job_finished_through_another_broker_object(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    async with second_broker(broker, broker_kind, clock, tmp_path) as worker:
        [job_id] = await enqueue(broker, spec())
        claimed = await claim_one(worker)
        waiter = asyncio.create_task(broker.wait_done([job_id], LONG))
        await let_waiters_block()
        assert not waiter.done()
        finishing = asyncio.create_task(worker.finish([Completed(claimed.lease, result=b"r")]))
        [job], _ = await asyncio.wait_for(asyncio.gather(waiter, finishing), BOUND)
        assert (job.state, job.result) == (JobState.COMPLETED, b"r")
