"""Execution: a claimed job becomes an Invocation or the Failed outcome that explains why not,
and an exception becomes Retrying or Failed by the task's retry policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import errands
from errands import codec, envelope
from errands.brokers.contract import Claimed
from errands.current import RunningJob
from errands.job import ErrorKind, FailReason, Job, JobState
from errands.lease import Lease
from errands.outcome import Completed, Failed, Retrying
from errands.worker.execution import (
    RAW_KEEP,
    Invocation,
    completed,
    error_of,
    prepare,
    raised,
)

#: The current-job record of the invocations these tests build by hand.
RUNNING = RunningJob(id="j1", task="t", queue="default", attempt=1)

EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


def claimed_with(
    payload: bytes,
    *,
    attempt: int = 1,
    failures: int = 0,
    max_attempts: int = 3,
    job_id: str = "job-1",
    task: str = "t",
) -> Claimed:
    job = Job(
        id=job_id,
        task=task,
        queue="default",
        state=JobState.RUNNING,
        payload=payload,
        attempt=attempt,
        failures=failures,
        max_attempts=max_attempts,
    )
    return Claimed(job, Lease(job_id, attempt, "token", EXPIRES))


def claimed_call(call: errands.Call, **job: Any) -> Claimed:
    spec = call.spec()
    return claimed_with(spec.payload, job_id=spec.id, task=spec.task, **job)


@pytest.fixture
def pay(app: errands.App) -> errands.Task[..., Any]:
    @app.task(timeout=timedelta(seconds=7))
    def pay(amount: Decimal, *, currency: str = "EUR") -> str:
        return f"{amount} {currency}"

    return pay


def test_a_good_job_becomes_an_invocation_with_decoded_arguments(
    app: errands.App, pay: errands.Task[..., Any]
) -> None:
    prepared = prepare(claimed_call(pay.call(Decimal("9.99"), currency="USD")), app.registry)

    assert isinstance(prepared, Invocation)
    assert prepared.task is pay
    assert prepared.args == [Decimal("9.99")]
    assert prepared.kwargs == {"currency": "USD"}
    assert prepared.timeout == timedelta(seconds=7)


def test_a_job_without_a_timeout_on_the_wire_uses_the_tasks(app: errands.App) -> None:
    @app.task(name="limited", timeout=timedelta(seconds=3))
    def limited() -> None: ...

    payload = envelope.encode(envelope.Envelope(v=1, id="job-1", task="limited"))
    prepared = prepare(claimed_with(payload, task="limited"), app.registry)

    assert isinstance(prepared, Invocation)
    assert prepared.timeout == timedelta(seconds=3)


def test_an_unknown_task_fails_with_unknown_task_naming_it(app: errands.App) -> None:
    payload = envelope.encode(envelope.Envelope(v=1, id="job-1", task="ghost"))

    outcome = prepare(claimed_with(payload, task="ghost"), app.registry)

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.UNKNOWN_TASK
    assert outcome.error is not None
    assert "'ghost'" in outcome.error.message


def test_arguments_that_do_not_bind_fail_with_bad_arguments(
    app: errands.App, pay: errands.Task[..., Any]
) -> None:
    # The producer refuses such a call, so write the envelope as another language might.
    payload = envelope.encode(
        envelope.Envelope(v=envelope.VERSION, id="job-1", task=pay.name, args=[1, 2, 3])
    )
    outcome = prepare(claimed_with(payload, task=pay.name), app.registry)

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.BAD_ARGUMENTS
    assert outcome.error is not None
    assert outcome.error.type == "TypeError"
    assert pay.name in outcome.error.message


def test_an_undecodable_payload_fails_as_malformed_keeping_the_raw_bytes(
    app: errands.App,
) -> None:
    outcome = prepare(claimed_with(b"\x80\x04not json"), app.registry)

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.MALFORMED
    assert outcome.error is not None
    assert outcome.error.kind is ErrorKind.MALFORMED
    assert "not_json" in outcome.error.message
    assert repr(b"\x80\x04not json") in outcome.error.message


def test_the_raw_bytes_kept_are_capped(app: errands.App) -> None:
    payload = b"{" + b"x" * (RAW_KEEP * 3)

    outcome = prepare(claimed_with(payload), app.registry)

    assert isinstance(outcome, Failed)
    assert outcome.error is not None
    assert f"({len(payload)} bytes)" in outcome.error.message
    assert len(outcome.error.message) < RAW_KEEP + 500


def test_a_tag_whose_value_is_the_wrong_type_fails_as_malformed(
    app: errands.App, pay: errands.Task[..., Any]
) -> None:
    payload = envelope.encode(
        envelope.Envelope(
            v=1, id="job-1", task=pay.name, args=[{"__errands__": "timedelta", "v": "soon"}]
        )
    )

    outcome = prepare(claimed_with(payload), app.registry)

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.MALFORMED


@pytest.mark.parametrize(
    "tagged",
    [
        {"__errands__": "decimal", "v": "abc"},
        {"__errands__": "uuid", "v": 123},
        {"__errands__": "timedelta", "v": 1e300},
    ],
    ids=["decimal", "uuid", "timedelta"],
)
def test_any_tag_that_does_not_parse_fails_as_malformed(
    app: errands.App, pay: errands.Task[..., Any], tagged: dict[str, Any]
) -> None:
    payload = envelope.encode(envelope.Envelope(v=1, id="job-1", task=pay.name, args=[tagged]))

    outcome = prepare(claimed_with(payload), app.registry)

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.MALFORMED


def test_a_returned_value_is_completed_with_its_encoded_result() -> None:
    outcome = completed(claimed_with(b""), {"when": datetime(2030, 1, 1, tzinfo=UTC)})

    assert isinstance(outcome, Completed)
    assert codec.loads(outcome.result) == {"when": datetime(2030, 1, 1, tzinfo=UTC)}
    assert json.loads(outcome.result)["when"]["__errands__"] == "datetime"


def test_a_returned_value_json_cannot_carry_fails_the_job() -> None:
    outcome = completed(claimed_with(b""), object())

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.ERROR
    assert outcome.error is not None
    assert outcome.error.type == "TypeError"


def retrying_task(app: errands.App, **options: Any) -> errands.Task[..., Any]:
    @app.task(name="work", **options)
    def work() -> None: ...

    return work


def test_an_error_with_attempts_left_is_retried_after_the_policys_delay(
    app: errands.App,
) -> None:
    task = retrying_task(app, retry=errands.RetryPolicy(base=timedelta(seconds=4), jitter=False))
    claimed = claimed_with(b"", attempt=2, failures=1, max_attempts=3)

    outcome = raised(claimed, Invocation(task, [], {}, None, RUNNING), ValueError("bad"))

    assert isinstance(outcome, Retrying)
    assert outcome.delay == timedelta(seconds=8)  # the second failure doubles the base
    assert (outcome.error.attempt, outcome.error.type, outcome.error.message) == (
        2,
        "ValueError",
        "bad",
    )


def test_the_last_allowed_attempt_fails_with_reason_error(app: errands.App) -> None:
    task = retrying_task(app)
    claimed = claimed_with(b"", attempt=3, failures=2, max_attempts=3)

    outcome = raised(claimed, Invocation(task, [], {}, None, RUNNING), ValueError("bad"))

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.ERROR


def test_crashes_do_not_count_against_max_attempts(app: errands.App) -> None:
    task = retrying_task(app, retry=errands.RetryPolicy(base=timedelta(0)))
    # Third claim, but the first two ended in crashes: only one failure so far counts.
    claimed = claimed_with(b"", attempt=3, failures=0, max_attempts=2)

    assert isinstance(
        raised(claimed, Invocation(task, [], {}, None, RUNNING), ValueError("bad")), Retrying
    )


def test_a_dont_retry_error_fails_at_once(app: errands.App) -> None:
    task = retrying_task(app, dont_retry=(KeyError,))

    outcome = raised(
        claimed_with(b"", max_attempts=10), Invocation(task, [], {}, None, RUNNING), KeyError("k")
    )

    assert isinstance(outcome, Failed)


def test_retry_in_overrides_the_policys_delay(app: errands.App) -> None:
    task = retrying_task(app, retry=errands.RetryPolicy(base=timedelta(hours=1)))

    outcome = raised(
        claimed_with(b""),
        Invocation(task, [], {}, None, RUNNING),
        errands.Retry(in_=timedelta(seconds=3)),
    )

    assert isinstance(outcome, Retrying)
    assert outcome.delay == timedelta(seconds=3)


def test_retry_in_zero_asks_for_no_delay(app: errands.App) -> None:
    task = retrying_task(app, retry=errands.RetryPolicy(base=timedelta(hours=1)))

    outcome = raised(
        claimed_with(b""), Invocation(task, [], {}, None, RUNNING), errands.Retry(in_=timedelta(0))
    )

    assert isinstance(outcome, Retrying)
    assert outcome.delay == timedelta(0)


def test_a_timeout_error_is_recorded_with_kind_timeout(app: errands.App) -> None:
    claimed = claimed_with(b"")

    assert error_of(claimed, errands.Timeout("late")).kind is ErrorKind.TIMEOUT
    assert error_of(claimed, TimeoutError("late")).kind is ErrorKind.TIMEOUT
    assert error_of(claimed, ValueError("x")).kind is ErrorKind.EXCEPTION
    assert error_of(claimed, ValueError("x"), ErrorKind.MEMORY).kind is ErrorKind.MEMORY


def test_an_error_keeps_its_traceback_as_text(app: errands.App) -> None:
    def deep() -> None:
        raise RuntimeError("down here")

    try:
        deep()
    except RuntimeError as error:
        recorded = error_of(claimed_with(b""), error)

    assert "in deep" in recorded.traceback
    assert "RuntimeError: down here" in recorded.traceback


@pytest.mark.parametrize(
    ("column", "value"), [("job_id", "another-job"), ("task", "tests.other_task")]
)
def test_a_row_whose_id_or_task_differs_from_its_envelope_is_malformed(
    app: errands.App, pay: errands.Task[..., Any], column: str, value: str
) -> None:
    spec = pay.call(Decimal(1)).spec()
    row = {"job_id": spec.id, "task": spec.task, column: value}

    outcome = prepare(claimed_with(spec.payload, **row), app.registry)

    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.MALFORMED
    assert outcome.error is not None
    assert value in outcome.error.message
