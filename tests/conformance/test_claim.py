"""claim: which jobs a worker gets, how many, and the lease each one comes with."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions
from errands.job import JobState
from errands.outcome import Released
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, get_one, spec


async def test_claim_moves_a_job_to_running_under_a_fresh_lease(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    clock.advance(timedelta(seconds=5))
    claimed = await claim_one(broker, worker_id="w1")
    expires_at = clock.now() + LEASE
    assert claimed.job.id == job_id
    assert (claimed.job.state, claimed.job.attempt, claimed.job.worker_id) == (
        JobState.RUNNING,
        1,
        "w1",
    )
    assert (claimed.lease.job_id, claimed.lease.attempt) == (job_id, 1)
    assert claimed.lease.expires_at == expires_at
    assert claimed.lease.token
    stored = await get_one(broker, job_id)
    assert (stored.state, stored.attempt, stored.worker_id) == (JobState.RUNNING, 1, "w1")
    assert stored.lease_expires_at == expires_at
    assert stored.started_at == clock.now()


async def test_claim_returns_at_most_n_jobs(broker: Broker) -> None:
    await enqueue(broker, *[spec() for _ in range(5)])
    claimed = await broker.claim(ClaimOptions(["default"], n=3, lease=LEASE, worker_id="w1"))
    assert len(claimed) == 3
    counts = await broker.counts()
    assert counts.by_queue["default"][JobState.RUNNING] == 3
    assert counts.by_queue["default"][JobState.AVAILABLE] == 2


async def test_claim_returns_every_claimable_job_when_fewer_than_n(broker: Broker) -> None:
    job_ids = await enqueue(broker, spec(), spec())
    claimed = await broker.claim(ClaimOptions(["default"], n=10, lease=LEASE, worker_id="w1"))
    assert sorted(c.job.id for c in claimed) == sorted(job_ids)


async def test_claim_returns_nothing_when_no_job_is_claimable(broker: Broker) -> None:
    assert await broker.claim(ClaimOptions(["default"], n=10, lease=LEASE, worker_id="w1")) == []
    [job_id] = await enqueue(broker, spec())
    await claim_one(broker)
    assert await broker.claim(ClaimOptions(["default"], n=10, lease=LEASE, worker_id="w2")) == []
    assert (await get_one(broker, job_id)).worker_id == "w1"


async def test_claim_takes_jobs_only_from_the_queues_asked(broker: Broker) -> None:
    [mail, _report, sms] = await enqueue(
        broker, spec(queue="mail"), spec(queue="report"), spec(queue="sms")
    )
    claimed = await broker.claim(ClaimOptions(["mail", "sms"], n=10, lease=LEASE, worker_id="w1"))
    assert sorted(c.job.id for c in claimed) == sorted([mail, sms])
    counts = await broker.counts()
    assert counts.by_queue["report"][JobState.AVAILABLE] == 1


async def test_a_claimed_job_is_not_claimed_again_while_its_lease_holds(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, spec())
    first = await claim_one(broker, worker_id="w1")
    clock.advance(LEASE - timedelta(seconds=1))
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w2")) == []
    assert (await get_one(broker, first.job.id)).worker_id == "w1"


async def test_each_claimed_job_gets_its_own_token(broker: Broker) -> None:
    await enqueue(broker, *[spec() for _ in range(4)])
    claimed = await broker.claim(ClaimOptions(["default"], n=4, lease=LEASE, worker_id="w1"))
    tokens = [c.lease.token for c in claimed]
    assert len(tokens) == 4
    assert len(set(tokens)) == 4


async def test_a_second_claim_of_a_released_job_counts_a_new_attempt_with_a_new_token(
    broker: Broker,
) -> None:
    [job_id] = await enqueue(broker, spec())
    first = await claim_one(broker, worker_id="w1")
    assert await broker.finish([Released(first.lease)]) == [True]
    second = await claim_one(broker, worker_id="w2")
    assert second.job.id == job_id
    assert (second.job.attempt, second.lease.attempt) == (2, 2)
    assert second.lease.token != first.lease.token
    assert second.job.worker_id == "w2"


async def test_claim_of_zero_jobs_claims_nothing(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    assert await broker.claim(ClaimOptions(["default"], n=0, lease=LEASE, worker_id="w1")) == []
    assert (await get_one(broker, job_id)).state == JobState.AVAILABLE
