"""Finding jobs by workflow and by idempotency key with list_jobs, on every broker: the
filters, their keyset pages, and what pruning, purging and a key given up leave behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import errands
from errands.brokers.contract import Broker, JobQuery
from errands.job import JobId, JobState
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import claim_one, enqueue, spec


@pytest.fixture
async def app(broker: Broker) -> errands.App:
    """An App on the test's broker, its portal on the test's loop, with one task."""
    made = errands.App(broker=broker)
    made.portal.adopt(asyncio.get_running_loop())

    @made.task(name="add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    @made.task(name="total")
    def total(values: list[int]) -> int:
        return sum(values)

    return made


async def ids_of(broker: Broker, query: JobQuery) -> list[JobId]:
    """Every id list_jobs returns for `query`, page after page."""
    seen: list[JobId] = []
    cursor = None
    for _ in range(50):
        page = await broker.list_jobs(JobQuery(**{**_fields(query), "before_id": cursor}))
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError(f"list_jobs({query}) did not reach its last page")


def _fields(query: JobQuery) -> dict[str, object]:
    return {name: getattr(query, name) for name in JobQuery.__slots__}


@pytest.mark.needs("workflows")
async def test_a_chords_jobs_are_listed_by_its_workflow_id_and_only_they(
    app: errands.App, broker: Broker
) -> None:
    add, total = app.get_task("add"), app.get_task("total")
    [before] = await enqueue(broker, spec("add"))
    chord = errands.chord(errands.group(*[add.call(i) for i in range(3)]), total.call())
    handle = await chord.enqueue_async()
    other = await errands.chain(add.call(1), add.call(2)).enqueue_async()
    [after] = await enqueue(broker, spec("add"))

    page = await broker.list_jobs(JobQuery(workflow=handle.id))

    assert [job.id for job in page.jobs] == sorted((j.id for j in handle.jobs), reverse=True)
    assert {job.workflow_id for job in page.jobs} == {handle.id}
    assert page.next_cursor is None
    found = set(await ids_of(broker, JobQuery(workflow=other.id)))
    assert found == {j.id for j in other.jobs}
    assert not {before, after} & found


@pytest.mark.needs("workflows")
async def test_a_workflows_jobs_are_found_by_state_as_they_run(
    app: errands.App, broker: Broker
) -> None:
    add, total = app.get_task("add"), app.get_task("total")
    chord = errands.chord(errands.group(add.call(1), add.call(2)), total.call())
    handle = await chord.enqueue_async()
    [callback] = handle.outputs
    pending = JobQuery(workflow=handle.id, states=(JobState.PENDING,))
    assert await ids_of(broker, pending) == [callback.id]

    await app.run_until_idle_async()

    assert await ids_of(broker, pending) == []
    done = JobQuery(workflow=handle.id, states=(JobState.COMPLETED,))
    assert len(await ids_of(broker, done)) == 3


async def test_pages_by_workflow_cover_each_of_its_jobs_once(broker: Broker) -> None:
    steps = await enqueue(broker, *[spec(workflow_id="wf-1") for _ in range(7)])
    await enqueue(broker, *[spec(workflow_id="wf-2") for _ in range(3)], spec())
    sizes: list[int] = []
    seen: list[JobId] = []
    cursor = None
    for _ in range(5):
        page = await broker.list_jobs(JobQuery(workflow="wf-1", limit=3, before_id=cursor))
        sizes.append(len(page.jobs))
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == sorted(steps, reverse=True)


async def test_the_workflow_filter_combines_with_queue_and_task(broker: Broker) -> None:
    [_, mail_send, _] = await enqueue(
        broker,
        spec("send", queue="sms", workflow_id="wf"),
        spec("send", queue="mail", workflow_id="wf"),
        spec("report", queue="mail", workflow_id="wf"),
    )
    query = JobQuery(workflow="wf", queue="mail", task="send")
    assert await ids_of(broker, query) == [mail_send]


async def test_a_job_is_found_by_its_idempotency_key_whatever_its_task(broker: Broker) -> None:
    [send, report, _, _] = await enqueue(
        broker,
        spec("send", idempotency_key="order-42"),
        spec("report", idempotency_key="order-42"),
        spec("send", idempotency_key="order-43"),
        spec("send"),
    )
    assert await ids_of(broker, JobQuery(idempotency_key="order-42")) == [report, send]
    assert await ids_of(broker, JobQuery(idempotency_key="order-42", task="send")) == [send]
    [job] = (await broker.list_jobs(JobQuery(idempotency_key="order-42", limit=1))).jobs
    assert job.idempotency_key == "order-42"


async def test_pages_by_idempotency_key_cover_each_holder_once(broker: Broker) -> None:
    held = await enqueue(broker, *[spec(f"task-{i}", idempotency_key="k") for i in range(5)])
    sizes: list[int] = []
    seen: list[JobId] = []
    cursor = None
    for _ in range(5):
        page = await broker.list_jobs(JobQuery(idempotency_key="k", limit=2, before_id=cursor))
        sizes.append(len(page.jobs))
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen == sorted(held, reverse=True)


async def test_a_key_given_up_is_found_on_its_new_holder_only(
    broker: Broker, clock: FakeClock
) -> None:
    [first] = await enqueue(broker, spec(idempotency_key="k", result_ttl=timedelta(seconds=1)))
    claimed = await claim_one(broker)
    assert await broker.finish([Completed(claimed.lease, result=b"1")]) == [True]
    clock.advance(timedelta(seconds=2))  # the result expires: the key is free again
    [second] = await enqueue(broker, spec(idempotency_key="k"))
    assert second != first
    assert await ids_of(broker, JobQuery(idempotency_key="k")) == [second]


async def test_pruned_and_purged_jobs_leave_both_searches(broker: Broker, clock: FakeClock) -> None:
    [done] = await enqueue(broker, spec(workflow_id="wf", idempotency_key="k1"))
    claimed = await claim_one(broker)
    await broker.finish([Completed(claimed.lease, result=b"1")])
    [waiting] = await enqueue(broker, spec(workflow_id="wf", idempotency_key="k2"))
    clock.advance(timedelta(seconds=1))
    assert await broker.prune(finished_before=clock.now(), limit=100) == 1
    assert await ids_of(broker, JobQuery(workflow="wf")) == [waiting]
    assert await ids_of(broker, JobQuery(idempotency_key="k1")) == []
    assert await broker.purge("default", [JobState.AVAILABLE]) == 1
    assert await ids_of(broker, JobQuery(workflow="wf")) == []
    assert await ids_of(broker, JobQuery(idempotency_key="k2")) == []
    assert done != waiting
