"""Rows and values: Job, Lease, WorkerInfo and ScheduleRecord to and from SQLite rows,
instants as epoch ms.

The only place where a SQLite row becomes a value; the encodings shared with the other brokers
live in brokers/values.py, the SQL in queries.sql.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from typing import Final

import msgspec

from errands.brokers.contract import Claimed, ScheduleRecord, WorkerInfo
from errands.brokers.values import (
    at_ms,
    at_or_none,
    errors_from_json,
    ms_at,
    progress_from_json,
    skipped_from_json,
)
from errands.clock import from_ms, to_ms
from errands.job import (
    CancelReason,
    FailReason,
    Job,
    JobSpec,
    JobState,
)
from errands.lease import Lease

Row = sqlite3.Row
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode
_at_or_none = at_or_none


InsertRow = tuple[str, str, str, str, bytes, int, int, int, int, int, int, str | None, str | None]
INSERT_QUEUE = 2  # where the queue sits in an InsertRow


def insert_params(spec: JobSpec, now_ms: int) -> InsertRow:
    """The job_insert parameters for `spec`, enqueued at `now_ms`, in column order."""
    due = now_ms if spec.scheduled_at is None else ms_at(spec.scheduled_at)
    later = due > now_ms
    state = JobState.SCHEDULED if later else JobState.AVAILABLE
    return (
        spec.id,
        spec.task,
        spec.queue,
        JobState.PENDING if spec.depends_on else state,
        spec.payload,
        spec.priority,
        spec.max_attempts,
        spec.max_crashes,
        now_ms,  # enqueued_at
        # A past ETA is stored as now, like the memory broker: claim order is arrival order.
        due if later else now_ms,
        to_ms(spec.result_ttl),
        spec.idempotency_key,
        spec.workflow_id,
    )


def jobs_from_rows(rows: Sequence[Row]) -> list[Job]:
    """Job values from `SELECT *` or `RETURNING *` rows of the jobs table."""
    if not rows:
        return []
    # sqlite3.Row finds a column by name with a linear scan; look the names up once per batch.
    at = _positions(tuple(rows[0].keys()))
    return [_job(row, at) for row in rows]


def claimed_from_rows(rows: Sequence[Row]) -> list[Claimed]:
    """The jobs and leases of the rows a claim returned."""
    if not rows:
        return []
    at = _positions(tuple(rows[0].keys()))
    token = at["lease_token"]
    out = []
    for row in rows:
        job = _job(row, at)
        assert job.lease_expires_at is not None  # a claimed row is running
        out.append(Claimed(job, Lease(job.id, job.attempt, row[token], job.lease_expires_at)))
    return out


@functools.lru_cache(maxsize=8)
def _positions(names: tuple[str, ...]) -> dict[str, int]:
    return {name: index for index, name in enumerate(names)}


def _job(row: Row, at: dict[str, int]) -> Job:
    # Claims map every row they hand out, so the common NULLs and empty lists take fast paths.
    fail_reason, cancel_reason = row[at["fail_reason"]], row[at["cancel_reason"]]
    errors, progress = row[at["errors"]], row[at["progress"]]
    return Job(
        id=row[at["id"]],
        task=row[at["task"]],
        queue=row[at["queue"]],
        state=_STATES[row[at["state"]]],
        payload=row[at["payload"]],
        priority=row[at["priority"]],
        attempt=row[at["attempt"]],
        failures=row[at["failures"]],
        crashes=row[at["crashes"]],
        max_attempts=row[at["max_attempts"]],
        max_crashes=row[at["max_crashes"]],
        enqueued_at=_at_or_none(row[at["enqueued_at"]]),
        scheduled_at=_at_or_none(row[at["scheduled_at"]]),
        started_at=_at_or_none(row[at["started_at"]]),
        finished_at=_at_or_none(row[at["finished_at"]]),
        lease_expires_at=_at_or_none(row[at["lease_expires_at"]]),
        worker_id=row[at["worker_id"]],
        result=row[at["result"]],
        result_ttl=_duration(row[at["result_ttl_ms"]]),
        result_expires_at=_at_or_none(row[at["result_expires_at"]]),
        idempotency_key=row[at["idempotency_key"]],
        fail_reason=None if fail_reason is None else FailReason(fail_reason),
        cancel_reason=None if cancel_reason is None else CancelReason(cancel_reason),
        cancel_requested=bool(row[at["cancel_requested"]]),
        progress=None if progress is None else progress_from_json(progress),
        errors=() if errors == "[]" else errors_from_json(errors),
        workflow_id=row[at["workflow_id"]],
    )


_STATES: Final = {state.value: state for state in JobState}


@functools.lru_cache(maxsize=64)  # a handful of result_ttl values cover nearly every job
def _duration(ms: int) -> timedelta:
    return from_ms(ms)


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


def schedule_from_row(row: Row) -> ScheduleRecord:
    """A schedule as stored by the schedule_* statements."""
    return ScheduleRecord(
        name=row["name"],
        definition=row["definition"],
        paused=bool(row["paused"]),
        cursor=at_ms(row["cursor"]),
        created_at=at_ms(row["created_at"]),
        updated_at=at_ms(row["updated_at"]),
        last_slot=at_or_none(row["last_slot"]),
        last_job_id=row["last_job_id"],
        last_fired_at=at_or_none(row["last_fired_at"]),
        skipped=skipped_from_json(row["skipped"]),
    )
