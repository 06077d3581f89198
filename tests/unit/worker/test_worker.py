"""The worker on the memory broker: jobs complete, failures retry and dead-letter, poison is
isolated, priorities and delays are kept, and thousands of coroutines run at once."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import errands
from errands import envelope
from errands.job import ErrorKind, FailReason, JobSpec, JobState, new_job_id
from errands.settings import Settings
from tests.unit.worker.conftest import insert, run_worker

WITHIN = timedelta(seconds=10)
AT_ONCE = errands.RetryPolicy(base=timedelta(0))


class Flaky(Exception):
    pass


def raw_spec(payload: bytes, task: str = "raw") -> JobSpec:
    """A row as another program would store it: its id and task are the envelope's, when the
    payload is one."""
    try:
        stored = envelope.decode(payload)
    except errands.MalformedMessage:
        return JobSpec(id=new_job_id(), task=task, queue="default", payload=payload)
    return JobSpec(id=stored.id, task=stored.task, queue="default", payload=payload)


def envelope_for(task: str, *args: object) -> bytes:
    job_id = new_job_id()
    return envelope.encode(
        envelope.Envelope(v=envelope.VERSION, id=job_id, task=task, args=[*args])
    )


# -- jobs complete -------------------------------------------------------------------------------


def test_every_enqueued_job_completes_and_run_until_idle_counts_them(app: errands.App) -> None:
    @app.task
    def square(x: int) -> int:
        return x * x

    @app.task
    async def cube(x: int) -> int:
        return x**3

    squares = square.enqueue_many([(i,) for i in range(20)])
    cubes = cube.enqueue_many([(i,) for i in range(20)])

    assert app.run_until_idle() == 40

    assert [h.result(timeout=WITHIN) for h in squares] == [i * i for i in range(20)]
    assert [h.result(timeout=WITHIN) for h in cubes] == [i**3 for i in range(20)]


def test_run_until_idle_with_nothing_to_do_returns_zero(app: errands.App) -> None:
    assert app.run_until_idle() == 0


async def test_run_until_idle_async_runs_jobs_from_the_tests_own_loop(app: errands.App) -> None:
    @app.task
    def greet(name: str) -> str:
        return f"hello {name}"

    handle = await greet.enqueue_async("ada")

    assert await app.run_until_idle_async() == 1
    assert await handle.result_async(WITHIN) == "hello ada"


def test_run_until_idle_takes_only_the_queues_it_is_given(app: errands.App) -> None:
    @app.task(queue="mail")
    def mail() -> None: ...

    @app.task(queue="reports")
    def report() -> None: ...

    sent, pending = mail.enqueue(), report.enqueue()

    assert app.run_until_idle(queues=["mail"]) == 1
    assert sent.refresh().state is JobState.COMPLETED
    assert pending.refresh().state is JobState.AVAILABLE


def test_a_result_json_cannot_carry_fails_the_job_with_the_reason(app: errands.App) -> None:
    @app.task(max_attempts=5)
    def gives_an_object() -> object:
        return object()

    handle = gives_an_object.enqueue()
    app.run_until_idle()

    job = handle.refresh()
    assert (job.state, job.fail_reason, job.attempt) == (JobState.FAILED, FailReason.ERROR, 1)
    assert job.errors[-1].type == "TypeError"


# -- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_raising_job_is_retried_up_to_max_attempts_then_failed_keeping_every_error(
    app: errands.App, kind: str
) -> None:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise Flaky(f"attempt {len(calls)} failed")

    async def fail_async() -> None:
        fail()

    task = app.task(name=f"flaky_{kind}", max_attempts=3, retry=AT_ONCE)(
        fail if kind == "sync" else fail_async
    )
    handle = task.enqueue()

    assert app.run_until_idle() == 3

    job = handle.refresh()
    assert len(calls) == 3
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.ERROR)
    assert (job.attempt, job.failures, job.crashes) == (3, 3, 0)
    assert [e.message for e in job.errors] == [f"attempt {n} failed" for n in (1, 2, 3)]
    assert [e.attempt for e in job.errors] == [1, 2, 3]
    assert {e.kind for e in job.errors} == {ErrorKind.EXCEPTION}
    assert {e.type for e in job.errors} == {"Flaky"}
    assert "Traceback" in job.errors[-1].traceback


def test_a_job_that_succeeds_on_a_retry_completes_with_the_earlier_error_kept(
    app: errands.App,
) -> None:
    calls: list[int] = []

    @app.task(max_attempts=3, retry=AT_ONCE)
    def second_time_lucky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise Flaky("first try")
        return "ok"

    handle = second_time_lucky.enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == "ok"
    job = handle.refresh()
    assert (job.attempt, job.failures) == (2, 1)
    assert [e.message for e in job.errors] == ["first try"]


def test_a_retry_with_future_backoff_is_left_retryable_by_run_until_idle(
    app: errands.App,
) -> None:
    policy = errands.RetryPolicy(base=timedelta(minutes=5), jitter=False)

    @app.task(max_attempts=3, retry=policy)
    def fails() -> None:
        raise Flaky("later, please")

    handle = fails.enqueue()
    before = app.clock.now()

    assert app.run_until_idle() == 1
    after = app.clock.now()

    job = handle.refresh()
    assert (job.state, job.attempt, job.failures) == (JobState.RETRYABLE, 1, 1)
    assert job.scheduled_at is not None
    assert before + timedelta(minutes=5) <= job.scheduled_at <= after + timedelta(minutes=5)
    assert app.run_until_idle() == 0  # not due yet
    assert handle.refresh().state is JobState.RETRYABLE


def test_retry_in_sets_the_delay_before_the_next_attempt(app: errands.App) -> None:
    @app.task(max_attempts=3)
    def not_yet() -> None:
        raise errands.Retry(in_=timedelta(minutes=10), reason="upstream busy")

    handle = not_yet.enqueue()
    before = app.clock.now()
    app.run_until_idle()
    after = app.clock.now()

    job = handle.refresh()
    assert (job.state, job.failures) == (JobState.RETRYABLE, 1)
    assert job.scheduled_at is not None
    assert before + timedelta(minutes=10) <= job.scheduled_at <= after + timedelta(minutes=10)
    assert (job.errors[-1].type, job.errors[-1].message) == ("Retry", "upstream busy")


def test_retry_without_a_delay_follows_the_policy_and_counts_as_an_attempt(
    app: errands.App,
) -> None:
    @app.task(max_attempts=2, retry=AT_ONCE)
    def again() -> None:
        raise errands.Retry()

    handle = again.enqueue()
    app.run_until_idle()

    job = handle.refresh()
    assert (job.state, job.fail_reason, job.attempt) == (JobState.FAILED, FailReason.ERROR, 2)


def test_retry_in_zero_runs_the_job_again_at_once(app: errands.App) -> None:
    calls: list[int] = []

    @app.task(max_attempts=3, retry=errands.RetryPolicy(base=timedelta(hours=1)))
    def now_again() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise errands.Retry(in_=timedelta(0))
        return "second"

    handle = now_again.enqueue()
    app.run_until_idle()

    assert handle.refresh().state is JobState.COMPLETED


def test_an_error_named_in_dont_retry_dead_letters_at_once(app: errands.App) -> None:
    @app.task(max_attempts=5, retry=AT_ONCE, dont_retry=(KeyError,))
    def lookup() -> None:
        raise KeyError("no such customer")

    handle = lookup.enqueue()

    assert app.run_until_idle() == 1
    job = handle.refresh()
    assert (job.state, job.fail_reason, job.attempt) == (JobState.FAILED, FailReason.ERROR, 1)
    assert job.errors[-1].type == "KeyError"


def test_a_per_call_max_attempts_overrides_the_tasks(app: errands.App) -> None:
    @app.task(max_attempts=5, retry=AT_ONCE)
    def fails() -> None:
        raise Flaky("no")

    handle = fails.options(max_attempts=2).enqueue()
    app.run_until_idle()

    assert handle.refresh().attempt == 2


# -- poison is isolated ----------------------------------------------------------------------------


def test_poison_jobs_are_dead_lettered_with_their_reason_and_valid_jobs_still_complete(
    app: errands.App,
) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    before = add.enqueue(1, 2)
    [unknown, garbage] = [raw_spec(envelope_for("no.such.task", 1)), raw_spec(b"\x00garbage\xff")]
    # The producer refuses a misfit call, so it comes in as another language might send it.
    misfit_spec = raw_spec(envelope_for(add.name, 1, 2, 3))
    insert(app, unknown, garbage, misfit_spec)
    bad_args = app.job(misfit_spec.id)
    after = add.enqueue(3, 4)

    assert app.run_until_idle() == 5

    assert (before.result(timeout=WITHIN), after.result(timeout=WITHIN)) == (3, 7)
    ghost, junk, misfit = (
        app.job(unknown.id).refresh(),
        app.job(garbage.id).refresh(),
        bad_args.refresh(),
    )
    assert (ghost.state, ghost.fail_reason) == (JobState.FAILED, FailReason.UNKNOWN_TASK)
    assert "no.such.task" in ghost.errors[-1].message
    assert (junk.state, junk.fail_reason) == (JobState.FAILED, FailReason.MALFORMED)
    assert junk.errors[-1].kind is ErrorKind.MALFORMED
    assert repr(b"\x00garbage\xff") in junk.errors[-1].message  # the raw bytes are kept
    assert (misfit.state, misfit.fail_reason) == (JobState.FAILED, FailReason.BAD_ARGUMENTS)
    assert "arguments do not fit" in misfit.errors[-1].message
    assert {ghost.attempt, junk.attempt, misfit.attempt} == {1}  # never retried


def test_a_pickle_payload_is_dead_lettered_and_never_unpickled(
    app: errands.App, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"

    class TouchOnUnpickle:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(sentinel), "w"))

    spec = raw_spec(pickle.dumps(TouchOnUnpickle()))
    insert(app, spec)
    app.run_until_idle()

    job = app.job(spec.id).refresh()
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.MALFORMED)
    assert "pickle is never decoded" in job.errors[-1].message
    assert not sentinel.exists()


def test_a_malformed_payloads_kept_bytes_are_capped(app: errands.App) -> None:
    spec = raw_spec(b"\xff" * 100_000)
    insert(app, spec)
    app.run_until_idle()

    job = app.job(spec.id).refresh()
    assert job.fail_reason is FailReason.MALFORMED
    assert "100000 bytes" in job.errors[-1].message
    assert len(job.errors[-1].message) < 20_000


def test_a_tagged_argument_that_does_not_parse_is_dead_lettered_as_malformed(
    app: errands.App,
) -> None:
    @app.task
    def total(amount: Decimal) -> str:
        return str(amount)

    spec = raw_spec(envelope_for(total.name, {"__errands__": "decimal", "v": "abc"}), total.name)
    insert(app, spec)
    app.run_until_idle()

    job = app.job(spec.id).refresh()
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.MALFORMED)


SYS_EXIT_SCRIPT = """
import sys, threading
import errands

