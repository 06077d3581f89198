"""Idempotency keys: a known key returns the existing job, until that job's result expires."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, Enqueued
from errands.job import JobState
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import claim_one, enqueue, get_one, spec


async def stored_count(broker: Broker) -> int:
    counts = await broker.counts()
    return sum(counts.total(state) for state in JobState)


async def test_spec_with_the_key_of_a_waiting_job_returns_that_job_as_a_duplicate(
    broker: Broker,
) -> None:
    [original] = await enqueue(broker, spec(idempotency_key="order-7"))
    again = spec(idempotency_key="order-7")
    assert await broker.enqueue_many([again]) == [Enqueued(original, duplicate=True)]
    assert await broker.get([again.id]) == []
    assert await stored_count(broker) == 1


async def test_duplicate_keys_within_one_batch_store_one_job(broker: Broker) -> None:
    first, second, other = spec(idempotency_key="k"), spec(idempotency_key="k"), spec()
    enqueued = await broker.enqueue_many([first, second, other])
    assert enqueued == [
        Enqueued(first.id, duplicate=False),
        Enqueued(first.id, duplicate=True),
        Enqueued(other.id, duplicate=False),
    ]
    assert await stored_count(broker) == 2


async def test_key_of_a_running_job_is_still_a_duplicate(broker: Broker) -> None:
    [original] = await enqueue(broker, spec(idempotency_key="k"))
    await claim_one(broker)
    assert await broker.enqueue_many([spec(idempotency_key="k")]) == [
        Enqueued(original, duplicate=True)
    ]
    assert (await get_one(broker, original)).state == JobState.RUNNING


async def test_key_of_a_completed_job_is_a_duplicate_until_its_result_expires(
    broker: Broker, clock: FakeClock
) -> None:
    [original] = await enqueue(broker, spec(idempotency_key="k", result_ttl=timedelta(hours=1)))
    claimed = await claim_one(broker)
    await broker.finish([Completed(claimed.lease, result=b"1")])
    clock.advance(timedelta(minutes=59))
    assert await broker.enqueue_many([spec(idempotency_key="k")]) == [
        Enqueued(original, duplicate=True)
    ]
    clock.advance(timedelta(minutes=1, seconds=1))
    fresh = spec(idempotency_key="k")
    assert await broker.enqueue_many([fresh]) == [Enqueued(fresh.id, duplicate=False)]
    assert (await get_one(broker, fresh.id)).state == JobState.AVAILABLE


async def test_specs_without_a_key_are_never_duplicates(broker: Broker) -> None:
    specs = [spec(), spec()]
    assert await broker.enqueue_many(specs) == [Enqueued(s.id) for s in specs]
    assert await stored_count(broker) == 2


async def test_different_keys_make_different_jobs(broker: Broker) -> None:
    specs = [spec(idempotency_key="a"), spec(idempotency_key="b")]
    assert await broker.enqueue_many(specs) == [Enqueued(s.id) for s in specs]
    stored = await broker.get([s.id for s in specs])
    assert [job.idempotency_key for job in stored] == ["a", "b"]
