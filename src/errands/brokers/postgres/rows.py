"""Rows and values: jobs, leases, counts and heartbeats from PostgreSQL rows, and the array
parameters of the batch statements.

The only place where a row becomes a value or a batch becomes parameters; the encodings shared
with the other brokers (errors, progress) live in brokers/values.py, the SQL in queries.sql.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from errands.brokers.contract import Claimed, Counts, Extended, WorkerInfo
from errands.brokers.values import error_json, errors_from_json, progress_from_json, progress_json
from errands.job import (
    CancelReason,
    FailReason,
    Job,
    JobId,
    JobSpec,
    JobState,
    Progress,
)
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

Row = tuple[Any, ...]
Params = dict[str, Any]
_STATES: Final = {state.value: state for state in JobState}


# -- reading -------------------------------------------------------------------------------------


def jobs_from_rows(rows: Sequence[Row], names: Sequence[str]) -> list[Job]:
    """Job values from rows of the job columns (any order: `names` are the result's columns)."""
    at = {name: index for index, name in enumerate(names)}
    return [_job(row, at) for row in rows]


def _job(row: Row, at: Mapping[str, int]) -> Job:
    fail_reason, cancel_reason = row[at["fail_reason"]], row[at["cancel_reason"]]
    errors, progress = row[at["errors"]], row[at["progress"]]
    return Job(
        id=row[at["id"]],
        task=row[at["task"]],
        queue=row[at["queue"]],
        state=_STATES[row[at["state"]]],
        payload=bytes(row[at["payload"]]),
        priority=row[at["priority"]],
        attempt=row[at["attempt"]],
        failures=row[at["failures"]],
        crashes=row[at["crashes"]],
        max_attempts=row[at["max_attempts"]],
        max_crashes=row[at["max_crashes"]],
        enqueued_at=row[at["enqueued_at"]],
        scheduled_at=row[at["scheduled_at"]],
        started_at=row[at["started_at"]],
        finished_at=row[at["finished_at"]],
        lease_expires_at=row[at["lease_expires_at"]],
        worker_id=row[at["worker_id"]],
        result=None if row[at["result"]] is None else bytes(row[at["result"]]),
        result_ttl=row[at["result_ttl"]],
        result_expires_at=row[at["result_expires_at"]],
        idempotency_key=row[at["idempotency_key"]],
        fail_reason=None if fail_reason is None else FailReason(fail_reason),
        cancel_reason=None if cancel_reason is None else CancelReason(cancel_reason),
        cancel_requested=row[at["cancel_requested"]],
        progress=None if progress is None else progress_from_json(progress),
        errors=() if errors == "[]" else errors_from_json(errors),
        workflow_id=row[at["workflow_id"]],
    )


def leases_from_rows(rows: Sequence[Row], names: Sequence[str], jobs: Sequence[Job]) -> list[Lease]:
    """The lease a claim or reclaim just wrote into each row (and its job)."""
    token = names.index("lease_token")
    return [
        Lease(job.id, job.attempt, row[token], _instant(job.lease_expires_at))
        for row, job in zip(rows, jobs, strict=True)
    ]


def claimed_from_rows(rows: Sequence[Row], names: Sequence[str]) -> list[Claimed]:
    """The jobs a claim or reclaim just leased, each with its lease."""
    jobs = jobs_from_rows(rows, names)
    leases = leases_from_rows(rows, names, jobs)
    return [Claimed(job, lease) for job, lease in zip(jobs, leases, strict=True)]


def extended_from_rows(rows: Sequence[Row], leases: Sequence[Lease]) -> Extended:
    """The leases (of those asked) whose token held, pushed back to the expiry extend
    wrote, and which of them have a cancel pending."""
    held = {(job_id, token): expires_at for job_id, token, _, expires_at in rows}
    cancels = {job_id for job_id, _, cancel_requested, _ in rows if cancel_requested}
    kept = [
        one.extended_to(held[one.job_id, one.token])
        for one in leases
        if (one.job_id, one.token) in held
    ]
    return Extended(kept, [one.job_id for one in kept if one.job_id in cancels])


def counts_from_rows(rows: Sequence[Row], wanted: Sequence[str] | None) -> Counts:
    """Rows of the counts statement as Counts: every queue of `wanted` (every known queue
    when None) is listed, even if empty."""
    by_queue: dict[str, dict[JobState, int]] = {name: {} for name in wanted or ()}
    paused: set[str] = set()
    oldest: dict[str, datetime] = {}
    for queue, state, n, is_paused, since in rows:
        if since is not None:  # the queue's oldest due waiting job
            oldest[queue] = since
        elif state is None:  # a known queue
            if is_paused:
                paused.add(queue)
            if wanted is None:
                by_queue.setdefault(queue, {})
        else:
            by_queue.setdefault(queue, {})[JobState(state)] = int(n)
    return Counts(by_queue, frozenset(paused), oldest)


def _instant(value: datetime | None) -> datetime:
    if value is None:  # a running job always has one: the statement just wrote it
        raise ValueError("a claimed job without a lease expiry")
    return value


def worker_from_row(row: Row) -> WorkerInfo:
    """A heartbeat as stored by extend (columns of workers_seen, in order)."""
    worker_id, hostname, pid, queues, concurrency, started_at, running, seen_at = row
    return WorkerInfo(
        id=worker_id,
        hostname=hostname,
        pid=pid,
        queues=tuple(queues),
        concurrency=concurrency,
        started_at=started_at,
        running=running,
        seen_at=seen_at,
    )


# -- writing -------------------------------------------------------------------------------------


def enqueue_params(specs: Sequence[JobSpec]) -> Params:
    """The enqueue statement's arrays: one element per spec, in order."""
    return {
        "ids": [spec.id for spec in specs],
        "tasks": [spec.task for spec in specs],
        "queues": [spec.queue for spec in specs],
        "payloads": [spec.payload for spec in specs],
        "priorities": [spec.priority for spec in specs],
        "dues": [spec.scheduled_at for spec in specs],
        "max_attempts": [spec.max_attempts for spec in specs],
        "max_crashes": [spec.max_crashes for spec in specs],
        "result_ttls": [spec.result_ttl for spec in specs],
        "keys": [spec.idempotency_key for spec in specs],
        "pending": [bool(spec.depends_on) for spec in specs],
        "workflows": [spec.workflow_id for spec in specs],
    }


def dependency_params(specs: Sequence[JobSpec], stored: Sequence[JobId]) -> Params:
    """The dependencies_insert statement's arrays: one element per (dependency, dependent)
    of `specs`, and the ids an enqueue stored (a duplicate gets no dependencies)."""
    edges = [(parent, s.id, s.on_failure) for s in specs for parent in dict.fromkeys(s.depends_on)]
    return {
        "parents": [edge[0] for edge in edges],
        "children": [edge[1] for edge in edges],
        "policies": [edge[2] for edge in edges],
        "stored": list(stored),
    }


@dataclass(frozen=True, slots=True)
class Transition:
    """What one outcome does to its job: the finish statement applies it as written."""

    state: JobState
    failures: int = 0  # added to the job's count
    crashes: int = 0
    error: str | None = None  # JSON, appended to the job's errors
    fail_reason: FailReason | None = None
    cancel_reason: CancelReason | None = None
    result: bytes | None = None
    delay: timedelta | None = None  # due again this long after now; None keeps scheduled_at


def transition(outcome: Outcome) -> Transition:
    """The explicit transition each outcome names, as the memory broker's `_apply` makes it."""
    match outcome:
        case Completed(result=result):
            return Transition(JobState.COMPLETED, result=result)
        case Retrying(error=error, delay=delay):
            return Transition(JobState.RETRYABLE, failures=1, error=error_json(error), delay=delay)
        case Failed(reason=reason, error=error):
            if error is None:  # e.g. an unknown task: dead-lettered, nothing counted
                return Transition(JobState.FAILED, fail_reason=reason)
            crashed = reason is FailReason.CRASHED
            return Transition(
                JobState.FAILED,
                failures=0 if crashed else 1,
                crashes=1 if crashed else 0,
                error=error_json(error),
                fail_reason=reason,
            )
        case Crashed(error=error, delay=delay):
            # No delay: keep the job's place in line (due at once, its scheduled_at kept).
            return Transition(
                JobState.RETRYABLE, crashes=1, error=error_json(error), delay=delay or None
            )
        case Cancelled(reason=reason):
            return Transition(JobState.CANCELLED, cancel_reason=reason)
        case Released():
            return Transition(JobState.AVAILABLE)
        case Snoozed(delay=delay):
            return Transition(JobState.SCHEDULED, delay=delay)
    raise TypeError(f"not an Outcome: {outcome!r}")


def finish_params(outcomes: Sequence[Outcome]) -> Params:
    """The finish statement's arrays: one element per outcome, in order."""
    moves = [transition(outcome) for outcome in outcomes]
    return {
        "ids": [outcome.lease.job_id for outcome in outcomes],
        "tokens": [outcome.lease.token for outcome in outcomes],
        "states": [str(move.state) for move in moves],
        "failures": [move.failures for move in moves],
        "crashes": [move.crashes for move in moves],
        "errors": [move.error for move in moves],
        "fail_reasons": [_text(move.fail_reason) for move in moves],
        "cancel_reasons": [_text(move.cancel_reason) for move in moves],
        "results": [move.result for move in moves],
        "delays": [move.delay for move in moves],
    }


def extend_params(
    leases: Sequence[Lease], progress: Mapping[JobId, Progress], heartbeat: WorkerInfo
) -> Params:
    """The extend statement's arrays (one element per lease) and the heartbeat."""
    said = [progress.get(lease.job_id) for lease in leases]
    return {
        "ids": [lease.job_id for lease in leases],
        "tokens": [lease.token for lease in leases],
        "progress": [None if one is None else progress_json(one) for one in said],
        "worker_id": heartbeat.id,
        "hostname": heartbeat.hostname,
        "pid": heartbeat.pid,
        "worker_queues": list(heartbeat.queues),
        "concurrency": heartbeat.concurrency,
        "started_at": heartbeat.started_at,
        "running": heartbeat.running,
    }


def _text(value: FailReason | CancelReason | None) -> str | None:
    return None if value is None else str(value)
