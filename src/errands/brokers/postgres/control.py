"""Cancel on PostgreSQL: the waiting jobs end and the running ones get a request (one
statement), then the jobs that depend on those that ended are settled, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Q, Scope, fetch
from errands.job import JobId


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
        ended = found[0][names.index("ids")]
        if ended:
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
