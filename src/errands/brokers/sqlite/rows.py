"""Rows and values: Job, Lease and WorkerInfo to and from SQLite rows, instants as epoch ms.

The only place where a datetime becomes an integer or a JSON column becomes a value; the SQL
itself lives in queries.sql.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from errands.brokers.contract import WorkerInfo
from errands.clock import from_ms, to_ms
from errands.job import (
    AttemptError,
    CancelReason,
    ErrorKind,
    FailReason,
    Job,
    JobSpec,
    JobState,
    Progress,
)
from errands.lease import Lease

Row = sqlite3.Row
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def ms_at(instant: datetime) -> int:
    """An aware instant as integer milliseconds since the epoch, UTC (exact, no float)."""
    return (instant - _EPOCH) // _MS


def at_ms(ms: int) -> datetime:
    """Epoch milliseconds back to an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def _at_or_none(ms: int | None) -> datetime | None:
    return None if ms is None else at_ms(ms)


def insert_params(spec: JobSpec, now_ms: int) -> dict[str, object]:
    """The job_insert parameters for `spec`, enqueued at `now_ms`."""
    due = now_ms if spec.scheduled_at is None else ms_at(spec.scheduled_at)
    later = due > now_ms
    return {
        "id": spec.id,
        "task": spec.task,
        "queue": spec.queue,
        "state": JobState.SCHEDULED if later else JobState.AVAILABLE,
        "payload": spec.payload,
        "priority": spec.priority,
        "max_attempts": spec.max_attempts,
        "max_crashes": spec.max_crashes,
        "now": now_ms,
        # A past ETA is stored as now, like the memory broker: claim order is arrival order.
        "scheduled_at": due if later else now_ms,
        "result_ttl_ms": to_ms(spec.result_ttl),
        "idempotency_key": spec.idempotency_key,
    }


def error_json(error: AttemptError) -> str:
    """One failed attempt as the JSON object appended to a job's `errors` column."""
    return _json_encode(
        {
            "attempt": error.attempt,
            "kind": str(error.kind),
            "type": error.type,
            "message": error.message,
            "traceback": error.traceback,
            "at": None if error.at is None else ms_at(error.at),
        }
    ).decode()


def _errors(text: str) -> tuple[AttemptError, ...]:
    return tuple(
        AttemptError(
            attempt=item["attempt"],
            kind=ErrorKind(item["kind"]),
            type=item["type"],
            message=item["message"],
            traceback=item.get("traceback", ""),
            at=_at_or_none(item.get("at")),
        )
        for item in _json_decode(text)
    )


def progress_json(progress: Progress) -> str:
    """What a job said about itself, as stored in the `progress` column."""
    return _json_encode({"fraction": progress.fraction, "message": progress.message}).decode()


def _progress(text: str | None) -> Progress | None:
    if text is None:
        return None
    item = _json_decode(text)
    return Progress(fraction=item["fraction"], message=item.get("message", ""))


def job_from_row(row: Row) -> Job:
    """A Job value from a `SELECT *` or `RETURNING *` row of the jobs table."""
    return Job(
        id=row["id"],
        task=row["task"],
        queue=row["queue"],
        state=JobState(row["state"]),
        payload=row["payload"],
        priority=row["priority"],
        attempt=row["attempt"],
        failures=row["failures"],
        crashes=row["crashes"],
        max_attempts=row["max_attempts"],
        max_crashes=row["max_crashes"],
        enqueued_at=_at_or_none(row["enqueued_at"]),
        scheduled_at=_at_or_none(row["scheduled_at"]),
        started_at=_at_or_none(row["started_at"]),
        finished_at=_at_or_none(row["finished_at"]),
        lease_expires_at=_at_or_none(row["lease_expires_at"]),
        worker_id=row["worker_id"],
        result=row["result"],
        result_ttl=from_ms(row["result_ttl_ms"]),
        result_expires_at=_at_or_none(row["result_expires_at"]),
        idempotency_key=row["idempotency_key"],
        fail_reason=None if row["fail_reason"] is None else FailReason(row["fail_reason"]),
        cancel_reason=None if row["cancel_reason"] is None else CancelReason(row["cancel_reason"]),
        cancel_requested=bool(row["cancel_requested"]),
        progress=_progress(row["progress"]),
        errors=_errors(row["errors"]),
    )


def lease_from_row(row: Row) -> Lease:
    """The lease a claim just wrote into `row`."""
    return Lease(row["id"], row["attempt"], row["lease_token"], at_ms(row["lease_expires_at"]))


def heartbeat_params(info: WorkerInfo, now_ms: int) -> dict[str, object]:
    """The worker_beat parameters for a heartbeat seen at `now_ms`."""
    return {
        "id": info.id,
        "hostname": info.hostname,
        "pid": info.pid,
        "queues": _json_encode(list(info.queues)).decode(),
        "concurrency": info.concurrency,
        "started_at": ms_at(info.started_at),
        "running": info.running,
        "now": now_ms,
    }


def worker_from_row(row: Row) -> WorkerInfo:
    """A heartbeat as stored by worker_beat."""
    return WorkerInfo(
        id=row["id"],
        hostname=row["hostname"],
        pid=row["pid"],
        queues=tuple(_json_decode(row["queues"])),
        concurrency=row["concurrency"],
        started_at=at_ms(row["started_at"]),
        running=row["running"],
        seen_at=at_ms(row["seen_at"]),
    )
