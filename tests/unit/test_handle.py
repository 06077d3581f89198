"""JobHandle: results, the errors that stand for their absence, refresh, state and cancel."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import errands
from errands.job import CancelReason, FailReason, JobState

WITHIN = timedelta(seconds=10)


class CardDeclined(Exception):
    pass


def test_result_is_the_tasks_return_value(app: errands.App) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    handle = add.enqueue(2, 3)
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == 5
    assert handle.job is not None
    assert handle.job.state is JobState.COMPLETED


def test_a_result_of_a_tagged_type_comes_back_as_that_type(app: errands.App) -> None:
    @app.task
    def when() -> tuple[datetime, bytes]:
        return (datetime(2030, 1, 1, tzinfo=UTC), b"\x00")

    handle = when.enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == (datetime(2030, 1, 1, tzinfo=UTC), b"\x00")


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds a job in its thread until the test opens it; always opened at the end."""
    opened = threading.Event()
    yield opened
    opened.set()


def test_result_waits_for_a_worker_and_times_out_naming_the_job_before(
    app: errands.App, gate: threading.Event
) -> None:
    started = threading.Event()

    @app.task
    def held() -> str:
        started.set()
        gate.wait(timeout=30)
        return "done"

    handle = held.enqueue()
    worker = threading.Thread(target=app.run_until_idle)
    worker.start()
    try:
        assert started.wait(timeout=10)
        with pytest.raises(errands.ResultTimeout) as caught:
            handle.result(timeout=timedelta(milliseconds=50))
        assert caught.value.job_id == handle.id
        assert handle.id in str(caught.value)
        assert caught.value.state is JobState.RUNNING

        gate.set()
        assert handle.result(timeout=WITHIN) == "done"
    finally:
        gate.set()
        worker.join(timeout=30)


def test_result_timeout_names_the_job_and_its_state(app: errands.App) -> None:
    @app.task
    def never_run() -> None: ...

    handle = never_run.enqueue()

    with pytest.raises(errands.ResultTimeout, match=handle.id) as caught:
        handle.result(timeout=timedelta(milliseconds=20))

    assert caught.value.state is JobState.AVAILABLE
    assert caught.value.timeout == timedelta(milliseconds=20)
    assert isinstance(caught.value, TimeoutError)


def test_result_accepts_seconds_as_a_number(app: errands.App) -> None:
    @app.task
    def never_run() -> None: ...

    with pytest.raises(errands.ResultTimeout):
        never_run.enqueue().result(timeout=0.02)


def test_a_failed_job_raises_job_failed_with_the_remote_error_as_text(app: errands.App) -> None:
    @app.task(max_attempts=1)
    def charge(order: int) -> None:
        raise CardDeclined(f"card declined for order {order}")

    handle = charge.enqueue(42)
    app.run_until_idle()

    with pytest.raises(errands.JobFailed) as caught:
        handle.result(timeout=WITHIN)

    failed = caught.value
    assert failed.job_id == handle.id
    assert failed.error_type == "CardDeclined"
    assert failed.remote_message == "card declined for order 42"
    assert "Traceback" in failed.remote_traceback
    assert "in charge" in failed.remote_traceback
    assert (failed.state, failed.reason) == (JobState.FAILED, FailReason.ERROR)
    assert handle.id in str(failed)
    assert "card declined for order 42" in str(failed)
    assert "remote traceback" in str(failed)


def test_a_cancelled_job_raises_job_cancelled(app: errands.App) -> None:
    @app.task
    def noop() -> None: ...

    handle = noop.enqueue()
    cancelled = handle.cancel()

    assert cancelled.state is JobState.CANCELLED
    assert app.run_until_idle() == 0
    with pytest.raises(errands.JobCancelled) as caught:
        handle.result(timeout=WITHIN)
    assert caught.value.reason == CancelReason.REQUESTED
    assert handle.id in str(caught.value)
    assert isinstance(caught.value, errands.JobFailed)


def test_an_expired_result_raises_result_expired(app: errands.App) -> None:
    @app.task
    def value() -> int:
        return 1

    handle = value.options(result_ttl=timedelta(microseconds=1)).enqueue()
    app.run_until_idle()
    app.portal.call(
        app.call_broker,
        lambda b: b.prune(finished_before=datetime(2000, 1, 1, tzinfo=UTC), limit=10),
    )

    with pytest.raises(errands.ResultExpired, match=handle.id):
        handle.result(timeout=WITHIN)


