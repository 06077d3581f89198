"""Values to script arguments and script replies back to values: the only place where a job,
an outcome or a heartbeat meets Redis's flat lists of strings."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from errands.brokers.contract import Claimed
from errands.brokers.redis.keys import FIELDS
from errands.brokers.values import at_ms, error_json, errors_from_json, ms_at, progress_from_json
from errands.clock import from_ms, to_ms
from errands.job import CancelReason, FailReason, Job, JobSpec, JobState
from errands.lease import Lease
from errands.outcome import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Outcome,
    Released,
    Retrying,
    Snoozed,
)

#: A job's reply: its id, FIELDS, then its result.
REPLY: Final = len(FIELDS) + 2
#: Priorities the scripts rank (they pack a priority into 12 hex digits).
PRIORITY_LIMIT: Final = 2**40
_AT: Final = {name: index + 1 for index, name in enumerate(FIELDS)}
_STATES: Final = {state.value.encode(): state for state in JobState}


def spec_args(specs: Sequence[JobSpec]) -> list[Any]:
    """The enqueue script's ARGV after `now`: ten values per spec."""
    args: list[Any] = []
    for spec in specs:
        if not -PRIORITY_LIMIT <= spec.priority <= PRIORITY_LIMIT:
            raise ValueError(
                f"priority {spec.priority} of job {spec.id} is out of the Redis broker's range "
                f"[-2**40, 2**40]"
            )
        args += (
            spec.id,
            spec.task,
            spec.queue,
            spec.payload,
            spec.priority,
            "" if spec.scheduled_at is None else ms_at(spec.scheduled_at),
            spec.max_attempts,
            spec.max_crashes,
            to_ms(spec.result_ttl),
            spec.idempotency_key or "",
        )
    return args


def outcome_args(outcomes: Sequence[Outcome]) -> list[Any]:
    """The finish script's ARGV after `now`: kind, id, token and two values per outcome."""
    args: list[Any] = []
    for outcome in outcomes:
        lease = outcome.lease
        a: str | bytes
        b: str | int
        match outcome:
            case Completed(result=result):
                kind, a, b = "completed", result, ""
            case Retrying(error=error, delay=delay):
                kind, a, b = "retrying", error_json(error), to_ms(delay)
            case Failed(reason=reason, error=error):
                kind, a, b = "failed", str(reason), "" if error is None else error_json(error)
            case Crashed(error=error, delay=delay):
                kind, a, b = "crashed", error_json(error), to_ms(delay) if delay else ""
            case Cancelled(reason=reason):
                kind, a, b = "cancelled", str(reason), ""
            case Released():
                kind, a, b = "released", "", ""
            case Snoozed(delay=delay):
                kind, a, b = "snoozed", "", to_ms(delay)
        args += (kind, lease.job_id, lease.token, a, b)
    return args


def jobs(reply: Sequence[Any]) -> list[Job]:
    """Jobs from a reply of back-to-back job replies (get, list)."""
    return [job(reply, start) for start in range(0, len(reply), REPLY)]


def claimed(reply: Sequence[Any]) -> list[Claimed]:
    """Leased jobs from a claim or reclaim reply: token, expiry, then the job's reply each."""
    out = []
    for start in range(0, len(reply), REPLY + 2):
        held = job(reply, start + 2)
        expires = at_ms(int(reply[start + 1]))
        lease = Lease(held.id, held.attempt, reply[start].decode(), expires)
        out.append(Claimed(held, lease))
    return out


def job(reply: Sequence[Any], start: int) -> Job:
    """The job whose reply begins at `reply[start]`."""

    def text(name: str) -> str | None:
        value = reply[start + _AT[name]]
        return None if value is None else value.decode()

    def number(name: str, default: int = 0) -> int:
        value = reply[start + _AT[name]]
        return default if value is None else int(value)

    def instant(name: str) -> Any:
        value = reply[start + _AT[name]]
        return None if value is None else at_ms(int(value))

    fail_reason, cancel_reason = text("fail_reason"), text("cancel_reason")
    progress, errors = reply[start + _AT["progress"]], reply[start + _AT["errors"]]
    return Job(
        id=reply[start].decode(),
        task=text("task") or "",
        queue=text("queue") or "",
        state=_STATES[reply[start + _AT["state"]]],
        payload=reply[start + _AT["payload"]],
        priority=number("priority"),
        attempt=number("attempt"),
        failures=number("failures"),
        crashes=number("crashes"),
        max_attempts=number("max_attempts"),
        max_crashes=number("max_crashes"),
        enqueued_at=instant("enqueued_at"),
        scheduled_at=instant("scheduled_at"),
        started_at=instant("started_at"),
        finished_at=instant("finished_at"),
        lease_expires_at=instant("expires_at"),
        worker_id=text("worker_id"),
        result=reply[start + REPLY - 1],
        result_ttl=_duration(number("result_ttl")),
        result_expires_at=instant("result_expires_at"),
        idempotency_key=text("idempotency_key"),
        fail_reason=None if fail_reason is None else FailReason(fail_reason),
        cancel_reason=None if cancel_reason is None else CancelReason(cancel_reason),
        cancel_requested=reply[start + _AT["cancel_requested"]] == b"1",
        progress=None if progress is None else progress_from_json(progress),
        errors=() if errors is None else errors_from_json(errors),
    )


@functools.lru_cache(maxsize=64)  # a handful of result_ttl values cover nearly every job
def _duration(ms: int) -> timedelta:
    return from_ms(ms)
