"""Results and retention: results live until result_expires_at; prune clears them and deletes
old terminal jobs, never waiting or running ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from errands.brokers.contract import Broker, ClaimOptions
from errands.job import FailReason, JobState
from errands.outcome import Completed, Failed, Retrying
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, error, get_one, spec, states_of

LONG_AGO = timedelta(days=365)


async def complete(broker: Broker, result: bytes, **fields: Any) -> str:
    """Enqueue, claim and complete one job; returns its id."""
    [job_id] = await enqueue(broker, spec(**fields))
    claimed = await claim_one(broker)
    assert claimed.job.id == job_id
    assert await broker.finish([Completed(claimed.lease, result=result)]) == [True]
    return job_id


async def test_completed_job_keeps_any_result_bytes(broker: Broker) -> None:
    raw = bytes(range(256))
    job_id = await complete(broker, raw)
    assert (await get_one(broker, job_id)).result == raw


async def test_a_batch_of_completions_keeps_each_result_byte_for_byte(broker: Broker) -> None:
    results = [
        b'"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80"',  # UTF-8 beyond ASCII
        b'{"quote": "\\"", "back": "\\\\", "nul": "\\u0000", "tab": "\\t"}',  # escapes
        b"[1.0, 1e400, 12345678901234567890123]",  # numbers JSON alone cannot round
        b"null",
        b"",
    ]
    ids = await enqueue(broker, *[spec() for _ in results])
    claimed = await broker.claim(ClaimOptions(["default"], len(results), LEASE, "w1"))
    by_id = {c.job.id: c for c in claimed}

    applied = await broker.finish(
        [Completed(by_id[job_id].lease, result=r) for job_id, r in zip(ids, results, strict=True)]
    )

    assert applied == [True] * len(results)
    assert [(await get_one(broker, job_id)).result for job_id in ids] == results


async def test_result_expires_result_ttl_after_the_job_finished(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec(result_ttl=timedelta(minutes=10)))
    claimed = await claim_one(broker)
    clock.advance(timedelta(minutes=3))
    await broker.finish([Completed(claimed.lease, result=b"x")])
    job = await get_one(broker, job_id)
    assert job.finished_at == clock.now()
    assert job.result_expires_at == clock.now() + timedelta(minutes=10)


async def test_prune_clears_a_result_past_its_expiry_and_keeps_the_job(
    broker: Broker, clock: FakeClock
) -> None:
    job_id = await complete(broker, b"big", result_ttl=timedelta(hours=1))
    clock.advance(timedelta(hours=2))
    assert await broker.prune(finished_before=clock.now() - LONG_AGO, limit=100) == 0
    job = await get_one(broker, job_id)
    assert (job.state, job.result) == (JobState.COMPLETED, None)


async def test_prune_keeps_a_result_before_its_expiry(broker: Broker, clock: FakeClock) -> None:
    job_id = await complete(broker, b"fresh", result_ttl=timedelta(hours=1))
    clock.advance(timedelta(minutes=59))
    assert await broker.prune(finished_before=clock.now() - LONG_AGO, limit=100) == 0
    assert (await get_one(broker, job_id)).result == b"fresh"


async def test_prune_deletes_terminal_jobs_finished_before_the_cutoff(
    broker: Broker, clock: FakeClock
) -> None:
    done = await complete(broker, b"")
    [dead, gone] = await enqueue(broker, spec(), spec())
    claimed = await claim_one(broker)
    await broker.finish([Failed(claimed.lease, FailReason.ERROR, error())])
    await broker.cancel([gone], reason="requested")
    clock.advance(timedelta(hours=1))
    assert await broker.prune(finished_before=clock.now(), limit=100) == 3
    assert await broker.get([done, dead, gone]) == []


async def test_prune_keeps_terminal_jobs_finished_at_or_after_the_cutoff(
    broker: Broker, clock: FakeClock
) -> None:
    old = await complete(broker, b"")
    cutoff = clock.now()
    clock.advance(timedelta(minutes=1))
    new = await complete(broker, b"")
    assert await broker.prune(finished_before=cutoff, limit=100) == 0
    assert await states_of(broker, [old, new]) == [JobState.COMPLETED, JobState.COMPLETED]


async def test_prune_never_deletes_waiting_or_running_jobs(
    broker: Broker, clock: FakeClock
) -> None:
    later = clock.now() + timedelta(days=30)
    [running, retryable] = await enqueue(broker, spec(), spec())
    [first, second] = await broker.claim(
        ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1")
    )
    assert [first.job.id, second.job.id] == [running, retryable]
    await broker.finish([Retrying(second.lease, error(), delay=timedelta(days=30))])
    [available, scheduled] = await enqueue(broker, spec(), spec(scheduled_at=later))
    clock.advance(timedelta(days=2))
    assert await broker.prune(finished_before=clock.now() + timedelta(days=1), limit=100) == 0
    assert await states_of(broker, [running, retryable, available, scheduled]) == [
        JobState.RUNNING,
        JobState.RETRYABLE,
        JobState.AVAILABLE,
        JobState.SCHEDULED,
    ]


async def test_prune_deletes_at_most_limit_jobs(broker: Broker, clock: FakeClock) -> None:
    job_ids = [await complete(broker, b"") for _ in range(3)]
    clock.advance(timedelta(hours=1))
    assert await broker.prune(finished_before=clock.now(), limit=2) == 2
    assert len(await broker.get(job_ids)) == 1
    assert await broker.prune(finished_before=clock.now(), limit=2) == 1
    assert await broker.get(job_ids) == []
