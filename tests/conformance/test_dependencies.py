"""Dependencies at the broker: a spec with `depends_on` is stored `pending` and released, or
cancelled by its policy, in the very write that ends its last dependency (Broker.enqueue_many,
brokers/dependencies.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from errands.brokers.contract import Broker, ClaimOptions, JobQuery
from errands.job import CancelReason, FailReason, JobSpec, JobState
from errands.outcome import Cancelled, Completed, Failed
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, error, get_one, make_broker, spec, states_of

pytestmark = pytest.mark.needs("workflows")


def after(*parents: JobSpec, **fields: object) -> JobSpec:
    """A spec in queue "next" that waits for `parents`."""
    return spec(queue="next", depends_on=tuple(p.id for p in parents), **fields)  # type: ignore[arg-type]


async def complete(broker: Broker, queue: str = "default") -> None:
    claimed = await claim_one(broker, queue)
    assert await broker.finish([Completed(claimed.lease, result=b"1")]) == [True]


async def test_a_dependent_is_released_by_the_write_that_ends_its_last_dependency(
    broker: Broker,
) -> None:
    members = [spec() for _ in range(3)]
    callback = after(*members)
    await enqueue(broker, *members, callback)
    assert await states_of(broker, [callback.id]) == ["pending"]
    for _ in range(2):
        await complete(broker)
        assert await states_of(broker, [callback.id]) == ["pending"]
        assert await broker.claim(ClaimOptions(["next"], n=5, lease=LEASE, worker_id="w")) == []
    await complete(broker)
    assert await states_of(broker, [callback.id]) == ["available"]
    assert (await claim_one(broker, "next")).job.id == callback.id


async def test_a_dependent_due_later_is_released_as_scheduled(
    broker: Broker, clock: FakeClock
) -> None:
    parent = spec()
    child = after(parent, scheduled_at=clock.now() + timedelta(hours=1))
    await enqueue(broker, parent, child)
    await complete(broker)
    assert await states_of(broker, [child.id]) == ["scheduled"]
    clock.advance(timedelta(hours=1))
    assert (await claim_one(broker, "next")).job.id == child.id


async def test_a_failure_cancels_cancel_dependents_at_once_and_releases_continue_ones(
    broker: Broker,
) -> None:
    parent = spec(max_attempts=1)
    doomed = after(parent)  # on_failure "cancel"
    grandchild = after(doomed, on_failure="continue")
    goes_on = after(parent, on_failure="continue")
    await enqueue(broker, parent, doomed, grandchild, goes_on)
    claimed = await claim_one(broker)
    await broker.finish([Failed(claimed.lease, FailReason.ERROR, error())])
    jobs = await broker.get([doomed.id, grandchild.id, goes_on.id])
    assert [job.state for job in jobs] == [
        JobState.CANCELLED,
        JobState.AVAILABLE,  # its one dependency ended (cancelled) and it continues
        JobState.AVAILABLE,
    ]
    assert jobs[0].cancel_reason is CancelReason.PARENT_FAILED
    assert jobs[0].finished_at is not None


async def test_a_cancelled_dependency_counts_as_a_failure(broker: Broker) -> None:
    parent = spec()
    child = after(parent)
    await enqueue(broker, parent, child)
    claimed = await claim_one(broker)
    await broker.cancel([parent.id])
    assert await states_of(broker, [child.id]) == ["pending"]  # a request: still running
    await broker.finish([Cancelled(claimed.lease)])
    job = await get_one(broker, child.id)
    assert (job.state, job.cancel_reason) == (JobState.CANCELLED, CancelReason.PARENT_FAILED)


async def test_cancel_ends_pending_jobs_with_the_reason_given(broker: Broker) -> None:
    parent = spec()
    first = after(parent)
    second = after(first)
    await enqueue(broker, parent, first, second)
    jobs = await broker.cancel([parent.id, first.id, second.id], reason="requested")
    assert {(job.state, job.cancel_reason) for job in jobs} == {
        (JobState.CANCELLED, CancelReason.REQUESTED)
    }


async def test_purging_a_waiting_dependency_cancels_its_dependents_down_the_chain(
    broker: Broker,
) -> None:
    first = spec()
    second = after(first)
    third = spec(queue="last", depends_on=(second.id,))
    await enqueue(broker, first, second, third)
    assert await broker.purge("default", [JobState.AVAILABLE]) == 1
    jobs = await broker.get([first.id, second.id, third.id])
    assert [(job.id, job.state, job.cancel_reason) for job in jobs] == [
        (second.id, JobState.CANCELLED, CancelReason.PARENT_FAILED),
        (third.id, JobState.CANCELLED, CancelReason.PARENT_FAILED),
    ]
    assert (await broker.list_jobs(JobQuery(states=(JobState.PENDING,)))).jobs == []
    assert (await broker.counts()).total(JobState.PENDING) == 0


async def test_purging_a_dependency_releases_a_continue_dependent(broker: Broker) -> None:
    parent = spec()
    child = after(parent, on_failure="continue")
    await enqueue(broker, parent, child)
    assert await broker.purge("default", [JobState.AVAILABLE]) == 1
    assert await states_of(broker, [parent.id, child.id]) == ["missing", "available"]
    assert (await claim_one(broker, "next")).job.id == child.id


async def test_a_purged_pending_job_leaves_no_dependency_behind(broker: Broker) -> None:
    parent = spec()
    purged = after(parent)
    sibling = spec(queue="other", depends_on=(parent.id,))
    await enqueue(broker, parent, purged, sibling)
    assert await broker.purge("next", [JobState.PENDING]) == 1
    await complete(broker)  # the finish of the dependency still applies
    assert await states_of(broker, [parent.id, purged.id, sibling.id]) == [
        "completed",
        "missing",
        "available",
    ]
    assert (await broker.list_jobs(JobQuery(queue="next"))).jobs == []
    assert sum((await broker.counts(["next"])).by_queue["next"].values()) == 0


async def test_purging_a_whole_chain_deletes_every_step(broker: Broker) -> None:
    first = spec(queue="chain")
    second = spec(queue="chain", depends_on=(first.id,), on_failure="continue")
    third = spec(queue="chain", depends_on=(second.id,))
    await enqueue(broker, first, second, third)
    assert await broker.purge("chain", [JobState.AVAILABLE, JobState.PENDING]) == 3
    assert await broker.get([first.id, second.id, third.id]) == []
    assert sum((await broker.counts(["chain"])).by_queue["chain"].values()) == 0


async def test_a_dependency_counts_once_even_if_it_ends_again(broker: Broker) -> None:
    parent = spec(max_attempts=1)
    child = after(parent, on_failure="continue")
    await enqueue(broker, parent, child)
    claimed = await claim_one(broker)
    await broker.finish([Failed(claimed.lease, FailReason.ERROR, error())])
    await complete(broker, "next")
    await broker.requeue([parent.id])
    await complete(broker)
    job = await get_one(broker, child.id)
    assert (job.state, job.attempt) == (JobState.COMPLETED, 1)


async def test_a_resent_batch_stores_no_second_dependency(broker: Broker) -> None:
    parent = spec()
    child = after(parent)
    await enqueue(broker, parent, child)
    again = await broker.enqueue_many([parent, child])
    assert [item.duplicate for item in again] == [True, True]
    await complete(broker)
    assert await states_of(broker, [child.id]) == ["available"]


@pytest.mark.needs("cross_process")
async def test_two_brokers_ending_the_last_two_dependencies_release_the_dependent_once(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    other = make_broker(broker_kind, clock, tmp_path)
    await other.open()
    try:
        for _ in range(20):
            members = [spec(), spec()]
            callback = after(*members)
            await enqueue(broker, *members, callback)
            mine, theirs = await claim_one(broker), await claim_one(other)
            applied = await asyncio.gather(
                broker.finish([Completed(mine.lease, result=b"1")]),
                other.finish([Completed(theirs.lease, result=b"2")]),
            )
            assert applied == [[True], [True]]
            assert await states_of(broker, [callback.id]) == ["available"]
            assert (await claim_one(broker, "next")).job.id == callback.id
    finally:
        await other.close()
