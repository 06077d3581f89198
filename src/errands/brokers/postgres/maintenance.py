"""The maintenance verbs on PostgreSQL: reclaim, promote and prune, each one statement on a
connection the broker lends.

Each runs only in the transaction that gets `pg_try_advisory_xact_lock` on a key of the schema
and verb (the maintenance leader's); a worker that does not get it changes nothing that pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from errands.brokers.contract import Claimed
from errands.brokers.postgres import rows
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Scope, fetch


async def reclaim(
    connection: Connection,
    scope: Scope,
    limit: int,
    lease: timedelta,
    workers_gone: Sequence[str],
) -> list[Claimed]:
    """Take over expired leases and those of gone workers; see Broker.reclaim."""
    found, names = await fetch(
        connection,
        "reclaim",
        {
            "limit": limit,
            "lease": lease,
            "gone": list(workers_gone),
            "now": scope.now(),
            "leader": scope.url.lock_key("reclaim"),
        },
    )
    return rows.claimed_from_rows(found, names)


async def promote(connection: Connection, scope: Scope, limit: int) -> int:
    """Due scheduled and retryable jobs become available; how many moved."""
    found, _ = await fetch(
        connection,
        "promote",
        {
            "limit": limit,
            "now": scope.now(),
            "ready": scope.url.ready_channel,
            "leader": scope.url.lock_key("promote"),
        },
    )
    moved, _ = found[0]
    return int(moved)


async def prune(connection: Connection, scope: Scope, finished_before: datetime, limit: int) -> int:
    """Drop expired results and old terminal jobs; how many jobs were deleted."""
    found, _ = await fetch(
        connection,
        "prune",
        {
            "finished_before": finished_before,
            "limit": max(0, limit),
            "now": scope.now(),
            "leader": scope.url.lock_key("prune"),
        },
    )
    (deleted,) = found[0]
    return int(deleted)
