"""Write transactions of the maintenance verbs: promote due jobs, prune old jobs and expired
results (reclaiming expired leases is in leases.py).

Each function is the body of one BEGIN IMMEDIATE transaction run by Database.write; the
scheduling of these passes belongs to worker/maintenance.py.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from errands.brokers.sqlite.sql import Q
from errands.brokers.values import ms_at


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
