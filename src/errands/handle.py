"""JobHandle: a job id bound to its App, to wait for a result, refresh or cancel; and `wait`,
for the results of many handles at once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from errands import codec
from errands.errors import JobFailed, JobNotFound, ResultTimeout
from errands.job import TERMINAL_STATES, Job, JobId, JobState, Progress
from errands.portal import refuse_on_loop

if TYPE_CHECKING:
    from errands.app import App

R = TypeVar("R")


class JobCancelled(JobFailed):
    """The job was cancelled, so it has no result."""


class ResultExpired(JobFailed):
    """The job completed but its result has passed result_ttl and was dropped."""


class JobHandle(Generic[R]):
    """What enqueue returns: `id`, the last seen `state`, and the verbs on the job."""

    def __init__(self, app: App, job_id: JobId, *, duplicate: bool = False, job: Job | None = None):
        self.app, self.id, self.duplicate = app, job_id, duplicate
        self._job = job

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self.state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def job(self) -> Job | None:
        """The last snapshot fetched by refresh or result (None before any)."""
        return self._job

    @property
    def state(self) -> JobState:
        """The state at the last refresh (`available` or `scheduled` right after enqueue)."""
        if self._job is None:
            self.refresh()
        assert self._job is not None
        return self._job.state

    async def refresh_async(self) -> Job:
        """Fetch the job as stored now."""
        jobs = await self.app.call_broker(lambda b: b.get([self.id]))
        if not jobs:
            raise JobNotFound(self.id)
        self._job = jobs[0]
        return self._job

    def refresh(self) -> Job:
        """Blocking twin of `refresh_async`."""
        return self.app.portal.call(self.refresh_async)

    async def progress_async(self) -> Progress | None:
        """What the running task last reported with `errands.progress` (fetched now), or None."""
        return (await self.refresh_async()).progress

    def progress(self) -> Progress | None:
        """Blocking twin of `progress_async`."""
        return self.app.portal.call(self.progress_async)

    async def result_async(self, timeout: timedelta | float = timedelta(seconds=30)) -> R:
        """The task's return value once the job ends; JobFailed if it failed or was cancelled,
        ResultTimeout (naming the job, and saying so when no live worker serves its queue) if
        it has not ended within `timeout` (a timedelta, or seconds)."""
        [value] = await wait_async([self], timeout)
        return value

    def result(self, timeout: timedelta | float = timedelta(seconds=30)) -> R:
        """Blocking twin of `result_async`."""
        refuse_on_loop("result")
        [value] = wait([self], timeout)
        return value

    async def cancel_async(self) -> Job:
        """Cancel the job: at once if waiting, by request if running (see Broker.cancel)."""
        jobs = await self.app.call_broker(lambda b: b.cancel([self.id]))
        if not jobs:
            raise JobNotFound(self.id)
        self._job = jobs[0]
        return self._job

    def cancel(self) -> Job:
        """Blocking twin of `cancel_async`."""
        return self.app.portal.call(self.cancel_async)


async def wait_async(
    handles: Iterable[JobHandle[R]], timeout: timedelta | float = timedelta(seconds=30)
) -> list[R]:
    """The results of `handles` in their order, after one wait for them all (at most
    `timeout`, a timedelta or seconds). The first handle without a value raises as its
    `result()` would: JobFailed, JobNotFound or ResultTimeout. The handles must share one App."""
    waiting = list(handles)
    if not waiting:
        return []
    app, ids, waited = _waited_for(waiting, timeout)
    values, late = _values(waiting, await app.call_broker(lambda b: b.wait_done(ids, waited)))
    if late is not None:
        raise await _timed_out(app, late, waited)
    return values


def wait(
    handles: Iterable[JobHandle[R]], timeout: timedelta | float = timedelta(seconds=30)
) -> list[R]:
    """Blocking twin of `wait_async`."""
    refuse_on_loop("wait")
    waiting = list(handles)
    if not waiting:
        return []
    app, ids, waited = _waited_for(waiting, timeout)
    wait_here = app._blocking_verb("wait_done_blocking")
    if wait_here is None:
        return app.portal.call(wait_async, waiting, timeout)
    values, late = _values(waiting, wait_here(ids, waited))
    if late is not None:
        raise app.portal.call(_timed_out, app, late, waited)
    return values


def _waited_for(
    waiting: list[JobHandle[R]], timeout: timedelta | float
) -> tuple[App, list[JobId], timedelta]:
    """The one App of `waiting`, their distinct ids, and `timeout` as a timedelta."""
    app = waiting[0].app
    if any(handle.app is not app for handle in waiting):
        raise ValueError("wait() takes handles of one App (one broker wait for them all)")
    waited = timeout if isinstance(timeout, timedelta) else timedelta(seconds=timeout)
    return app, list(dict.fromkeys(handle.id for handle in waiting)), waited


def _values(waiting: list[JobHandle[R]], found: list[Job]) -> tuple[list[R], Job | None]:
    """The values of the waited-for jobs in order, up to the first one still not ended (the
    second item, else None); raises as a handle's result() would for a missing or failed job."""
    jobs = {job.id: job for job in found}
    for handle in waiting:
        handle._job = jobs.get(handle.id, handle._job)  # every state current, whatever raises
    values: list[R] = []
    for handle in waiting:
        job = jobs.get(handle.id)
        if job is None:
            raise JobNotFound(handle.id)
        if job.state not in TERMINAL_STATES:
            return values, job
        values.append(result_of(job))
    return values, None


async def _timed_out(app: App, job: Job, waited: timedelta) -> ResultTimeout:
    """The ResultTimeout for a job still waiting: a first job that never ends usually has no
    worker on its queue, so the error says so when no live worker's heartbeat names it."""
    workers = await app.call_broker(lambda b: b.workers())
    served = any(job.queue in worker.queues for worker in workers)
    return ResultTimeout(
        job.id,
        waited,
        job.state,
        unserved_queue=None if served else job.queue,
        target=app.cli_target(),
    )


def result_of(job: Job) -> Any:
    """A terminal job's value, or the matching error (wait_async handles a job still waiting)."""
    if job.state is JobState.COMPLETED:
        if job.result is None:
            raise ResultExpired(job.id, job.state, "result_expired", "", "result expired", "")
        return codec.loads(job.result)
    if job.state is JobState.FAILED:
        error = job.last_error
        raise JobFailed(
            job.id,
            job.state,
            job.fail_reason,
            error.type if error else "",
            error.message if error else "",
            error.traceback if error else "",
        )
    if job.state is JobState.CANCELLED:
        raise JobCancelled(job.id, job.state, job.cancel_reason, "", "job was cancelled", "")
    raise ValueError(f"job {job.id} is {job.state}, not terminal: it has no result yet")
