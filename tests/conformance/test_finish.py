"""finish: each Outcome names the next state, and only the current token may apply it."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions
from errands.job import CancelReason, ErrorKind, FailReason, JobState
from errands.lease import Lease
from errands.outcome import Cancelled, Completed, Crashed, Failed, Released, Retrying, Snoozed
from errands.policy import after_crash
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, error, get_one, spec


async def test_completed_job_keeps_its_result_until_its_result_ttl(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec(result_ttl=timedelta(hours=1)))
    claimed = await claim_one(broker)
    clock.advance(timedelta(seconds=7))
    assert await broker.finish([Completed(claimed.lease, result=b"42")]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.result) == (JobState.COMPLETED, b"42")
    assert job.finished_at == clock.now()
    assert job.result_expires_at == clock.now() + timedelta(hours=1)
    assert (job.failures, job.crashes, job.attempt) == (0, 0, 1)


async def test_retrying_counts_a_failure_and_waits_out_its_delay(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    failure = error(attempt=1, message="smtp down")
    outcome = Retrying(claimed.lease, failure, delay=timedelta(seconds=60))
    assert await broker.finish([outcome]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.failures, job.crashes) == (JobState.RETRYABLE, 1, 0)
    assert job.scheduled_at == clock.now() + timedelta(seconds=60)
    assert job.last_error is not None
    assert (job.last_error.kind, job.last_error.message) == (ErrorKind.EXCEPTION, "smtp down")
    clock.advance(timedelta(seconds=59))
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w1")) == []
    clock.advance(timedelta(seconds=1))
    again = await claim_one(broker)
    assert (again.job.id, again.job.attempt, again.job.failures) == (job_id, 2, 1)


async def test_each_retry_appends_its_error(broker: Broker, clock: FakeClock) -> None:
    [job_id] = await enqueue(broker, spec())
    for attempt in (1, 2):
        claimed = await claim_one(broker)
        await broker.finish(
            [Retrying(claimed.lease, error(attempt, message=f"try {attempt}"), timedelta(0))]
        )
    job = await get_one(broker, job_id)
    assert [(e.attempt, e.message) for e in job.errors] == [(1, "try 1"), (2, "try 2")]
    assert job.failures == 2


async def test_failed_dead_letters_the_job_with_its_reason_and_error(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    outcome = Failed(claimed.lease, FailReason.BAD_ARGUMENTS, error(message="missing arg"))
    assert await broker.finish([outcome]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.BAD_ARGUMENTS)
    assert job.finished_at == clock.now()
    assert job.failures == 1
    assert [e.message for e in job.errors] == ["missing arg"]
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w1")) == []


async def test_failed_without_an_error_counts_no_failure(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    assert await broker.finish([Failed(claimed.lease, FailReason.UNKNOWN_TASK)]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.UNKNOWN_TASK)
    assert (job.failures, job.errors) == (0, ())


async def test_crashed_counts_a_crash_and_makes_the_job_retryable(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec(max_crashes=3))
    claimed = await claim_one(broker)
    crash = error(kind=ErrorKind.SIGNAL, message="SIGKILL")
    assert await broker.finish([Crashed(claimed.lease, crash, delay=timedelta(seconds=5))]) == [
        True
    ]
    job = await get_one(broker, job_id)
    assert (job.state, job.crashes, job.failures) == (JobState.RETRYABLE, 1, 0)
    assert job.scheduled_at == clock.now() + timedelta(seconds=5)
    assert job.last_error is not None
    assert job.last_error.kind == ErrorKind.SIGNAL


async def test_a_crash_past_max_crashes_is_still_stored_as_a_retry(broker: Broker) -> None:
    # Brokers store the transition they are handed; the crash cap is the policy's decision.
    [job_id] = await enqueue(broker, spec(max_crashes=1))
    claimed = await claim_one(broker)
    assert await broker.finish([Crashed(claimed.lease, error(1, ErrorKind.EXIT))]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.crashes) == (JobState.RETRYABLE, 1)


async def test_the_policy_fails_a_job_whose_crash_reaches_max_crashes(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec(max_crashes=2))
    first = await claim_one(broker)
    await broker.finish([after_crash(first, error(1, ErrorKind.EXIT))])
    second = await claim_one(broker)
    outcome = after_crash(second, error(2, ErrorKind.EXIT))
    assert isinstance(outcome, Failed)
    assert await broker.finish([outcome]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.CRASHED)
    assert (job.crashes, job.failures, len(job.errors)) == (2, 0, 2)


async def test_cancelled_ends_the_job_with_its_reason(broker: Broker, clock: FakeClock) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    outcome = Cancelled(claimed.lease, CancelReason.PARENT_FAILED)
    assert await broker.finish([outcome]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.cancel_reason) == (JobState.CANCELLED, CancelReason.PARENT_FAILED)
    assert job.finished_at == clock.now()


async def test_released_job_is_available_again_and_charged_nothing(broker: Broker) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    assert await broker.finish([Released(claimed.lease)]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.failures, job.crashes, job.attempt) == (JobState.AVAILABLE, 0, 0, 1)
    assert (await claim_one(broker)).job.attempt == 2


async def test_snoozed_job_waits_its_delay_and_is_charged_nothing(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    assert await broker.finish([Snoozed(claimed.lease, delay=timedelta(minutes=5))]) == [True]
    job = await get_one(broker, job_id)
    assert (job.state, job.failures, job.crashes) == (JobState.SCHEDULED, 0, 0)
    assert job.scheduled_at == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=4))
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w1")) == []
    clock.advance(timedelta(minutes=1))
    assert (await claim_one(broker)).job.attempt == 2


async def test_finish_with_a_wrong_token_returns_false_and_changes_nothing(
    broker: Broker,
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    forged = Lease(job_id, claimed.lease.attempt, "forged-token", claimed.lease.expires_at)
    assert await broker.finish([Completed(forged, result=b"stolen")]) == [False]
    job = await get_one(broker, job_id)
    assert (job.state, job.result, job.worker_id) == (JobState.RUNNING, None, "w1")
    assert await broker.finish([Completed(claimed.lease, result=b"mine")]) == [True]


async def test_a_second_finish_of_the_same_lease_returns_false_and_changes_nothing(
    broker: Broker,
) -> None:
    [job_id] = await enqueue(broker, spec())
    claimed = await claim_one(broker)
    assert await broker.finish([Completed(claimed.lease, result=b"first")]) == [True]
    retry = Retrying(claimed.lease, error(), delay=timedelta(0))
    assert await broker.finish([retry]) == [False]
    job = await get_one(broker, job_id)
    assert (job.state, job.result, job.failures) == (JobState.COMPLETED, b"first", 0)


async def test_finish_of_an_unknown_job_returns_false(broker: Broker, clock: FakeClock) -> None:
    ghost = Lease(spec().id, 1, "token", clock.now() + LEASE)
    assert await broker.finish([Completed(ghost, result=b"")]) == [False]
    assert await broker.get([ghost.job_id]) == []


async def test_finish_answers_each_outcome_of_a_batch_in_order(broker: Broker) -> None:
    await enqueue(broker, spec(), spec())
    [done, released] = await broker.claim(
        ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1")
    )
    stale = Lease(done.job.id, 1, "stale", done.lease.expires_at)
    applied = await broker.finish(
        [
            Completed(stale, result=b""),
            Completed(done.lease, result=b"ok"),
            Released(released.lease),
        ]
    )
    assert applied == [False, True, True]
    jobs = await broker.get([done.job.id, released.job.id])
    assert [job.state for job in jobs] == [JobState.COMPLETED, JobState.AVAILABLE]


async def test_finish_of_an_empty_batch_returns_an_empty_list(broker: Broker) -> None:
    assert await broker.finish([]) == []
