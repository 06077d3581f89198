"""The async pool: coroutines on the worker's loop, cancelled at their time limit."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import errands
from errands.job import ErrorKind, FailReason, JobState
from tests.unit.worker.conftest import run_worker

WITHIN = timedelta(seconds=10)


def test_a_coroutine_task_runs_on_the_workers_loop(app: errands.App) -> None:
    @app.task
    async def where() -> str:
        return threading.current_thread().name

    handle = where.enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == "errands-portal"


def test_past_its_time_limit_a_coroutine_is_cancelled_and_the_attempt_times_out(
    app: errands.App,
) -> None:
    seen: list[str] = []

    @app.task(timeout=timedelta(milliseconds=50), max_attempts=1)
    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("finished")

    handle = slow.enqueue()
    app.run_until_idle()

    job = handle.refresh()
    assert seen == ["cancelled"]
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.ERROR)
    assert job.errors[-1].kind is ErrorKind.TIMEOUT
    assert job.errors[-1].type == "Timeout"
    assert "time limit" in job.errors[-1].message


def test_a_timed_out_coroutine_is_retried_by_policy(app: errands.App) -> None:
    calls: list[int] = []

    @app.task(
        timeout=timedelta(milliseconds=50),
        max_attempts=2,
        retry=errands.RetryPolicy(base=timedelta(0)),
    )
    async def slow_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(60)
        return "quick the second time"

    handle = slow_once.enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == "quick the second time"
    assert [e.kind for e in handle.refresh().errors] == [ErrorKind.TIMEOUT]


def test_a_timeout_error_raised_by_the_task_itself_is_not_mistaken_for_the_limit(
    app: errands.App,
) -> None:
    @app.task(timeout=timedelta(seconds=30), max_attempts=1)
    async def upstream_timed_out() -> None:
        raise TimeoutError("upstream took too long")

    handle = upstream_timed_out.enqueue()
    app.run_until_idle()

    error = handle.refresh().errors[-1]
    assert (error.type, error.message) == ("TimeoutError", "upstream took too long")


def test_coroutines_run_side_by_side_on_one_loop(app: errands.App) -> None:
    barrier = asyncio.Barrier(5)  # binds to the worker's loop at its first wait

    @app.task
    async def meet() -> str:
        async with asyncio.timeout(10):
            await barrier.wait()
        return "met"

    handles = meet.enqueue_many([()] * 5)
    worker = run_worker(app, concurrency=5)

    assert [h.result(timeout=WITHIN) for h in handles] == ["met"] * 5
    assert worker.ran == 5


def test_a_coroutine_that_swallows_its_cancellation_still_times_out(app: errands.App) -> None:
    @app.task(timeout=timedelta(milliseconds=50), max_attempts=1)
    async def stubborn() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "returned after the limit"
        return "woke"

    handle = stubborn.enqueue()
    app.run_until_idle()

    job = handle.refresh()
    assert (job.state, job.result) == (JobState.FAILED, None)
    assert job.errors[-1].kind is ErrorKind.TIMEOUT