app = errands.App("memory://")


@app.task(max_attempts=1)
def quits():
    sys.exit(2)


handle = quits.enqueue()
runner = threading.Thread(target=app.run_until_idle, daemon=True)
runner.start()
runner.join(timeout=5)
print("returned" if not runner.is_alive() else "hung", flush=True)
if not runner.is_alive():
    print(handle.refresh().state, flush=True)
"""


def test_a_task_calling_sys_exit_fails_its_job_and_the_worker_returns() -> None:
    # In a subprocess: the bug kills the loop thread, which must not leak into this process.
    done = subprocess.run(
        [sys.executable, "-c", SYS_EXIT_SCRIPT], capture_output=True, text=True, timeout=60
    )

    assert done.stdout.split() == ["returned", "failed"], done.stderr


# -- order and time --------------------------------------------------------------------------------


def test_higher_priority_runs_first(app: errands.App) -> None:
    ran: list[str] = []

    @app.task
    def record(name: str) -> None:
        ran.append(name)

    record.options(priority=0).enqueue("low")
    record.options(priority=-5).enqueue("lowest")
    record.options(priority=10).enqueue("high")
    record.options(priority=5).enqueue("middle")
    record.options(priority=10).enqueue("high, later")

    app.run_until_idle(concurrency=1)

    assert ran == ["high", "high, later", "middle", "low", "lowest"]


def test_a_delayed_job_is_not_run_before_its_time(app: errands.App) -> None:
    ran: list[int] = []

    @app.task
    def later() -> None:
        ran.append(1)

    handle = later.options(delay=timedelta(hours=1)).enqueue()

    assert app.run_until_idle() == 0
    assert ran == []
    assert handle.refresh().state is JobState.SCHEDULED


def test_a_job_whose_eta_has_passed_runs(app: errands.App) -> None:
    @app.task
    def overdue() -> str:
        return "ran"

    handle = overdue.options(eta=app.clock.now() - timedelta(minutes=1)).enqueue()
    app.run_until_idle()

    assert handle.result(timeout=WITHIN) == "ran"


def test_ten_thousand_sleeping_coroutines_run_at_once(app: errands.App) -> None:
    """A capability check, not a benchmark: serially this would take 10,000 s."""

    @app.task
    async def nap() -> None:
        await asyncio.sleep(1)

    handles = app.enqueue_many([nap.call() for _ in range(10_000)])
    started = time.monotonic()

    assert app.run_until_idle(concurrency=10_000) == 10_000

    assert time.monotonic() - started < 30
    assert {h.refresh().state for h in handles[::500]} == {JobState.COMPLETED}


async def test_a_running_job_cancelled_by_request_ends_cancelled() -> None:
    # Cancel requests ride on lease extensions: extend often so the request arrives quickly.
    app = errands.App("memory://", settings=Settings(extend_every=timedelta(milliseconds=20)))
    started = threading.Event()
    stopped: list[str] = []

    @app.task
    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append("cancelled")
            raise

    try:
        handle = await long.enqueue_async()
        runner = asyncio.create_task(app.run_until_idle_async())
        assert await asyncio.to_thread(started.wait, 10)

        assert (await handle.cancel_async()).cancel_requested
        assert await asyncio.wait_for(runner, timeout=10) == 1

        job = await handle.refresh_async()
        assert job.state is JobState.CANCELLED
        assert stopped == ["cancelled"]
    finally:
        await app.close_async()
        app.close()


def test_prefetched_jobs_never_run_more_than_concurrency_at_once() -> None:
    from tests.unit.worker.pools import procapp

    running: list[int] = []
    most = 0

    @procapp.app.task(name="tests.unit.worker.crowd")
    async def crowd() -> None:
        nonlocal most
        running.append(1)
        most = max(most, len(running))
        await asyncio.sleep(0.01)
        running.pop()

    try:
        crowd.enqueue_many([()] * 30)
        worker = run_worker(procapp.app, concurrency=2, processes=1, prefetch=4)
    finally:
        del procapp.app.registry["tests.unit.worker.crowd"]

    assert worker.capacity > worker.concurrency == 2  # the process pool's headroom is there
    assert worker.ran == 30
    assert most == 2  # but it never lets more than two jobs run
