"""Claim order: priority (high first), then scheduled_at, then id."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions
from errands.testing import FakeClock

from .conftest import LEASE, enqueue, spec


async def claim_order(broker: Broker, n: int) -> list[str]:
    """The ids of `n` jobs claimed one at a time, in claim order."""
    order = []
    for _ in range(n):
        claimed = await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w1"))
        assert len(claimed) == 1
        order.append(claimed[0].job.id)
    return order


async def test_higher_priority_jobs_are_claimed_first(broker: Broker) -> None:
    [low, high, middle] = await enqueue(
        broker, spec(priority=0), spec(priority=10), spec(priority=5)
    )
    assert await claim_order(broker, 3) == [high, middle, low]


async def test_negative_priority_runs_after_the_default(broker: Broker) -> None:
    [background, normal] = await enqueue(broker, spec(priority=-5), spec())
    assert await claim_order(broker, 2) == [normal, background]


async def test_one_claim_of_n_takes_the_n_highest_ranked_jobs(broker: Broker) -> None:
    job_ids = await enqueue(broker, *[spec(priority=p) for p in (1, 7, 3, 9, 5)])
    by_priority = dict(zip((1, 7, 3, 9, 5), job_ids, strict=True))
    claimed = await broker.claim(ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1"))
    assert [c.job.id for c in claimed] == [by_priority[9], by_priority[7]]


async def test_jobs_of_equal_priority_are_claimed_by_scheduled_at(
    broker: Broker, clock: FakeClock
) -> None:
    start = clock.now()
    # Enqueued first (lower id) but due later: scheduled_at decides before id does.
    [due_later, due_sooner] = await enqueue(
        broker,
        spec(scheduled_at=start + timedelta(seconds=20)),
        spec(scheduled_at=start + timedelta(seconds=10)),
    )
    clock.advance(timedelta(seconds=30))
    assert await claim_order(broker, 2) == [due_sooner, due_later]


async def test_jobs_of_equal_priority_and_scheduled_at_are_claimed_by_id(broker: Broker) -> None:
    specs = [spec() for _ in range(3)]  # ids made in this order sort in this order
    await enqueue(broker, specs[2], specs[0], specs[1])
    assert await claim_order(broker, 3) == [s.id for s in specs]


async def test_priority_outranks_an_earlier_scheduled_at(broker: Broker, clock: FakeClock) -> None:
    [old_low] = await enqueue(broker, spec(priority=1))
    clock.advance(timedelta(minutes=5))
    [new_high] = await enqueue(broker, spec(priority=2))
    assert await claim_order(broker, 2) == [new_high, old_low]
