"""rescue: reclaim takes over lapsed leases and the policy settles them: jobs run again, die at
max_crashes, or end if a cancel waited; the owner that lost the lease is fenced off."""

from __future__ import annotations

from datetime import timedelta

from errands import policy
from errands.brokers.contract import Broker, ClaimOptions
from errands.job import CancelReason, ErrorKind, FailReason, JobState, Progress
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, get_one, heartbeat, rescue, spec

PAST_LEASE = LEASE + timedelta(seconds=1)


async def test_rescue_makes_a_job_with_an_expired_lease_retryable_and_counts_a_crash(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec(max_crashes=3))
    await claim_one(broker)
    clock.advance(PAST_LEASE)
    report = await rescue(broker, clock, limit=100)
    assert (report.retried, report.failed, report.cancelled) == ([job_id], [], [])
    job = await get_one(broker, job_id)
    assert (job.state, job.crashes, job.failures, job.attempt) == (JobState.RETRYABLE, 1, 0, 1)
    assert job.last_error is not None
    assert (job.last_error.kind, job.last_error.attempt) == (ErrorKind.LEASE_EXPIRED, 1)


async def test_rescued_job_is_claimable_again_at_once(broker: Broker, clock: FakeClock) -> None:
    [job_id] = await enqueue(broker, spec())
    await claim_one(broker, worker_id="w1")
    clock.advance(PAST_LEASE)
    await rescue(broker, clock, limit=100)
    again = await claim_one(broker, worker_id="w2")
    assert (again.job.id, again.job.attempt, again.job.worker_id) == (job_id, 2, "w2")


async def test_rescue_leaves_a_lease_that_has_not_expired(broker: Broker, clock: FakeClock) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    clock.advance(LEASE - timedelta(seconds=1))
    assert (await rescue(broker, clock, limit=100)).total == 0
    job = await get_one(broker, job_id)
    assert (job.state, job.crashes) == (JobState.RUNNING, 0)
    assert await broker.finish([Completed(claimed.lease, result=b"")]) == [True]


