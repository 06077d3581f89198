"""The PostgreSQL broker's values: each outcome as the explicit transition the memory broker
applies, in-batch repeats of an enqueue sorted into rounds, and errors sorted into BrokerErrors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("psycopg")

import psycopg
from psycopg import errors as pg_errors

from errands.brokers.postgres.database import translate
from errands.brokers.postgres.enqueue import _first_of_each
from errands.brokers.postgres.rows import Transition, transition
from errands.errors import BrokerError, BrokerFull, BrokerUnavailable
from errands.job import (
    AttemptError,
    CancelReason,
    ErrorKind,
    FailReason,
    JobSpec,
    JobState,
)
from errands.lease import Lease
from errands.outcome import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Released,
    Retrying,
    Snoozed,
)

LEASE = Lease("job-1", 1, "token", datetime(2030, 1, 1, tzinfo=UTC))
ERROR = AttemptError(attempt=1, kind=ErrorKind.EXCEPTION, type="ValueError", message="boom")


def test_completed_stores_its_result_and_counts_nothing() -> None:
    assert transition(Completed(LEASE, b"42")) == Transition(JobState.COMPLETED, result=b"42")


def test_retrying_counts_a_failure_appends_its_error_and_waits_its_delay() -> None:
    move = transition(Retrying(LEASE, ERROR, delay=timedelta(seconds=30)))

    assert (move.state, move.failures, move.crashes) == (JobState.RETRYABLE, 1, 0)
    assert move.delay == timedelta(seconds=30)
    assert move.error is not None
    assert '"message":"boom"' in move.error


def test_a_crash_with_no_delay_keeps_the_jobs_place_in_line() -> None:
    move = transition(Crashed(LEASE, ERROR))

    assert (move.state, move.crashes, move.failures, move.delay) == (
        JobState.RETRYABLE,
        1,
        0,
        None,
    )
    assert transition(Crashed(LEASE, ERROR, delay=timedelta(seconds=5))).delay == timedelta(
        seconds=5
    )


@pytest.mark.parametrize(
    ("outcome", "failures", "crashes", "with_error"),
    [
        (Failed(LEASE, FailReason.ERROR, ERROR), 1, 0, True),
        (Failed(LEASE, FailReason.CRASHED, ERROR), 0, 1, True),
        (Failed(LEASE, FailReason.UNKNOWN_TASK), 0, 0, False),
    ],
)
def test_failed_counts_a_crash_or_a_failure_only_when_it_carries_an_error(
    outcome: Failed, failures: int, crashes: int, with_error: bool
) -> None:
    move = transition(outcome)

    assert (move.state, move.fail_reason) == (JobState.FAILED, outcome.reason)
    assert (move.failures, move.crashes, move.error is not None) == (failures, crashes, with_error)


def test_cancelled_released_and_snoozed_charge_nothing() -> None:
    assert transition(Cancelled(LEASE, CancelReason.PARENT_FAILED)) == Transition(
        JobState.CANCELLED, cancel_reason=CancelReason.PARENT_FAILED
    )
    assert transition(Released(LEASE)) == Transition(JobState.AVAILABLE)
    assert transition(Snoozed(LEASE, timedelta(minutes=5))) == Transition(
        JobState.SCHEDULED, delay=timedelta(minutes=5)
    )


def spec(job_id: str, key: str | None = None, task: str = "t") -> JobSpec:
    return JobSpec(id=job_id, task=task, queue="q", payload=b"", idempotency_key=key)


def test_a_batch_without_repeats_is_one_round() -> None:
    specs = [spec("a", "k1"), spec("b", "k2"), spec("c"), spec("d", "k1", task="other")]

    assert _first_of_each(specs, range(4)) == ([0, 1, 2, 3], [])


def test_a_spec_repeating_an_earlier_id_or_key_waits_and_so_does_any_it_blocks() -> None:
    specs = [spec("a", "k"), spec("b", "k"), spec("b", "k2"), spec("a"), spec("c", "k3")]

    # b waits for a's key; the second b waits for the first b's id; a repeats an id.
    assert _first_of_each(specs, range(5)) == ([0, 4], [1, 2, 3])


def test_a_full_disk_is_broker_full_and_a_gone_server_broker_unavailable() -> None:
    where = "postgresql://db:5432/jobs (schema shop)"

    full = translate(pg_errors.DiskFull("could not extend file"), where)
    shutdown = translate(pg_errors.AdminShutdown("terminating connection"), where)
    refused = translate(psycopg.OperationalError("connection refused"), where)
    bug = translate(pg_errors.UndefinedColumn('column "nope" does not exist'), where)

    assert isinstance(full, BrokerFull)
    assert isinstance(shutdown, BrokerUnavailable)
    assert isinstance(refused, BrokerUnavailable)
    assert type(bug) is BrokerError
    assert all(where in str(error) for error in (full, shutdown, refused, bug))
