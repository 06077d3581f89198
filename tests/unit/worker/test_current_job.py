"""`errands.current_job()`: inside a task run by a worker it describes that job (id, task,
queue, attempt, headers) in the async pool, the thread pool and the process pool; outside a
task it raises LookupError."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import errands
from errands.job import TERMINAL_STATES, JobState

WITHIN = timedelta(seconds=30)
HEADERS = {"tenant": "acme", "trace-id": "4bf92f35"}

#: The App of the process-pool test: at module level, so children import it by reference.
proc_app = errands.App("memory://")


def describe(first_try_fails: bool) -> dict[str, Any]:
    """The current job as a dict; on its first attempt, ask for a retry when told to, so the
    attempt number is seen to change."""
    job = errands.current_job()
    if first_try_fails and job.attempt == 1:
        raise errands.Retry(timedelta(0))
    return {
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "attempt": job.attempt,
        "headers": dict(job.headers),
        "schedule": job.schedule,
        "slot": job.slot,
    }


@proc_app.task(name="who.process", pool="process", queue="cpu")
def who_in_a_child(first_try_fails: bool) -> dict[str, Any]:
    """current_job() in a process-pool child."""
    return describe(first_try_fails)


@pytest.fixture(scope="module")
def proc() -> Iterator[errands.App]:
    """The process-pool App, closed after this module's tests (not between them: a memory
    broker reused after App.close() misbehaves, see the report of this test module)."""
    yield proc_app
    proc_app.close()


def run_until_done(app: errands.App, handle: errands.JobHandle[Any], **options: Any) -> None:
    """Run workers until the job of `handle` has ended (at most three rounds).

    One round should do: a job retried at once runs again before run_until_idle returns. But
    the worker may go idle while the first attempt's outcome is still unflushed (see
    test_a_job_retried_at_once_runs_its_second_attempt_before_the_worker_idles), so the
    retried attempt may need a second round here."""
    for _ in range(3):
        app.run_until_idle(**options)
        if handle.refresh().state in TERMINAL_STATES:
            return


def expected(handle: errands.JobHandle[Any], task: str, queue: str, attempt: int) -> Any:
    """What describe() returns for the job of `handle`."""
    return {
        "id": handle.id,
        "task": task,
        "queue": queue,
        "attempt": attempt,
        "headers": HEADERS,
        "schedule": None,
        "slot": None,
    }


@pytest.mark.parametrize("first_try_fails", [False, True], ids=["attempt-1", "attempt-2"])
def test_in_the_async_pool_current_job_is_the_running_job(
    app: errands.App, first_try_fails: bool
) -> None:
    @app.task(name="who.async", queue="io")
    async def who() -> dict[str, Any]:
        return describe(first_try_fails)

    handle = who.options(headers=HEADERS).enqueue()
    run_until_done(app, handle, queues=["io"])

    attempt = 2 if first_try_fails else 1
    assert handle.result(timeout=WITHIN) == expected(handle, "who.async", "io", attempt)


@pytest.mark.parametrize("first_try_fails", [False, True], ids=["attempt-1", "attempt-2"])
def test_in_the_thread_pool_current_job_is_the_running_job(
    app: errands.App, first_try_fails: bool
) -> None:
    @app.task(name="who.thread")
    def who() -> dict[str, Any]:
        assert threading.current_thread().name.startswith("errands-job")
        return describe(first_try_fails)

    handle = who.options(headers=HEADERS).enqueue()
    run_until_done(app, handle)

    attempt = 2 if first_try_fails else 1
    assert handle.result(timeout=WITHIN) == expected(handle, "who.thread", "default", attempt)


@pytest.mark.parametrize("first_try_fails", [False, True], ids=["attempt-1", "attempt-2"])
def test_in_the_process_pool_current_job_is_the_running_job(
    proc: errands.App, first_try_fails: bool
) -> None:
    handle = who_in_a_child.options(headers=HEADERS).enqueue(first_try_fails)
    run_until_done(proc, handle, queues=["cpu"], processes=1)

    attempt = 2 if first_try_fails else 1
    assert handle.result(timeout=WITHIN) == expected(handle, "who.process", "cpu", attempt)


def test_jobs_running_side_by_side_each_see_their_own(app: errands.App) -> None:
    barrier = threading.Barrier(3, timeout=10)

    @app.task(name="mine")
    def mine(n: int) -> tuple[int, str]:
        barrier.wait()  # all three are running at once
        return n, errands.current_job().headers["n"]

    handles = [mine.options(headers={"n": str(n)}).enqueue(n) for n in range(3)]
    app.run_until_idle(concurrency=3)

    assert [h.result(timeout=WITHIN) for h in handles] == [(0, "0"), (1, "1"), (2, "2")]


def test_outside_a_task_current_job_raises_lookup_error() -> None:
    with pytest.raises(LookupError, match="only known inside a task"):
        errands.current_job()


def test_after_a_task_ran_the_caller_still_has_no_current_job(app: errands.App) -> None:
    @app.task(name="inline")
    def inline() -> str:
        return errands.current_job().id

    handle = inline.enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == handle.id
    with pytest.raises(LookupError):
        errands.current_job()


def test_a_job_retried_at_once_runs_its_second_attempt_before_the_worker_idles(
    app: errands.App,
) -> None:
    @app.task(name="twice")
    def twice() -> int:
        attempt = errands.current_job().attempt
        if attempt == 1:
            raise errands.Retry(timedelta(0))
        return attempt

    handle = twice.enqueue()
    app.run_until_idle(concurrency=1)

    assert handle.refresh().state is JobState.COMPLETED
    assert handle.result(timeout=WITHIN) == 2
