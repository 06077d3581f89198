"""JobTable: the memory broker's jobs and the heaps that find claimable and due ones fast.

Heaps use lazy deletion: an entry is live while its job still matches it, so a job that moved
on leaves a stale entry that is dropped when it reaches the top. State changes stay with
MemoryBroker; this module only stores and finds.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Final

from errands.brokers.contract import JobQuery
from errands.job import Job, JobId, JobSpec, JobState

CLAIMABLE_LATER: Final = (JobState.SCHEDULED, JobState.RETRYABLE)
ReadyEntry = tuple[int, datetime, JobId]


class JobTable:
    """Jobs by id, a heap of available jobs per queue (claim order), and one of due times."""

    def __init__(self) -> None:
        self.jobs: dict[JobId, Job] = {}
        self._ready: dict[str, list[ReadyEntry]] = {}
        self._due: list[tuple[datetime, JobId]] = []

    def store(self, job: Job) -> None:
        """Keep `job` (a new or changed value) and index it if it is, or will be, claimable."""
        self.jobs[job.id] = job
        assert job.scheduled_at is not None
        if job.state is JobState.AVAILABLE:
            heapq.heappush(self._ready.setdefault(job.queue, []), claim_order(job))
        elif job.state in CLAIMABLE_LATER:
            heapq.heappush(self._due, (job.scheduled_at, job.id))

    def ready_head(self, queue: str) -> ReadyEntry | None:
        """The next job to claim from `queue`, if any."""
        heap = self._ready.get(queue)
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0] if heap else None

    def pop_ready(self, queue: str) -> ReadyEntry:
        """Remove and return the head of `queue` (call after ready_head found one)."""
        return heapq.heappop(self._ready[queue])

    def due_head(self) -> tuple[datetime, JobId] | None:
        """The scheduled or retryable job due first, if any."""
        while self._due:
            at, job_id = self._due[0]
            job = self.jobs.get(job_id)
            if job is not None and job.state in CLAIMABLE_LATER and job.scheduled_at == at:
                return self._due[0]
            heapq.heappop(self._due)
        return None

    def pop_due(self) -> tuple[datetime, JobId]:
        """Remove and return the head of the due heap (call after due_head found one)."""
        return heapq.heappop(self._due)

    def _live(self, entry: ReadyEntry) -> bool:
        job = self.jobs.get(entry[2])
        return job is not None and job.state is JobState.AVAILABLE and claim_order(job) == entry


def new_job(spec: JobSpec, now: datetime) -> Job:
    """The stored job for `spec`, enqueued at `now`."""
    later = spec.scheduled_at is not None and spec.scheduled_at > now
    state = JobState.SCHEDULED if later else JobState.AVAILABLE
    return Job(
        id=spec.id,
        task=spec.task,
        queue=spec.queue,
        state=JobState.PENDING if spec.depends_on else state,
        payload=spec.payload,
        priority=spec.priority,
        max_attempts=spec.max_attempts,
        max_crashes=spec.max_crashes,
        enqueued_at=now,
        scheduled_at=spec.scheduled_at if later else now,
        result_ttl=spec.result_ttl,
        idempotency_key=spec.idempotency_key,
        workflow_id=spec.workflow_id,
    )


def claim_order(job: Job) -> ReadyEntry:
    """Priority (high first), then scheduled_at, then id."""
    assert job.scheduled_at is not None
    return (-job.priority, job.scheduled_at, job.id)


def matches(job: Job, query: JobQuery) -> bool:
    """Whether `job` passes the filters of `query`."""
    if query.queue is not None and job.queue != query.queue:
        return False
    if query.states and job.state not in query.states:
        return False
    if query.task is not None and job.task != query.task:
        return False
    if query.workflow is not None and job.workflow_id != query.workflow:
        return False
    if query.idempotency_key is not None and job.idempotency_key != query.idempotency_key:
        return False
    return query.before_id is None or job.id < query.before_id
