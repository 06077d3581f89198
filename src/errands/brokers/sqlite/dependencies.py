"""Dependencies on SQLite: the rows of pending jobs' dependencies, and what a job's ending
does to its dependents (the rule of brokers/dependencies.py), inside the transaction that
ended it. SQLite has one writer at a time, so a dependent's last row is taken by exactly one
transaction: that one releases it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from errands.brokers.sqlite.sql import Q, as_json
from errands.job import JobId, JobSpec


def add(connection: sqlite3.Connection, specs: Iterable[JobSpec]) -> None:
    """Store the dependencies of `specs` (those just inserted, not duplicates)."""
    rows = [
        (parent, spec.id, spec.on_failure)
        for spec in specs
        for parent in dict.fromkeys(spec.depends_on)
    ]
    if rows:
        connection.executemany(Q["dependency_insert"], rows)


def settle(
    connection: sqlite3.Connection, ended: Sequence[tuple[JobId, bool]], now_ms: int
) -> tuple[list[JobId], bool]:
    """Apply the ending of each (job id, completed) to its pending dependents, and in turn the
    ending of each dependent this cancels. Returns the ids cancelled here and whether any job
    was released (to wake workers)."""
    cancelled: list[JobId] = []
    released = False
    todo = dict(ended)
    while todo:
        rows = connection.execute(Q["dependencies_take"], {"ids": as_json(list(todo))})
        fired = rows.fetchall()
        completed, todo = todo, {}
        # Cancels first: a dependent that lost a dependency to a failure in this batch must
        # not be released by another that completed in it.
        doomed = {
            row["job_id"]
            for row in fired
            if not completed[row["depends_on"]] and row["on_failure"] == "cancel"
        }
        for child in sorted(doomed):
            if connection.execute(Q["pending_cancel"], {"id": child, "now": now_ms}).rowcount:
                cancelled.append(child)
                todo[child] = False
        for child in dict.fromkeys(row["job_id"] for row in fired if row["job_id"] not in doomed):
            release = connection.execute(Q["pending_release"], {"id": child, "now": now_ms})
            released = bool(release.fetchall()) or released
    return cancelled, released
