"""Operator actions: cancel, requeue, purge, pause and resume."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions
from errands.job import CancelReason, FailReason, JobState
from errands.outcome import Cancelled, Completed, Failed, Retrying
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, error, get_one, heartbeat, spec, states_of


async def test_cancel_ends_waiting_jobs_at_once(broker: Broker, clock: FakeClock) -> None:
    later = clock.now() + timedelta(hours=1)
    [retryable, available, scheduled] = await enqueue(
        broker, spec(), spec(), spec(scheduled_at=later)
    )
    claimed = await claim_one(broker)
    await broker.finish([Retrying(claimed.lease, error(), delay=timedelta(hours=1))])
    clock.advance(timedelta(seconds=5))
    jobs = await broker.cancel([available, scheduled, retryable], reason="requested")
    assert [job.id for job in jobs] == [available, scheduled, retryable]
    assert {(job.state, job.cancel_reason) for job in jobs} == {
        (JobState.CANCELLED, CancelReason.REQUESTED)
    }
    assert {job.finished_at for job in jobs} == {clock.now()}
    clock.advance(timedelta(hours=2))
    assert await broker.claim(ClaimOptions(["default"], n=10, lease=LEASE, worker_id="w1")) == []


async def test_cancel_stores_the_reason_given(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    await broker.cancel([job_id], reason=CancelReason.PARENT_FAILED)
    assert (await get_one(broker, job_id)).cancel_reason == CancelReason.PARENT_FAILED


async def test_cancel_of_a_running_job_is_a_request_the_worker_carries_out(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    [after] = await broker.cancel([job_id], reason="requested")
    assert (after.state, after.cancel_requested) == (JobState.RUNNING, True)
    extended = await broker.extend([claimed.lease], LEASE, heartbeat=heartbeat(clock), progress={})
    assert extended.cancel_requested == [job_id]
    assert await broker.finish([Cancelled(claimed.lease)]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.cancel_reason) == (JobState.CANCELLED, CancelReason.REQUESTED)


async def test_cancel_leaves_a_finished_job_unchanged(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    await broker.finish([Completed(claimed.lease, result=b"kept")])
    [after] = await broker.cancel([job_id], reason="requested")
    assert (after.state, after.result, after.cancel_reason) == (JobState.COMPLETED, b"kept", None)
    assert (await get_one(broker, job_id)).state == JobState.COMPLETED


async def test_requeue_runs_a_failed_job_again_with_fresh_budgets(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec(max_crashes=3))
    first = await claim_one(broker)
    await broker.finish([Retrying(first.lease, error(1), delay=timedelta(0))])
    second = await claim_one(broker)
    await broker.finish([Failed(second.lease, FailReason.ERROR, error(2))])
    assert (await get_one(broker, job_id)).failures == 2
    [after] = await broker.requeue([job_id])
    assert (after.state, after.failures, after.crashes) == (JobState.AVAILABLE, 0, 0)
    assert after.attempt == 2  # attempt counts claims and never goes down
    third = await claim_one(broker)
    assert (third.job.id, third.job.attempt) == (job_id, 3)


async def test_requeue_runs_a_cancelled_job_again(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    await broker.cancel([job_id], reason="requested")
    [after] = await broker.requeue([job_id])
    assert after.state == JobState.AVAILABLE
    assert (await claim_one(broker)).job.id == job_id


async def test_requeue_leaves_jobs_in_other_states_unchanged(broker: Broker) -> None:
    [completed, running, available] = await enqueue(broker, spec(), spec(), spec())
    [done, _] = await broker.claim(ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1"))
    await broker.finish([Completed(done.lease, result=b"r")])
    jobs = await broker.requeue([completed, running, available])
    assert [job.state for job in jobs] == [JobState.COMPLETED, JobState.RUNNING, JobState.AVAILABLE]
    assert (await get_one(broker, completed)).result == b"r"
    assert (await get_one(broker, running)).attempt == 1


async def test_purge_deletes_the_jobs_of_one_queue_in_the_given_states(
    broker: Broker, clock: FakeClock
) -> None:
    later = clock.now() + timedelta(hours=1)
    [a1, a2, scheduled, other] = await enqueue(
        broker,
        spec(queue="a"),
        spec(queue="a"),
        spec(queue="a", scheduled_at=later),
        spec(queue="b"),
    )
    assert await broker.purge("a", [JobState.AVAILABLE]) == 2
    assert await states_of(broker, [a1, a2, scheduled, other]) == [
        "missing",
        "missing",
        JobState.SCHEDULED,
        JobState.AVAILABLE,
    ]


async def test_purge_never_deletes_a_running_job(broker: Broker) -> None:
    [running, waiting] = await enqueue(broker, spec(), spec())
    claimed = await claim_one(broker)
    assert claimed.job.id == running
    assert await broker.purge("default", list(JobState)) == 1
    assert await states_of(broker, [running, waiting]) == [JobState.RUNNING, "missing"]
    assert await broker.finish([Completed(claimed.lease, result=b"")]) == [True]


async def test_claim_skips_a_paused_queue(broker: Broker) -> None:
    [_, sms] = await enqueue(broker, spec(queue="mail"), spec(queue="sms"))
    await broker.pause(["mail"])
    claimed = await broker.claim(ClaimOptions(["mail", "sms"], n=10, lease=LEASE, worker_id="w1"))
    assert [c.job.id for c in claimed] == [sms]
    assert (await broker.counts()).paused == frozenset({"mail"})


async def test_a_paused_queue_still_takes_enqueues(broker: Broker) -> None:
    await broker.pause(["mail"])
    [job_id] = await enqueue(broker, spec(queue="mail"))
    assert (await get_one(broker, job_id)).state == JobState.AVAILABLE
    assert await broker.claim(ClaimOptions(["mail"], n=1, lease=LEASE, worker_id="w1")) == []


async def test_a_resumed_queue_is_claimed_again(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec(queue="mail"))
    await broker.pause(["mail"])
    assert await broker.claim(ClaimOptions(["mail"], n=1, lease=LEASE, worker_id="w1")) == []
    await broker.resume(["mail"])
    assert (await claim_one(broker, "mail")).job.id == job_id
    assert (await broker.counts()).paused == frozenset()
