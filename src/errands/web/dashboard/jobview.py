"""JobDetail: what the job page shows of a stored job, with secrets redacted: its decoded
call, its result, and a timeline built from the instants the broker keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from errands import envelope
from errands.errors import MalformedMessage
from errands.job import Job, JobState
from errands.web.dashboard.redaction import Redactor

_wire = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Event:
    """One moment of a job's life."""

    at: datetime
    what: str
    state: str


@dataclass(frozen=True, slots=True)
class JobDetail:
    """A job's call, result and timeline, ready to show."""

    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    has_result: bool = False
    workflow_id: str | None = None
    depends_on: tuple[str, ...] = ()
    problem: str | None = None
    timeline: list[Event] = field(default_factory=list)


def detail(job: Job, redactor: Redactor) -> JobDetail:
    """The job page's view of `job`."""
    result, has_result = _result(job, redactor)
    try:
        env = envelope.decode(bytes(job.payload))
    except MalformedMessage as error:
        return JobDetail(
            result=result, has_result=has_result, problem=str(error), timeline=timeline(job)
        )
    return JobDetail(
        args=[redactor.value(arg) for arg in env.args],
        kwargs=redactor.mapping(env.kwargs),
        headers=redactor.mapping(dict(env.headers)),
        result=result,
        has_result=has_result,
        workflow_id=(env.workflow or {}).get("id"),
        depends_on=tuple(env.depends_on or ()),
        timeline=timeline(job),
    )


def _result(job: Job, redactor: Redactor) -> tuple[Any, bool]:
    if job.result is None:
        return None, False
    try:
        return redactor.value(_wire.decode(bytes(job.result))), True
    except msgspec.DecodeError:
        return "(a result that is not JSON)", True


def timeline(job: Job) -> list[Event]:
    """The job's known moments, oldest first: enqueued, due, each failed attempt, the last
    start and the end. Brokers keep the latest instant of each kind, not a full history."""
    events: list[Event] = []
    if job.enqueued_at is not None:
        first = JobState.PENDING if job.state == JobState.PENDING else JobState.AVAILABLE
        events.append(Event(job.enqueued_at, "enqueued", first.value))
        if job.scheduled_at is not None and job.scheduled_at > job.enqueued_at:
            events.append(Event(job.scheduled_at, "due", JobState.AVAILABLE.value))
    for error in job.errors:
        if error.at is not None:
            what = f"attempt {error.attempt} failed: {error.kind.value} {error.type}"
            events.append(Event(error.at, what, JobState.RETRYABLE.value))
    if job.started_at is not None:
        events.append(Event(job.started_at, f"attempt {job.attempt} started", "running"))
    if job.finished_at is not None:
        events.append(Event(job.finished_at, f"ended {job.state.value}", job.state.value))
    return sorted(events, key=lambda event: event.at)
