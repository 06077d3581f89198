"""Values to script arguments and script replies back to values: the only place where a job,
an outcome or a heartbeat meets Redis's flat lists of strings."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import msgspec

from errands.brokers.contract import Claimed, Counts, Enqueued, WorkerInfo
from errands.brokers.redis.keys import FIELDS
from errands.brokers.values import (
    at_ms,
    error_json,
    errors_from_json,
    heartbeat_from_json,
    heartbeat_json,
    ms_at,
    progress_from_json,
    progress_json,
)
from errands.clock import from_ms, to_ms
from errands.job import CancelReason, FailReason, Job, JobId, JobSpec, JobState, Progress
from errands.lease import Lease
from errands.limits import Limit
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
_json_encode = msgspec.json.Encoder().encode
_STATES: Final = {state.value.encode(): state for state in JobState}
T = TypeVar("T")
E = TypeVar("E", FailReason, CancelReason)


def spec_args(
    specs: Sequence[JobSpec], *, dependencies: bool = False, limits: bool = False
) -> list[Any]:
    """The enqueue script's ARGV after `now`: ten values per spec; with `dependencies`, two
    more per spec (the ids it depends on, its policy), with `limits` one more (its limits),
    and with `dependencies` its workflow's id last, as enqueue_workflow, enqueue_limited and
    fire take them."""
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
        if dependencies:
            args += (" ".join(spec.depends_on), spec.on_failure)
        if limits:
            args.append(_limits_arg(spec.limits))
        if dependencies:
            args.append(spec.workflow_id or "")
    return args


def _limits_arg(limits: Sequence[Limit]) -> str:
    """The limits as claim.lua reads them: JSON, 0 for "none" (Lua's JSON has no nil)."""
    if not limits:
        return ""
    flat = [[one.key, one.period_us or 0, one.burst, one.concurrency or 0] for one in limits]
    return _json_encode(flat).decode()


def enqueued(reply: Sequence[Any]) -> list[Enqueued]:
    """What an enqueue reply says of each spec: its id and whether it was a duplicate."""
    return [
        Enqueued(reply[i].decode(), duplicate=bool(reply[i + 1])) for i in range(0, len(reply), 2)
    ]


def extend_args(
    leases: Sequence[Lease],
    lease: timedelta,
    heartbeat: WorkerInfo,
    progress: Mapping[JobId, Progress],
) -> list[Any]:
    """The extend script's ARGV after `now`: the lease, the heartbeat, then id, token and
    progress ("" when none was said) of each held lease."""
    args: list[Any] = [to_ms(lease), heartbeat.id, heartbeat_json(heartbeat)]
    for held in leases:
        said = progress.get(held.job_id)
        args += (held.job_id, held.token, "" if said is None else progress_json(said))
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


def counts(reply: Sequence[Any]) -> Counts:
    """Counts from a counts reply: the paused queues, then each queue, its flat state counts
    (states without jobs left out) and its oldest due waiting instant (ms, or None)."""
    by_queue: dict[str, dict[JobState, int]] = {}
    oldest: dict[str, datetime] = {}
    for i in range(1, len(reply), 3):
        queue, flat, since = reply[i].decode(), reply[i + 1], reply[i + 2]
        states = {JobState(flat[j].decode()): int(flat[j + 1]) for j in range(0, len(flat), 2)}
        by_queue[queue] = {state: n for state, n in states.items() if n}
        if since is not None:
            oldest[queue] = at_ms(int(since))
    return Counts(by_queue, frozenset(name.decode() for name in reply[0]), oldest)


def workers(reply: Sequence[Any]) -> list[WorkerInfo]:
    """Heartbeats from a workers reply: JSON and last seen (ms) each."""
    return [
        heartbeat_from_json(reply[i], int(float(reply[i + 1]))) for i in range(0, len(reply), 2)
    ]


def job(reply: Sequence[Any], start: int) -> Job:
    """The job whose reply begins at `reply[start]`.

    A field that another writer garbled reads as its default (the payload is never decoded
    here), so one bad hash never fails a claim of many: the worker then judges the payload.
    """
    values = reply[start : start + REPLY]
    try:
        return _job(values, _number, _instant, _text)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, msgspec.DecodeError):
        return _job(values, _lenient(_number, 0), _lenient(_instant, None), _lenient(_text, None))


def _job(values: Sequence[Any], number: Any, instant: Any, text: Any) -> Job:
    progress, errors = values[_AT["progress"]], values[_AT["errors"]]
    return Job(
        id=values[0].decode(),
        task=text(values[_AT["task"]]) or "",
        queue=text(values[_AT["queue"]]) or "",
        state=_STATES.get(values[_AT["state"]], JobState.RUNNING),
        payload=values[_AT["payload"]] or b"",
        priority=number(values[_AT["priority"]]),
        attempt=number(values[_AT["attempt"]]),
        failures=number(values[_AT["failures"]]),
        crashes=number(values[_AT["crashes"]]),
        max_attempts=number(values[_AT["max_attempts"]]),
        max_crashes=number(values[_AT["max_crashes"]]),
        enqueued_at=instant(values[_AT["enqueued_at"]]),
        scheduled_at=instant(values[_AT["scheduled_at"]]),
        started_at=instant(values[_AT["started_at"]]),
        finished_at=instant(values[_AT["finished_at"]]),
        lease_expires_at=instant(values[_AT["expires_at"]]),
        worker_id=text(values[_AT["worker_id"]]),
        result=values[REPLY - 1],
        result_ttl=_duration(number(values[_AT["result_ttl"]])),
        result_expires_at=instant(values[_AT["result_expires_at"]]),
        idempotency_key=text(values[_AT["idempotency_key"]]),
        fail_reason=_reason(FailReason, values[_AT["fail_reason"]]),
        cancel_reason=_reason(CancelReason, values[_AT["cancel_reason"]]),
        cancel_requested=values[_AT["cancel_requested"]] == b"1",
        progress=None if progress is None else _safe(progress_from_json, progress),
        errors=() if errors is None else _safe(errors_from_json, errors) or (),
        workflow_id=text(values[_AT["workflow_id"]]),
    )


def _reason(kind: Callable[[str], E], value: bytes | None) -> E | None:
    if value is None:
        return None
    try:
        return kind(value.decode())
    except (ValueError, UnicodeDecodeError):  # a reason no errands wrote reads as none
        return None


def _number(value: bytes | None) -> int:
    return 0 if value is None else int(value)


def _instant(value: bytes | None) -> datetime | None:
    return None if value is None else at_ms(int(value))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _lenient(decode: Callable[[bytes | None], T], default: T) -> Callable[[bytes | None], T]:
    def decoded(value: bytes | None) -> T:
        try:
            return decode(value)
        except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
            return default

    return decoded


def _safe(decode: Callable[[bytes], T], value: bytes) -> T | None:
    """Progress and errors are for people: a garbled one reads as absent, not as a failure."""
    try:
        return decode(value)
    except (ValueError, TypeError, KeyError, msgspec.DecodeError):
        return None


@functools.lru_cache(maxsize=64)  # a handful of result_ttl values cover nearly every job
def _duration(ms: int) -> timedelta:
    return from_ms(ms)
