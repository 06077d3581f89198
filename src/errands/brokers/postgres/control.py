"""Cancel and purge on PostgreSQL: the jobs end (cancel) or are deleted (purge) in one
statement, then the jobs that depend on them are settled, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Now, Q, Scope, fetch
from errands.job import JobId, JobState


async def cancel(
    connection: Connection, scope: Scope, job_ids: Sequence[JobId], reason: str
) -> None:
    """Cancel waiting (and pending) jobs now, request it of running ones, and apply the
    endings to their dependents (0004_workflows.sql's settle); see Broker.cancel."""
    now = scope.now()
    async with connection.transaction():
        found, names = await fetch(
            connection,
            "cancel",
            {"ids": list(job_ids), "reason": reason, "now": now, "done": scope.url.done_channel},
        )
        await _settle(connection, scope, found[0][names.index("ids")], now)


async def purge(
    connection: Connection, scope: Scope, queue: str, states: Sequence[JobState]
) -> int:
    """Delete the queue's jobs in `states` (never running ones) and their own dependency rows,
    then settle their dependents as a cancel does; returns how many were deleted."""
    now = scope.now()
    async with connection.transaction():
        found, names = await fetch(
            connection,
            "purge",
            {
                "queue": queue,
                "states": [str(state) for state in states],
                "done": scope.url.done_channel,
            },
        )
        await _settle(connection, scope, found[0][names.index("ids")], now)
    return int(found[0][names.index("deleted")])


async def _settle(connection: Connection, scope: Scope, ended: list[JobId], now: Now) -> None:
    """Apply the ending, without completing, of the jobs `ended` to their dependents."""
    if not ended:
        return
    await connection.execute(
        Q["settle"],
        {
            "ids": ended,
            "completed": [False] * len(ended),
            "now": now,
            "ready": scope.url.ready_channel,
            "done": scope.url.done_channel,
        },
    )
