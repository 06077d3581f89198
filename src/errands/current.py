"""The job a task is running for: `errands.current_job()` inside a task, in every pool.

A ContextVar set around each attempt: each asyncio task, pool thread and child process sees
its own job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from errands.job import JobId

#: Headers a scheduler sets on the jobs it enqueues (scheduling/scheduler.py).
SCHEDULE_HEADER: Final = "errands-schedule"
SLOT_HEADER: Final = "errands-slot"


@dataclass(frozen=True, slots=True)
class RunningJob:
    """What a running task may know about its job."""

    id: JobId
    task: str
    queue: str
    attempt: int
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def schedule(self) -> str | None:
        """The name of the schedule that enqueued this job, if one did."""
        return self.headers.get(SCHEDULE_HEADER)

    @property
    def slot(self) -> datetime | None:
        """The instant (UTC) this scheduled job was due, if a schedule enqueued it: a nightly
        report for "yesterday" is computed from its slot, not from when it happens to run."""
        text = self.headers.get(SLOT_HEADER)
        return datetime.fromisoformat(text) if text else None


_current: ContextVar[RunningJob | None] = ContextVar("errands_current_job", default=None)


def current_job() -> RunningJob:
    """The job the calling task runs for; LookupError outside a task run by a worker."""
    job = _current.get()
    if job is None:
        raise LookupError("current_job() is only known inside a task that a worker runs")
    return job


@contextmanager
def running(job: RunningJob) -> Iterator[None]:
    """Make `job` the current job for the code inside the block."""
    token = _current.set(job)
    try:
        yield
    finally:
        _current.reset(token)
