"""The inspecting verbs on PostgreSQL: jobs by id, a page of jobs, counts and live workers, each
one statement on a connection the broker lends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from errands.brokers.contract import Counts, JobQuery, Page, WorkerInfo
from errands.brokers.postgres import rows
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Scope, fetch
from errands.job import Job, JobId


async def jobs(connection: Connection, job_ids: Sequence[JobId]) -> list[Job]:
    """Jobs by id, in the order asked; unknown ids left out."""
    found, names = await fetch(connection, "jobs_by_ids", {"ids": list(job_ids)})
    by_id = {job.id: job for job in rows.jobs_from_rows(found, names)}
    return [by_id[i] for i in job_ids if i in by_id]


async def page(connection: Connection, query: JobQuery) -> Page:
    """A page of jobs, newest first, by keyset on id."""
    found, names = await fetch(
        connection,
        _page_statement(query),
        {
            "queue": query.queue,
            "states": [str(state) for state in query.states] if query.states else None,
            "task": query.task,
            "workflow": query.workflow,
            "key": query.idempotency_key,
            "before_id": query.before_id,
            "limit": query.limit + 1,  # one more than asked tells whether another page exists
        },
    )
    found_jobs = rows.jobs_from_rows(found[: query.limit], names)
    more = len(found) > query.limit
    return Page(found_jobs, found_jobs[-1].id if more and found_jobs else None)


def _page_statement(query: JobQuery) -> str:
    """The statement that leads with the index of the query's narrowest filter."""
    if query.workflow is not None:
        return "jobs_page_by_workflow"
    return "jobs_page" if query.idempotency_key is None else "jobs_page_by_key"


async def counts(connection: Connection, scope: Scope, queues: Sequence[str] | None) -> Counts:
    """Jobs per queue and state, the paused queues and each queue's oldest due waiting job;
    every known queue (or each asked) is listed, even if empty."""
    wanted = None if queues is None else list(queues)
    found, _ = await fetch(connection, "counts", {"queues": wanted, "now": scope.now()})
    return rows.counts_from_rows(found, wanted)


async def workers(connection: Connection, scope: Scope, ttl: timedelta) -> list[WorkerInfo]:
    """Workers whose last heartbeat is within `ttl`."""
    found, _ = await fetch(connection, "workers_seen", {"ttl": ttl, "now": scope.now()})
    return [rows.worker_from_row(row) for row in found]
