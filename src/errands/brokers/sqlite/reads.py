"""Read transactions of the SQLite broker: jobs by id, pages, counts, workers, readiness.

Each function is the body of one read transaction run by Database.read on the reader thread,
so inspection never waits behind a writer (WAL) and never blocks the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from errands.brokers.contract import Counts, JobQuery, WorkerInfo
from errands.brokers.sqlite.rows import worker_from_row
from errands.brokers.sqlite.sql import Q, as_json
from errands.brokers.values import at_ms
from errands.job import JobId, JobState


def jobs_by_ids(connection: sqlite3.Connection, job_ids: Sequence[JobId]) -> list[sqlite3.Row]:
    """The rows of `job_ids` in the order asked; unknown ids are left out."""
    if not job_ids:
        return []
    rows = connection.execute(Q["jobs_by_ids"], {"ids": as_json(job_ids)})
    by_id = {row["id"]: row for row in rows}
    return [by_id[job_id] for job_id in job_ids if job_id in by_id]


def page(connection: sqlite3.Connection, query: JobQuery) -> tuple[list[sqlite3.Row], bool]:
    """Up to `query.limit` rows, newest first, and whether more match after them.

    A filter on the workflow or the key picks a statement that leads with its index: written
    as "NULL matches every row", like the others, it would leave SQLite scanning by id."""
    params = {
        "queue": query.queue,
        "states": as_json([str(state) for state in query.states]) if query.states else None,
        "task": query.task,
        "workflow": query.workflow,
        "key": query.idempotency_key,
        "before_id": query.before_id,
        "limit": query.limit + 1,  # one more than asked tells whether another page exists
    }
    rows = connection.execute(Q[_page_statement(query)], params).fetchall()
    return rows[: query.limit], len(rows) > query.limit


def _page_statement(query: JobQuery) -> str:
    if query.workflow is not None:
        return "jobs_page_by_workflow"
    return "jobs_page" if query.idempotency_key is None else "jobs_page_by_key"


def counts(connection: sqlite3.Connection, queues: Sequence[str] | None, now_ms: int) -> Counts:
    """Jobs per queue and state, and each queue's oldest due waiting instant (by `now_ms`);
    every known queue (or each asked) appears, even if empty."""
    known = connection.execute(Q["queues_all"]).fetchall()
    paused = frozenset(row["name"] for row in known if row["paused"])
    names = [row["name"] for row in known] if queues is None else list(queues)
    by_queue: dict[str, dict[JobState, int]] = {name: {} for name in names}
    if queues is None:
        rows = connection.execute(Q["counts_all"])
    else:
        rows = connection.execute(Q["counts_of"], {"queues": as_json(queues)})
    for row in rows:
        by_queue.setdefault(row["queue"], {})[JobState(row["state"])] = row["n"]
    asked = None if queues is None else as_json(queues)
    oldest = connection.execute(Q["oldest_waiting"], {"queues": asked, "now": now_ms})
    return Counts(by_queue, paused, {row["queue"]: at_ms(row["since"]) for row in oldest})


def workers(connection: sqlite3.Connection, cutoff_ms: int) -> list[WorkerInfo]:
    """Workers whose last heartbeat is at or after `cutoff_ms`."""
    rows = connection.execute(Q["workers_seen"], {"cutoff": cutoff_ms})
    return [worker_from_row(row) for row in rows]


def readiness(connection: sqlite3.Connection, queues: Sequence[str]) -> tuple[bool, int | None]:
    """Whether a job of the unpaused `queues` is available, and the next due instant (ms)."""
    row = connection.execute(Q["readiness"], {"queues": as_json(queues)}).fetchone()
    return bool(row["ready"]), row["next_due_at"]
