"""Views: stored jobs, queues, workers and schedules as the API shows them, and the JSON
response that carries them.

A result stays the tagged JSON the worker stored (msgspec.Raw: sent as stored, never decoded
and re-encoded); args likewise come from the envelope as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from starlette.responses import Response

from errands import envelope
from errands.brokers.contract import Counts, ScheduleRecord, WorkerInfo
from errands.job import WAITING_STATES, Job, JobState

_encoder = msgspec.json.Encoder()
_wire = msgspec.json.Decoder()


class AttemptErrorView(msgspec.Struct):
    """One failed attempt."""

    attempt: int
    kind: str
    type: str
    message: str
    traceback: str
    at: datetime | None


class JobView(msgspec.Struct, omit_defaults=True):
    """A job as stored now; `done` once it is completed, failed or cancelled. `result` (a
    completed job's value, until it expires) and `args`/`kwargs` are tagged JSON."""

    id: str
    task: str
    queue: str
    state: str
    done: bool
    priority: int = 0
    attempt: int = 0
    failures: int = 0
    crashes: int = 0
    max_attempts: int = 3
    max_crashes: int = 3
    enqueued_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    worker_id: str | None = None
    idempotency_key: str | None = None
    workflow_id: str | None = None
    fail_reason: str | None = None
    cancel_reason: str | None = None
    cancel_requested: bool = False
    progress: dict[str, Any] | None = None
    result: msgspec.Raw | None = None
    errors: list[AttemptErrorView] = []
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None


class JobPage(msgspec.Struct):
    """One page of jobs, newest first; pass `next_cursor` as `cursor` for the next (null on the
    last page)."""

    jobs: list[JobView]
    next_cursor: str | None


class QueueView(msgspec.Struct):
    """A queue: its jobs by state, how many wait to run (`depth`), and whether it is paused."""

    name: str
    paused: bool
    depth: int
    counts: dict[str, int]


class WorkerView(msgspec.Struct):
    """A worker's last heartbeat (Python workers, and pull clients that extend their leases)."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    running: int
    started_at: datetime
    seen_at: datetime | None


class ScheduleView(msgspec.Struct):
    """A stored schedule: its definition (as `errands schedules` shows it) and its last run."""

    name: str
    definition: Any
    paused: bool
    cursor: datetime
    last_slot: datetime | None
    last_job_id: str | None
    last_fired_at: datetime | None


class JSON(Response):
    """A response whose content is encoded by msgspec (datetimes as RFC 3339, Raw as is)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body: `content` as compact JSON."""
        return _encoder.encode(content)


def job_view(job: Job, *, detail: bool = True) -> JobView:
    """A job for the API; `detail` adds the arguments from its envelope (when it decodes)."""
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    if detail:
        try:
            env = envelope.decode(bytes(job.payload))
        except ValueError:  # malformed: the job's errors say so; there is nothing to show
            pass
        else:
            args, kwargs = env.args, env.kwargs
    return JobView(
        **{name: getattr(job, name) for name in _COPIED},
        state=job.state.value,
        done=job.state.terminal,
        fail_reason=job.fail_reason.value if job.fail_reason else None,
        cancel_reason=job.cancel_reason.value if job.cancel_reason else None,
        progress=(
            {"fraction": job.progress.fraction, "message": job.progress.message}
            if job.progress
            else None
        ),
        result=msgspec.Raw(bytes(job.result)) if job.result is not None else None,
        errors=[
            AttemptErrorView(e.attempt, e.kind.value, e.type, e.message, e.traceback, e.at)
            for e in job.errors
        ],
        args=args,
        kwargs=kwargs,
    )


#: The fields a JobView takes from its Job as they are; the others are converted above.
_COPIED = tuple(
    name
    for name in JobView.__struct_fields__
    if name in Job.__struct_fields__
    and name not in {"state", "fail_reason", "cancel_reason", "progress", "result", "errors"}
)


def queue_views(counts: Counts) -> list[QueueView]:
    """Every queue the broker knows, by name."""
    names = sorted(set(counts.by_queue) | set(counts.paused))
    return [queue_view(name, counts) for name in names]


def queue_view(name: str, counts: Counts) -> QueueView:
    """One queue's figures (all zero for a queue the broker has no jobs of)."""
    states: Mapping[JobState, int] = counts.by_queue.get(name, {})
    paused = name in counts.paused
    by_state = {state.value: states.get(state, 0) for state in JobState}
    depth = sum(states.get(state, 0) for state in WAITING_STATES)
    return QueueView(name=name, paused=paused, depth=depth, counts=by_state)


def worker_view(info: WorkerInfo) -> WorkerView:
    """A worker's heartbeat for the API."""
    return WorkerView(
        id=info.id,
        hostname=info.hostname,
        pid=info.pid,
        queues=list(info.queues),
        concurrency=info.concurrency,
        running=info.running,
        started_at=info.started_at,
        seen_at=info.seen_at,
    )


def schedule_view(record: ScheduleRecord) -> ScheduleView:
    """A stored schedule for the API; its definition is JSON text the broker never reads."""
    try:
        definition: Any = _wire.decode(record.definition)
    except msgspec.DecodeError:
        definition = record.definition
    return ScheduleView(
        name=record.name,
        definition=definition,
        paused=record.paused,
        cursor=record.cursor,
        last_slot=record.last_slot,
        last_job_id=record.last_job_id,
        last_fired_at=record.last_fired_at,
    )
