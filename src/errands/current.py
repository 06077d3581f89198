"""The job a task is running for: `errands.current_job()` inside a task, in every pool.

A ContextVar set around each attempt: each asyncio task, pool thread and child process sees
its own job.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from errands.job import JobId, Progress

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
    #: Where `progress()` reports go (the worker's lease keeper); None: nowhere.
    report: Callable[[Progress], None] | None = field(default=None, compare=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once this attempt was asked to stop (the job or its workflow was cancelled).

        An async task is cancelled at its next await and a process-pool child is killed, so
        only a task in the thread pool needs to look: a thread cannot be stopped from outside,
        so its attempt is abandoned (the job is stored as cancelled at once) and the function
        should return soon after this turns true, to free its thread."""
        return (self.id, self.attempt) in _stop_requested

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
#: Attempts (job id, attempt) asked to stop. The worker's loop adds and removes; task threads
#: only test membership, which is atomic under the GIL: no lock, no object per job.
_stop_requested: set[tuple[JobId, int]] = set()


def request_stop(job_id: JobId, attempt: int) -> None:
    """Mark the attempt as asked to stop: its `RunningJob.cancelled` turns true."""
    _stop_requested.add((job_id, attempt))


def forget_stop(job_id: JobId, attempt: int) -> None:
    """The attempt ended: drop its mark."""
    _stop_requested.discard((job_id, attempt))


def current_job() -> RunningJob:
    """The job the calling task runs for; LookupError outside a task run by a worker."""
    job = _current.get()
    if job is None:
        raise LookupError("current_job() is only known inside a task that a worker runs")
    return job


def progress(fraction: float, message: str = "") -> None:
    """Say how far the running task is: `fraction` from 0 to 1 and a short message.

    Cheap to call often: the latest report is stored with the worker's next lease extension
    (about every half second), not written per call; `job.refresh().progress` shows it.
    ValueError for a fraction outside 0..1; LookupError outside a task run by a worker.
    """
    if not isinstance(fraction, int | float) or math.isnan(fraction) or not 0 <= fraction <= 1:
        raise ValueError(f"progress fraction must be a number from 0 to 1, got {fraction!r}")
    if not isinstance(message, str):
        raise TypeError(f"progress message must be a string, got {message!r}")
    job = current_job()
    if job.report is not None:
        job.report(Progress(float(fraction), message[:MESSAGE_MAX]))


#: A progress message longer than this is cut: it rides on every lease extension.
MESSAGE_MAX: Final = 500


def enter(job: RunningJob) -> Token[RunningJob | None]:
    """Make `job` the current job; pass the token to `leave` when its attempt ends. Two plain
    calls rather than a context manager: this runs once per job on the worker's hot path."""
    return _current.set(job)


def leave(token: Token[RunningJob | None]) -> None:
    """Undo `enter`."""
    _current.reset(token)