async def test_a_lease_kept_alive_by_extend_is_never_rescued(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    for _ in range(10):  # ten leases long in all
        clock.advance(LEASE / 3)
        await broker.extend([claimed.lease], LEASE, heartbeat=heartbeat(clock), progress={})
        clock.advance(LEASE / 3)
        await broker.extend([claimed.lease], LEASE, heartbeat=heartbeat(clock), progress={})
        clock.advance(LEASE / 3)
        await broker.extend([claimed.lease], LEASE, heartbeat=heartbeat(clock), progress={})
        assert (await rescue(broker, clock, limit=100)).total == 0
    job = await get_one(broker, job_id)
    assert (job.state, job.attempt, job.crashes) == (JobState.RUNNING, 1, 0)


async def test_rescue_leaves_jobs_that_are_not_running(broker: Broker, clock: FakeClock) -> None:
    later = clock.now() + timedelta(hours=1)
    job_ids = await enqueue(broker, spec(), spec(scheduled_at=later))
    clock.advance(timedelta(minutes=10))
    assert (await rescue(broker, clock, limit=100)).total == 0
    jobs = await broker.get(job_ids)
    assert [(job.state, job.crashes) for job in jobs] == [
        (JobState.AVAILABLE, 0),
        (JobState.SCHEDULED, 0),
    ]


async def test_rescue_fails_a_job_whose_crashes_reach_max_crashes(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec(max_crashes=2))
    await claim_one(broker)
    clock.advance(PAST_LEASE)
    assert (await rescue(broker, clock, limit=100)).retried == [job_id]
    await claim_one(broker)
    clock.advance(PAST_LEASE)
    report = await rescue(broker, clock, limit=100)
    assert (report.retried, report.failed, report.cancelled) == ([], [job_id], [])
    job = await get_one(broker, job_id)
    assert (job.state, job.fail_reason, job.crashes) == (JobState.FAILED, FailReason.CRASHED, 2)
    assert [e.kind for e in job.errors] == [ErrorKind.LEASE_EXPIRED, ErrorKind.LEASE_EXPIRED]
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w1")) == []


async def test_rescue_cancels_a_job_whose_cancel_was_pending(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    await claim_one(broker)
    await broker.cancel([job_id], reason="requested")
    clock.advance(PAST_LEASE)
    report = await rescue(broker, clock, limit=100)
    assert (report.retried, report.failed, report.cancelled) == ([], [], [job_id])
    job = await get_one(broker, job_id)
    assert (job.state, job.cancel_reason) == (JobState.CANCELLED, CancelReason.REQUESTED)
    assert job.finished_at == clock.now()


async def test_rescue_moves_at_most_limit_jobs_per_pass(broker: Broker, clock: FakeClock) -> None:
    job_ids = await enqueue(broker, spec(), spec(), spec())
    await broker.claim(ClaimOptions(["default"], n=3, lease=LEASE, worker_id="w1"))
    clock.advance(PAST_LEASE)
    first = await rescue(broker, clock, limit=2)
    second = await rescue(broker, clock, limit=2)
    assert (first.total, second.total) == (2, 1)
    assert sorted(first.retried + second.retried) == sorted(job_ids)


async def test_finish_by_a_rescued_owner_changes_nothing(broker: Broker, clock: FakeClock) -> None:
    await enqueue(broker, spec())
    first = await claim_one(broker, worker_id="w1")
    clock.advance(PAST_LEASE)
    await rescue(broker, clock, limit=100)
    clock.advance(timedelta(hours=1))  # past any retry backoff
    await broker.promote(limit=100)
    second = await claim_one(broker, worker_id="w2")
    assert await broker.finish([Completed(first.lease, result=b"late")]) == [False]
    job = await get_one(broker, second.job.id)
    assert (job.state, job.attempt, job.worker_id, job.result) == (JobState.RUNNING, 2, "w2", None)
    assert await broker.finish([Completed(second.lease, result=b"ok")]) == [True]


async def test_finish_by_a_rescued_owner_before_anyone_reclaims_changes_nothing(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    clock.advance(PAST_LEASE)
    await rescue(broker, clock, limit=100)
    assert await broker.finish([Completed(claimed.lease, result=b"late")]) == [False]
    job = await get_one(broker, job_id)
    assert (job.state, job.result, job.crashes) == (JobState.RETRYABLE, None, 1)


async def test_extend_by_a_rescued_owner_is_left_out_and_stores_no_progress(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    clock.advance(PAST_LEASE)
    await rescue(broker, clock, limit=100)
    extended = await broker.extend(
        [claimed.lease],
        LEASE,
        heartbeat=heartbeat(clock),
        progress={job_id: Progress(0.9, "almost")},
    )
    assert extended.leases == []
    job = await get_one(broker, job_id)
    assert (job.state, job.progress) == (JobState.RETRYABLE, None)


async def test_a_rescued_job_runs_before_jobs_that_arrived_after_it(
    broker: Broker, clock: FakeClock
) -> None:
    [rescued] = await enqueue(broker, spec())
    await claim_one(broker, worker_id="w1")
    clock.advance(timedelta(seconds=1))
    backlog = await enqueue(broker, *[spec() for _ in range(5)])
    clock.advance(LEASE)
    await rescue(broker, clock, limit=100)
    [first] = await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w2"))
    assert first.job.id == rescued  # not queued behind the backlog: G3 holds under load
    assert first.job.id not in backlog


async def test_reclaim_takes_the_lease_over_with_a_fresh_token_and_keeps_the_attempt(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker, worker_id="w1")
    clock.advance(PAST_LEASE)
    [taken] = await broker.reclaim(limit=10, lease=LEASE)
    assert taken.job.id == job_id
    assert (taken.job.state, taken.job.attempt, taken.job.worker_id) == (JobState.RUNNING, 1, "w1")
    assert taken.lease.token != claimed.lease.token
    assert taken.lease.expires_at == clock.now() + LEASE
    old = await broker.extend([claimed.lease], LEASE, heartbeat=heartbeat(clock), progress={})
    assert old.leases == []  # the worker that lost it is fenced off at once
    assert await broker.reclaim(limit=10, lease=LEASE) == []  # held again until it expires


async def test_a_reclaimed_job_whose_rescuer_died_is_reclaimed_again(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    await claim_one(broker)
    clock.advance(PAST_LEASE)
    [first] = await broker.reclaim(limit=10, lease=LEASE)
    clock.advance(PAST_LEASE)  # the rescuer never settled it
    [second] = await broker.reclaim(limit=10, lease=LEASE)
    assert second.job.id == job_id
    assert await broker.finish([Completed(first.lease, result=b"")]) == [False]
    report = await rescue(broker, clock, limit=10)
    assert report.total == 0  # held by the second rescuer, not expired
    job = await get_one(broker, job_id)
    assert (job.state, job.crashes, job.attempt) == (JobState.RUNNING, 0, 1)


async def test_reclaim_takes_the_jobs_of_a_gone_worker_before_their_lease_expires(
    broker: Broker, clock: FakeClock
) -> None:
    [dead_job, live_job] = await enqueue(broker, spec(), spec())
    await claim_one(broker, worker_id="dead")
    await claim_one(broker, worker_id="alive")
    report = await policy.rescue(
        broker, limit=10, lease=LEASE, now=clock.now(), workers_gone=("dead",)
    )
    assert (report.retried, report.failed, report.cancelled) == ([dead_job], [], [])
    dead, live = await broker.get([dead_job, live_job])
    assert (dead.state, dead.crashes) == (JobState.RETRYABLE, 1)
    assert dead.last_error is not None
    assert dead.last_error.type == "WorkerGone"
    assert (live.state, live.worker_id) == (JobState.RUNNING, "alive")