def test_state_is_as_of_the_last_refresh(app: errands.App) -> None:
    @app.task
    def noop() -> None: ...

    handle = noop.enqueue()
    assert handle.state is JobState.AVAILABLE
    app.run_until_idle()

    assert handle.state is JobState.AVAILABLE  # nothing fetched since
    job = handle.refresh()
    assert handle.state is job.state is JobState.COMPLETED
    assert job.attempt == 1


def test_refresh_of_an_unknown_id_raises_job_not_found(app: errands.App) -> None:
    with pytest.raises(errands.JobNotFound, match="no-such-id"):
        app.job("no-such-id").refresh()


def test_handles_are_equal_by_job_id(app: errands.App) -> None:
    assert app.job("a") == app.job("a")
    assert app.job("a") != app.job("b")
    assert len({app.job("a"), app.job("a")}) == 1


async def test_a_blocking_verb_inside_an_event_loop_names_its_async_twin(
    app: errands.App,
) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(errands.BlockingCallInEventLoop, match="enqueue_async") as caught:
        noop.enqueue()

    assert caught.value.verb == "enqueue"
    assert isinstance(caught.value, RuntimeError)


async def test_every_blocking_verb_refuses_to_run_inside_an_event_loop(
    app: errands.App,
) -> None:
    @app.task
    def noop() -> None: ...

    handle = await noop.enqueue_async()

    for verb, call in [
        ("result", lambda: handle.result(timeout=WITHIN)),
        ("refresh", handle.refresh),
        ("cancel", handle.cancel),
        ("enqueue_many", lambda: app.enqueue_many([noop.call()])),
        ("run_until_idle", app.run_until_idle),
    ]:
        with pytest.raises(errands.BlockingCallInEventLoop, match=f"{verb}_async"):
            call()

    assert (await handle.refresh_async()).state is JobState.AVAILABLE  # nothing ran


async def test_the_async_twins_work_from_the_tests_own_loop(app: errands.App) -> None:
    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task
    def noop() -> None: ...

    handle = await add.enqueue_async(20, 22)
    doomed = await noop.enqueue_async()
    assert (await doomed.cancel_async()).state is JobState.CANCELLED

    assert await app.run_until_idle_async() == 1
    assert await handle.result_async(WITHIN) == 42
    assert (await handle.refresh_async()).state is JobState.COMPLETED
    with pytest.raises(errands.JobCancelled):
        await doomed.result_async(WITHIN)


# -- a timeout that says no worker serves the queue -------------------------------------------


def heartbeat(app: errands.App, *queues: str) -> None:
    """Record a live worker serving `queues`, as a running worker's lease keeper does."""
    info = errands.WorkerInfo(
        id=f"worker-{'-'.join(queues)}",
        hostname="here",
        pid=1,
        queues=queues,
        concurrency=1,
        started_at=datetime.now(UTC),
    )
    app.portal.call(
        app.call_broker,
        lambda b: b.extend([], timedelta(seconds=30), heartbeat=info, progress={}),
    )


def test_a_timeout_with_no_live_worker_on_the_queue_says_how_to_start_one(
    app: errands.App,
) -> None:
    @app.task(queue="mail")
    def send() -> None: ...

    app.import_ref = "shop:app"
    heartbeat(app, "default")  # a live worker, but on another queue
    handle = send.enqueue()

    with pytest.raises(errands.ResultTimeout) as caught:
        handle.result(timeout=0.02)

    assert caught.value.unserved_queue == "mail"
    assert "no live worker serves queue 'mail'" in str(caught.value)
    assert "errands worker shop:app --queues mail" in str(caught.value)
    assert handle.id in str(caught.value)


def test_a_timeout_with_a_live_worker_on_the_queue_does_not_blame_the_workers(
    app: errands.App,
) -> None:
    @app.task(queue="mail")
    def send() -> None: ...

    heartbeat(app, "default", "mail")
    handle = send.enqueue()

    with pytest.raises(errands.ResultTimeout) as caught:
        handle.result(timeout=0.02)

    assert caught.value.unserved_queue is None
    assert "worker" not in str(caught.value)


async def test_result_async_times_out_naming_the_unserved_queue(app: errands.App) -> None:
    @app.task(queue="reports")
    def build() -> None: ...

    handle = await build.enqueue_async()

    with pytest.raises(errands.ResultTimeout, match="no live worker serves queue 'reports'"):
        await handle.result_async(timeout=timedelta(milliseconds=20))


def test_result_timeout_keeps_its_three_argument_constructor() -> None:
    error = errands.ResultTimeout("job-1", timedelta(seconds=2), JobState.RUNNING)

    assert str(error) == "job job-1 did not finish within 2s (state: running)"
    assert error.unserved_queue is None
