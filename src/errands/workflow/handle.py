"""WorkflowHandle: what starting a workflow returns; waits for its result and cancels it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from errands.errors import JobNotFound
from errands.handle import JobHandle, _timed_out, result_of
from errands.job import TERMINAL_STATES, Job, JobId, JobState

if TYPE_CHECKING:
    from errands.app import App


class WorkflowHandle:
    """A started workflow: `id`, `jobs` (a handle per step, in the order the steps were
    written) and `outputs` (the steps whose results make the workflow's result)."""

    def __init__(
        self,
        app: App,
        workflow_id: str,
        job_ids: Sequence[JobId],
        outputs: Sequence[JobId],
        *,
        as_list: bool,
    ) -> None:
        self.app, self.id, self.as_list = app, workflow_id, as_list
        self.jobs = [JobHandle[Any](app, job_id) for job_id in job_ids]
        by_id = {handle.id: handle for handle in self.jobs}
        self.outputs = [by_id[job_id] for job_id in outputs]

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.id} jobs={len(self.jobs)}>"

    async def result_async(self, timeout: timedelta | float = timedelta(seconds=30)) -> Any:
        """Wait until every job of the workflow has ended (at most `timeout`, a timedelta or
        seconds) and return its result: a chain's last step's, a group's list, a chord's
        callback's. If an output did not complete, raises the error of the first step that
        failed (errands.JobFailed), else that output's own (errands.JobCancelled, ...);
        ResultTimeout if a job is still waiting at the timeout."""
        waited = timeout if isinstance(timeout, timedelta) else timedelta(seconds=timeout)
        ids = [handle.id for handle in self.jobs]
        found = await self.app.call_broker(lambda broker: broker.wait_done(ids, waited))
        jobs = {job.id: job for job in found}
        for handle in self.jobs:
            handle._job = jobs.get(handle.id, handle._job)
            if handle.id not in jobs:
                raise JobNotFound(handle.id)
        waiting = [jobs[i] for i in ids if jobs[i].state not in TERMINAL_STATES]
        if waiting:
            running = [job for job in waiting if job.state is not JobState.PENDING]
            raise await _timed_out(self.app, (running or waiting)[0], waited)
        outputs = [jobs[handle.id] for handle in self.outputs]
        if any(job.state is not JobState.COMPLETED for job in outputs):
            result_of(_cause(jobs, ids, outputs))  # raises
        values = [result_of(job) for job in outputs]
        return values if self.as_list else values[0]

    def result(self, timeout: timedelta | float = timedelta(seconds=30)) -> Any:
        """Blocking twin of `result_async`."""
        return self.app.portal.call(self.result_async, timeout)

    async def cancel_async(self) -> list[Job]:
        """Cancel the workflow: its pending and waiting jobs end `cancelled` at once (stored in
        the broker), running ones get a cancel request that their worker carries out within
        about half a second. Returns the jobs after."""
        ids = [handle.id for handle in self.jobs]
        jobs = await self.app.call_broker(lambda broker: broker.cancel(ids))
        by_id = {job.id: job for job in jobs}
        for handle in self.jobs:
            handle._job = by_id.get(handle.id, handle._job)
        return jobs

    def cancel(self) -> list[Job]:
        """Blocking twin of `cancel_async`."""
        return self.app.portal.call(self.cancel_async)


def _cause(jobs: dict[JobId, Job], ids: Sequence[JobId], outputs: Sequence[Job]) -> Job:
    """The job whose error explains an output that did not complete: the first step that
    failed, else the first output that did not complete."""
    for job_id in ids:
        if jobs[job_id].state is JobState.FAILED:
            return jobs[job_id]
    return next(job for job in outputs if job.state is not JobState.COMPLETED)
