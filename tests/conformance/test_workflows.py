"""Workflows end to end on every broker: chains, groups and chords started by an App, run by
an in-process worker, results passed along and failure policies applied by the broker.

The worker runs until idle on the test's own loop; the broker keeps the test's FakeClock, so
nothing is retried later or expires behind the test's back.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import errands
from errands.brokers.contract import Broker, JobQuery
from errands.job import CancelReason, JobSpec, JobState

pytestmark = pytest.mark.needs("workflows")
WITHIN = timedelta(seconds=20)


@pytest.fixture
async def app(broker: Broker) -> errands.App:
    """An App on the test's broker, its portal on the test's loop."""
    made = errands.App(broker=broker)
    made.portal.adopt(asyncio.get_running_loop())

    @made.task(name="append")
    def append(items: list[str], item: str) -> list[str]:
        return [*items, item]

    @made.task(name="add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    @made.task(name="total")
    def total(values: list[Any]) -> Any:
        return sum(v for v in values if isinstance(v, int))

    @made.task(name="outcomes")
    def outcomes(values: list[Any]) -> list[str]:
        return [type(v).__name__ for v in values]

    @made.task(name="boom", max_attempts=1)
    def boom(*_: Any) -> None:
        raise ValueError("boom")

    return made


def task(app: errands.App, name: str) -> errands.Task[..., Any]:
    return app.get_task(name)


async def run(app: errands.App) -> None:
    await app.run_until_idle_async()


async def test_a_chain_passes_each_result_to_the_next_step_in_order(app: errands.App) -> None:
    append = task(app, "append")
    handle = await errands.chain(
        append.call([], "a"), append.call("b"), append.call("c")
    ).enqueue_async()
    first, *later = [await job.refresh_async() for job in handle.jobs]
    assert first.state is JobState.AVAILABLE
    assert {job.state for job in later} == {JobState.PENDING}  # stored with its dependencies
    await run(app)
    assert await handle.result_async(WITHIN) == ["a", "b", "c"]


async def test_an_immutable_step_runs_with_its_own_arguments_only(app: errands.App) -> None:
    add = task(app, "add")
    handle = await errands.chain(add.call(1, 1), add.call(40, 2).immutable()).enqueue_async()
    await run(app)
    assert await handle.result_async(WITHIN) == 42


async def test_a_group_returns_its_members_results_in_order(app: errands.App) -> None:
    add = task(app, "add")
    handle = await errands.group(*[add.call(i, i) for i in range(6)]).enqueue_async()
    await run(app)
    assert await handle.result_async(WITHIN) == [0, 2, 4, 6, 8, 10]


async def test_a_chord_callback_runs_once_with_every_result(app: errands.App) -> None:
    add, total = task(app, "add"), task(app, "total")
    members = errands.group(*[add.call(i) for i in range(10)])
    handle = await errands.chord(members, total.call()).enqueue_async()
    await run(app)
    assert await handle.result_async(WITHIN) == 45
    callback = await handle.outputs[0].refresh_async()
    assert callback.attempt == 1


async def test_workflows_compose(app: errands.App) -> None:
    add, total = task(app, "add"), task(app, "total")
    inner_chord = errands.chord(errands.group(add.call(1), add.call(2)), total.call())
    handle = await errands.chain(
        add.call(1, 1),  # 2
        errands.group(add.call(1), errands.chain(add.call(2), add.call(10))),  # [3, 14]
        total.call(),  # 17
        inner_chord,  # 18 + 19 = 37
    ).enqueue_async()
    outer = await errands.group(
        errands.chain(add.call(1), add.call(1)), errands.chain(add.call(5), add.call(5))
    ).enqueue_async()
    await run(app)
    assert await handle.result_async(WITHIN) == 37
    assert await outer.result_async(WITHIN) == [2, 10]


async def test_under_cancel_a_failed_step_cancels_the_waiting_rest_at_once(
    app: errands.App,
) -> None:
    add, boom = task(app, "add"), task(app, "boom")
    handle = await errands.chain(add.call(1), boom.call(), add.call(1), add.call(1)).enqueue_async()
    chord = await errands.chord(
        errands.group(add.call(1), boom.call()), task(app, "total").call()
    ).enqueue_async()
    await run(app)
    jobs = [await job.refresh_async() for job in handle.jobs]
    assert [job.state for job in jobs] == [
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.CANCELLED,
    ]
    assert {job.cancel_reason for job in jobs[2:]} == {CancelReason.PARENT_FAILED}
    assert (await chord.outputs[0].refresh_async()).state is JobState.CANCELLED
    with pytest.raises(errands.JobFailed) as failed:
        await chord.result_async(WITHIN)  # the cause, not the cancelled callback
    assert (failed.value.error_type, failed.value.job_id) == ("ValueError", chord.jobs[1].id)


async def test_under_continue_every_step_runs_and_sees_each_outcome(app: errands.App) -> None:
    add, boom, outcomes = task(app, "add"), task(app, "boom"), task(app, "outcomes")
    chord = await errands.chord(
        errands.group(add.call(1), boom.call(), add.call(2)), outcomes.call(), on_failure="continue"
    ).enqueue_async()
    await run(app)
    assert await chord.result_async(WITHIN) == ["int", "StepFailed", "int"]


async def test_a_step_receives_a_step_failed_describing_the_failure(app: errands.App) -> None:
    seen: list[Any] = []

    @app.task(name="keep")
    def keep(value: Any) -> None:
        seen.append(value)

    handle = await errands.chain(
        task(app, "boom").call(), keep.call(), on_failure="continue"
    ).enqueue_async()
    await run(app)
    await handle.result_async(WITHIN)
    [failure] = seen
    assert isinstance(failure, errands.StepFailed)
    assert (failure.job_id, failure.state, failure.reason) == (handle.jobs[0].id, "failed", "error")
    assert (failure.error_type, failure.message) == ("ValueError", "boom")


async def test_cancelling_a_workflow_cancels_its_waiting_steps_in_the_broker(
    app: errands.App, broker: Broker
) -> None:
    add = task(app, "add")
    handle = await errands.chain(
        add.call(1), errands.group(add.call(1), add.call(2)), task(app, "total").call()
    ).enqueue_async()
    after = await handle.cancel_async()
    assert {(job.state, job.cancel_reason) for job in after} == {
        (JobState.CANCELLED, CancelReason.REQUESTED)
    }
    stored = await broker.get([job.id for job in handle.jobs])  # as stored, not as replied
    assert {job.state for job in stored} == {JobState.CANCELLED}
    assert await app.run_until_idle_async() == 0
    with pytest.raises(errands.JobCancelled):
        await handle.result_async(WITHIN)


async def test_a_workflow_is_one_write_and_a_bad_step_stores_nothing(
    app: errands.App, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    add = task(app, "add")
    writes: list[list[JobSpec]] = []
    enqueue_many = broker.enqueue_many

    async def recorded(specs: list[JobSpec]) -> Any:
        writes.append(list(specs))
        return await enqueue_many(specs)

    monkeypatch.setattr(broker, "enqueue_many", recorded)
    handle = await errands.chord(
        errands.group(add.call(1), add.call(2)), add.call()
    ).enqueue_async()
    assert [[spec.id for spec in specs] for specs in writes] == [[j.id for j in handle.jobs]]
    with pytest.raises(TypeError, match="arguments do not fit"):
        await errands.chain(add.call(1), add.call(1, 2, 3)).enqueue_async()
    assert len(writes) == 1
    page = await broker.list_jobs(JobQuery(limit=100))
    assert sorted(job.id for job in page.jobs) == sorted(j.id for j in handle.jobs)
