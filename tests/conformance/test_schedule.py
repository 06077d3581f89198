"""Delays and ETAs: scheduled and retryable jobs wait for scheduled_at; promote moves due ones."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions
from errands.job import JobState
from errands.outcome import Retrying
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, error, spec, states_of


async def test_job_with_a_delay_is_not_claimed_before_it_is_due(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec(scheduled_at=clock.now() + timedelta(minutes=5)))
    clock.advance(timedelta(minutes=4, seconds=59))
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w1")) == []
    assert await states_of(broker, [job_id]) == [JobState.SCHEDULED]


async def test_job_with_an_eta_is_claimed_once_due_without_a_promote(
    broker: Broker, clock: FakeClock
) -> None:
    eta = clock.now() + timedelta(hours=2)
    [job_id] = await enqueue(broker, spec(scheduled_at=eta))
    clock.set(eta + timedelta(seconds=1))
    claimed = await claim_one(broker)
    assert (claimed.job.id, claimed.job.attempt) == (job_id, 1)


async def test_job_is_due_at_exactly_its_scheduled_at(broker: Broker, clock: FakeClock) -> None:
    eta = clock.now() + timedelta(minutes=1)
    [job_id] = await enqueue(broker, spec(scheduled_at=eta))
    clock.set(eta)
    assert await broker.promote(limit=100) == 1
    assert await states_of(broker, [job_id]) == [JobState.AVAILABLE]


async def test_promote_makes_due_scheduled_jobs_available_and_counts_them(
    broker: Broker, clock: FakeClock
) -> None:
    start = clock.now()
    job_ids = await enqueue(
        broker,
        spec(scheduled_at=start + timedelta(minutes=1)),
        spec(scheduled_at=start + timedelta(minutes=2), queue="mail"),
        spec(scheduled_at=start + timedelta(minutes=10)),
    )
    clock.advance(timedelta(minutes=5))
    assert await broker.promote(limit=100) == 2
    assert await states_of(broker, job_ids) == [
        JobState.AVAILABLE,
        JobState.AVAILABLE,
        JobState.SCHEDULED,
    ]


async def test_promote_makes_due_retryable_jobs_available(broker: Broker, clock: FakeClock) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    await broker.finish([Retrying(claimed.lease, error(), delay=timedelta(seconds=30))])
    assert await broker.promote(limit=100) == 0
    assert await states_of(broker, [job_id]) == [JobState.RETRYABLE]
    clock.advance(timedelta(seconds=30))
    assert await broker.promote(limit=100) == 1
    assert await states_of(broker, [job_id]) == [JobState.AVAILABLE]


async def test_promote_moves_at_most_limit_jobs(broker: Broker, clock: FakeClock) -> None:
    due = clock.now() + timedelta(seconds=1)
    job_ids = await enqueue(broker, *[spec(scheduled_at=due) for _ in range(5)])
    clock.advance(timedelta(seconds=2))
    assert await broker.promote(limit=3) == 3
    states = await states_of(broker, job_ids)
    assert (states.count(JobState.AVAILABLE), states.count(JobState.SCHEDULED)) == (3, 2)
    assert await broker.promote(limit=3) == 2


async def test_promote_moves_each_due_job_once(broker: Broker, clock: FakeClock) -> None:
    [job_id] = await enqueue(broker, spec(scheduled_at=clock.now() + timedelta(seconds=1)))
    clock.advance(timedelta(seconds=2))
    assert await broker.promote(limit=100) == 1
    assert await broker.promote(limit=100) == 0
    assert await states_of(broker, [job_id]) == [JobState.AVAILABLE]


async def test_promote_leaves_jobs_that_are_not_due(broker: Broker, clock: FakeClock) -> None:
    [job_id] = await enqueue(broker, spec(scheduled_at=clock.now() + timedelta(days=1)))
    clock.advance(timedelta(hours=23))
    assert await broker.promote(limit=100) == 0
    assert await states_of(broker, [job_id]) == [JobState.SCHEDULED]


async def test_promote_keeps_the_scheduled_at_that_orders_claims(
    broker: Broker, clock: FakeClock
) -> None:
    start = clock.now()
    [later, sooner] = await enqueue(
        broker,
        spec(scheduled_at=start + timedelta(minutes=2)),
        spec(scheduled_at=start + timedelta(minutes=1)),
    )
    clock.advance(timedelta(minutes=3))
    await broker.promote(limit=100)
    claimed = await broker.claim(ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1"))
    assert [c.job.id for c in claimed] == [sooner, later]
