"""Write transactions of the maintenance verbs: rescue expired leases, promote due jobs,
prune old jobs and expired results.

Each function is the body of one BEGIN IMMEDIATE transaction run by Database.write; the
scheduling of these passes belongs to worker/maintenance.py.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from errands.brokers.contract import RescueReport
from errands.brokers.sqlite.rows import at_ms, error_json, ms_at
from errands.brokers.sqlite.sql import Q
from errands.job import AttemptError, CancelReason, ErrorKind


def rescue(connection: sqlite3.Connection, limit: int, now_ms: int) -> RescueReport:
    """Expired leases, soonest first: cancelled if a cancel was pending, else a crash."""
    report = RescueReport()
    cancels: list[dict[str, object]] = []
    crashes: list[dict[str, object]] = []
    for row in connection.execute(Q["leases_expired"], {"now": now_ms, "limit": limit}):
        fence = {"id": row["id"], "token": row["lease_token"], "now": now_ms}
        if row["cancel_requested"]:
            cancels.append({**fence, "reason": str(CancelReason.REQUESTED)})
            report.cancelled.append(row["id"])
            continue
        error = _lease_expired(row, now_ms)
        crashes.append({**fence, "error": error_json(error), "scheduled_at": None})
        spent = row["crashes"] + 1 >= row["max_crashes"]
        (report.failed if spent else report.retried).append(row["id"])
    connection.executemany(Q["finish_cancelled"], cancels)
    connection.executemany(Q["finish_crashed"], crashes)
    return report


def _lease_expired(row: sqlite3.Row, now_ms: int) -> AttemptError:
    expired_at = at_ms(row["lease_expires_at"])
    return AttemptError(
        attempt=row["attempt"],
        kind=ErrorKind.LEASE_EXPIRED,
        type="LeaseExpired",
        message=f"lease of worker {row['worker_id']} expired at {expired_at:%H:%M:%S}",
        at=at_ms(now_ms),
    )


def promote(connection: sqlite3.Connection, limit: int, now_ms: int) -> int:
    """Due scheduled and retryable jobs become available, oldest due first."""
    return connection.execute(Q["promote_due"], {"now": now_ms, "limit": limit}).rowcount


def prune(
    connection: sqlite3.Connection, finished_before: datetime, limit: int, now_ms: int
) -> int:
    """Drop expired results, then delete up to `limit` terminal jobs finished before
    `finished_before`; returns the jobs deleted."""
    connection.execute(Q["results_drop"], {"now": now_ms})
    params = {"finished_before": ms_at(finished_before), "limit": limit}
    return connection.execute(Q["jobs_prune"], params).rowcount
