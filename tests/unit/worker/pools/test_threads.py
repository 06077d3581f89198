"""The thread pool: blocking functions in threads; past its limit a job fails with `timeout`,
its thread runs on and is counted stuck, and too many stuck threads make the worker restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import errands
from errands import tracing
from errands.job import ErrorKind, FailReason, JobState
from errands.settings import Settings
from errands.worker.pools.threads import ThreadPool
from tests.unit.worker.conftest import run_worker

WITHIN = timedelta(seconds=10)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds stuck threads until the test ends; always opened so no thread outlives the test."""
    opened = threading.Event()
    yield opened
    opened.set()


def test_a_plain_task_runs_in_a_pool_thread(app: errands.App) -> None:
    @app.task
    def where() -> str:
        return threading.current_thread().name

    handle = where.enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN).startswith("errands-job")


def test_the_attempt_span_is_current_in_the_thread_running_the_job(app: errands.App) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(app, provider)

    @app.task
    def span_id() -> int:
        return trace.get_current_span().get_span_context().span_id

    handle = span_id.enqueue()
    app.run_until_idle()

    [attempt] = [s for s in exporter.get_finished_spans() if s.name.startswith("errands.run")]
    assert attempt.context is not None
    assert handle.result(timeout=WITHIN) == attempt.context.span_id


def test_threads_run_jobs_side_by_side(app: errands.App) -> None:
    barrier = threading.Barrier(4, timeout=10)

    @app.task
    def meet() -> str:
        barrier.wait()
        return "met"

    handles = meet.enqueue_many([()] * 4)
    app.run_until_idle(concurrency=4)

    assert [h.result(timeout=WITHIN) for h in handles] == ["met"] * 4


def test_past_its_time_limit_a_job_fails_with_timeout_and_its_thread_is_counted_stuck(
    app: errands.App, gate: threading.Event
) -> None:
    @app.task(timeout=timedelta(milliseconds=50), max_attempts=1)
    def hangs() -> str:
        gate.wait(timeout=60)
        return "let go"

    handle = hangs.enqueue()
    worker = run_worker(app, concurrency=4)

    job = handle.refresh()
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.ERROR)
    assert job.errors[-1].kind is ErrorKind.TIMEOUT
    assert "its thread runs on" in job.errors[-1].message
    pool = worker.pool("thread")
    assert isinstance(pool, ThreadPool)
    assert pool.stuck == 1
    assert not worker.restart_requested


def test_a_stuck_thread_is_no_longer_counted_once_it_ends(
    app: errands.App, gate: threading.Event
) -> None:
    ended = threading.Event()

    @app.task(timeout=timedelta(milliseconds=50), max_attempts=1)
    def hangs() -> None:
        gate.wait(timeout=60)
        ended.set()

    hangs.enqueue()
    worker = run_worker(app, concurrency=2)
    pool = worker.pool("thread")
    assert isinstance(pool, ThreadPool)
    assert pool.stuck == 1

    gate.set()
    assert ended.wait(timeout=10)

    async def stuck_now() -> int:
        return pool.stuck

    # The count drops in a callback on the worker's loop once the thread has returned; each
    # round trip to that loop lets pending callbacks run first.
    deadline = time.monotonic() + 10
    while app.portal.call(stuck_now) and time.monotonic() < deadline:
        pass
    assert pool.stuck == 0


def test_more_stuck_threads_than_slots_make_the_worker_drain_and_ask_for_a_restart(
    app: errands.App, gate: threading.Event
) -> None:
    @app.task(timeout=timedelta(milliseconds=50), max_attempts=1)
    def hangs() -> None:
        gate.wait(timeout=60)

    first, second, third = hangs.enqueue_many([(), (), ()])
    worker = run_worker(app, concurrency=1)

    assert worker.restart_requested
    assert [first.refresh().state, second.refresh().state] == [JobState.FAILED] * 2
    assert third.refresh().state is JobState.AVAILABLE  # not claimed once draining began


def test_a_coroutine_task_forced_onto_the_thread_pool_still_runs_on_the_loop(
    app: errands.App,
) -> None:
    @app.task(pool="thread")
    async def where() -> str:
        return threading.current_thread().name

    handle = where.enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == "errands-portal"


def test_a_cancelled_thread_task_sees_the_flag_and_its_thread_is_stuck_until_it_returns(
    gate: threading.Event,
) -> None:
    # Cancel requests ride on lease extensions: extend often so the request arrives quickly.
    app = errands.App("memory://", settings=Settings(extend_every=timedelta(milliseconds=20)))
    started, saw, ended = threading.Event(), threading.Event(), threading.Event()

    @app.task
    def careful() -> None:
        started.set()
        while not errands.current_job().cancelled:
            time.sleep(0.005)
        saw.set()
        gate.wait(timeout=60)  # still busy after the cancel: the attempt is abandoned anyway
        ended.set()

    try:
        handle = careful.enqueue()
        worker = app.worker(concurrency=2)
        runner = threading.Thread(
            target=app.portal.call, args=(worker.run,), kwargs={"until_idle": True}
        )
        runner.start()
        assert started.wait(10)

        assert handle.cancel().cancel_requested
        assert saw.wait(10)
        with pytest.raises(errands.JobCancelled):
            handle.result(timeout=WITHIN)
        runner.join(10)

        assert not runner.is_alive()  # the worker went idle: the abandoned thread holds no slot
        pool = worker.pool("thread")
        assert isinstance(pool, ThreadPool)
        assert pool.stuck == 1
        assert not ended.is_set()
    finally:
        gate.set()
        app.close()
